"""`settings patrons_report_weekly:True`: the patrons report posted to the log channel once a week.

When each server was last sent it is a fact in the store, written *before* the post goes out: a restart, or a crash
between the two, can cost one week's post but never sends two. The week is measured on the injected clock.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from bot.guild_admin.patrons_report import attachment, patrons_report
from bot.store import Store
from bot.sync.participation import Participation
from bot.sync.role_gateway import RoleGateway

log = logging.getLogger(__name__)

WEEK = timedelta(days=7)
PUBLIC_CHANNEL_NOTICE = (
    "📋 The weekly patrons report wasn't posted: everyone in the server can read this channel, and the report lists "
    "every patron and their payment status. Make the channel private, or pick another log channel, to get it."
)


def posted_fact(guild_id: int) -> str:
    return f"patrons_report_posted:{guild_id}"


class WeeklyPatronsPost:
    def __init__(
        self,
        store: Store,
        gateway: RoleGateway,
        participation: Participation,
        clock: Callable[[], datetime],
        post: Callable[[int, str, str, bytes], Awaitable[None]],
        everyone_can_view: Callable[[int], bool],
    ) -> None:
        """`post(channel_id, text, file name, file)` sends one message with the file attached (the Discord
        adapter's); `everyone_can_view(channel_id)`: whether @everyone may read that channel, as Discord computes it
        (the report lists every patron and their payment status, so it never goes to such a channel)."""
        self.everyone_can_view = everyone_can_view
        self.store = store
        self.gateway = gateway
        self.participation = participation
        self.clock = clock
        self.post = post

    async def post_due(self) -> list[int]:
        """Post to every server that takes part, wants the report and wasn't sent one this week; the servers sent."""
        sent = []
        for guild_id in await self.participation.guild_ids():
            settings = await self.store.get_settings(guild_id)
            if not settings.patrons_report_weekly or settings.log_channel_id is None:
                continue
            now = self.clock()
            last = await self.store.get_fact(posted_fact(guild_id))
            if isinstance(last, str) and now - datetime.fromisoformat(last) < WEEK:
                continue
            if self.everyone_can_view(settings.log_channel_id):  # opened up since it was chosen (review 5, R5-8)
                await self.store.set_fact(posted_fact(guild_id), now.isoformat())  # one notice a week, no more
                log.warning("guild=%s: weekly patrons report withheld: @everyone can view the log channel", guild_id)
                await self.gateway.post_log(settings.log_channel_id, PUBLIC_CHANNEL_NOTICE)
                continue
            report = await patrons_report(self.store, self.gateway, self.participation, guild_id, now)
            await self.store.set_fact(posted_fact(guild_id), now.isoformat())  # claimed first: never two a week
            text = "📋 Weekly patrons report\n" + report.summary()
            try:
                await self.post(settings.log_channel_id, text[:1990], *attachment(report.csv_bytes()))
            except Exception:  # one server's channel must not stop the others' reports
                log.exception("guild=%s: could not post the weekly patrons report", guild_id)
                continue
            log.info("guild=%s: weekly patrons report posted to channel=%s", guild_id, settings.log_channel_id)
            sent.append(guild_id)
        return sent
