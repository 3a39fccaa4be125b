"""What Discord should show as a connected user's Linked Roles metadata, asked of the store and the policy.

Discord keeps one role connection per user for the whole application, but the policy is per server (grace days,
paid-through). The metadata follows the first server by id that acts for the campaign and has the user as a member,
with that server's rules and the membership the engine itself would plan with there (`ReconcileService.plan_member`,
so a link by hand made in another server counts for nothing, as for roles). A link by hand counts nowhere here: it
is an admin's word in one server, and the metadata is seen in every server. A user in acting servers of two
campaigns gets nothing, since one campaign's values would meet the other's Links requirements; the others carry
their campaign's id (the `campaign` record), which a requirement must name when several campaigns are connected.
Unlinked: all zeros and false. Linked but in no acting server: no opinion, Discord keeps what it has (as roles are
left alone there).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from bot.accounts.linked_roles import NOTHING, LinkedRoleMetadata, metadata_for
from bot.domain.models import MembershipSnapshot
from bot.store import Store
from bot.store.role_connections import RoleConnection
from bot.sync.reconcile import ReconcileService
from bot.sync.role_connection_push import WantedConnection

log = logging.getLogger(__name__)


class LinkedRoleView:
    def __init__(self, store: Store, reconcile: ReconcileService, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.reconcile = reconcile
        self.clock = clock

    async def metadata(self, discord_user_id: int, pushed: dict[str, str] | None) -> LinkedRoleMetadata | None:
        """The user's metadata now (None: no server that acts has them, so leave Discord's as it is); `pushed` (what
        Discord has) is held through the policy's holds."""
        look = await self._look(discord_user_id, pushed)
        return None if look is None else look[0]

    async def wanted(self, discord_user_id: int, pushed: dict[str, str] | None) -> WantedConnection | None:
        """The pusher's view (bot/sync/role_connection_push.py): the metadata and the Patreon name shown beside it."""
        look = await self._look(discord_user_id, pushed)
        return None if look is None else WantedConnection(look[0].payload(), look[1])

    async def _look(
        self, discord_user_id: int, pushed: dict[str, str] | None
    ) -> tuple[LinkedRoleMetadata, str | None] | None:
        link = await self.store.get_link_by_discord(discord_user_id)
        if link is None or link.by_hand:
            return NOTHING, None
        last = LinkedRoleMetadata.from_payload(pushed) if pushed else NOTHING
        found: list[tuple[int, str | None, MembershipSnapshot | None]] = []
        for guild_id in sorted(await self.reconcile.member_guilds(discord_user_id)):
            plan = await self.reconcile.plan_member(guild_id, discord_user_id, explain=False)
            if plan is not None:
                found.append((guild_id, await self.reconcile.campaign_key(guild_id), plan.membership))
        if not found:
            # Like roles in a server that doesn't act (turned off, or the bot can't tell whose it is): left alone.
            return None
        if len({campaign for _, campaign, _ in found}) > 1:
            # One connection shows in every server: values from one campaign would open another campaign's roles.
            log.info("linked roles: user=%s is in servers of several campaigns; pushing nothing", discord_user_id)
            return NOTHING, None
        guild_id, campaign, membership = found[0]
        settings = await self.store.get_settings(guild_id)
        tiers = await self.store.get_tiers(campaign)
        name = membership.full_name if membership is not None else None
        return metadata_for(membership, settings, tiers, self.clock(), last, campaign), name


def describe_connection(connection: RoleConnection | None) -> str:
    """The Linked Roles lines of `/patreon status` (empty for someone who never connected): what the bot last sent
    Discord, and a refused token, which stops updates until the member connects again."""
    if connection is None:
        return ""
    sent = LinkedRoleMetadata.from_payload(connection.pushed).describe() if connection.pushed else "nothing yet"
    when = f" on {connection.pushed_at:%Y-%m-%d %H:%M} UTC" if connection.pushed_at else ""
    if connection.revoked:
        return (
            "\nLinked Roles: ⚠️ Discord no longer accepts your connection (the authorisation was removed or "
            f"refused), so your linked roles can't be updated. Last sent{when}: {sent}. Open the role's Linked "
            "Roles requirement in Discord to connect again."
        )
    waiting = " An update is waiting to be sent." if connection.wanted is not None else ""
    return f"\nLinked Roles: connected. Last sent to Discord{when}: {sent}.{waiting}"
