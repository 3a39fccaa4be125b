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
    ) -> None:
        """`post(channel_id, text, file name, file)` sends one message with the file attached (the Discord
        adapter's)."""
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
