"""What every admin command shares: the services it is built from and the checks each change passes first.

Two rules hold for every command that changes something: the server must act for the campaign
(bot/sync/participation.py), and a command that makes the bot give a role, take one back or stop managing one needs
an invoker who could do that by hand (bot/guild_admin/rank.py). Every refusal is an AdminError whose message is a
friendly sentence for an ephemeral reply.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from datetime import datetime

from bot.accounts.linking import LinkingService
from bot.domain.models import Tier
from bot.guild_admin.rank import InvokerRank
from bot.patreon.errors import PatreonError
from bot.store import Store
from bot.sync.campaign import CampaignService, CampaignUnavailable
from bot.sync.participation import Participation
from bot.sync.reconcile import ReconcileService
from bot.sync.role_gateway import RoleGateway
from bot.sync.role_jobs import RoleJobs

log = logging.getLogger(__name__)


class AdminError(Exception):
    """A refusal to show the admin as is."""


class AdminChecks:
    def __init__(
        self,
        store: Store,
        campaign: CampaignService,
        reconcile: ReconcileService,
        linking: LinkingService,
        jobs: RoleJobs,
        gateway: RoleGateway,
        participation: Participation,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.campaign = campaign
        self.reconcile = reconcile
        self.linking = linking
        self.jobs = jobs
        self.gateway = gateway
        self.participation = participation
        self.clock = clock
        self._sync_locks: dict[int, asyncio.Lock] = {}

    async def campaign_tiers(self, refresh: bool, guild_id: int | None = None) -> dict[str, Tier]:
        """The tiers of the campaign this guild follows (None: the `.env` campaign), fresh from Patreon when asked
        and possible, else the stored ones; none when the guild follows no campaign."""
        campaign = self.campaign if guild_id is None else await self.participation.campaign_for(guild_id)
        if campaign is None:
            return {}
        if refresh:
            try:
                return await campaign.refresh_tiers()
            except (PatreonError, CampaignUnavailable) as error:
                log.warning("tier refresh failed, using stored tiers: %s", error)
        return await self.store.get_tiers(await campaign.storage_key())

    async def _assert_takes_part(self, guild_id: int) -> None:
        """Nothing changes for the campaign from a server that doesn't act for it (bot/sync/participation.py)."""
        problem = await self.participation.refusal(guild_id)
        if problem is not None:
            raise AdminError(problem)

    def _assert_outranks(
        self,
        guild_id: int,
        invoker: InvokerRank,
        role_ids: Iterable[int],
        action: str = "make the bot give",
        *,
        removing: bool = False,
    ) -> None:
        """Discord's own rule for the person asking: only roles below their highest role, unless they own the
        server (bot/guild_admin/rank.py); for giving and for taking away alike."""
        refusal = invoker.refusal(role_ids, lambda role_id: self._role(guild_id, role_id), action, removing=removing)
        if refusal is not None:
            log.info("guild=%s: refused user=%s a role above their rank", guild_id, invoker.user_id)
            raise AdminError(refusal)

    def _assert_can_manage(self, guild_id: int) -> None:
        """Every command that changes roles, links or the policy refuses, changing nothing, while the bot
        lacks Manage Roles: otherwise it would half-happen (a link without roles, a sync that changes nobody)."""
        problem = self.gateway.missing_permissions(guild_id)
        if problem is not None:
            raise AdminError(problem)

    async def _known_tier(self, guild_id: int, tier_id: str) -> Tier:
        tiers = await self.campaign_tiers(refresh=False, guild_id=guild_id)
        if tier_id not in tiers:
            tiers = await self.campaign_tiers(refresh=True, guild_id=guild_id)
        if tier_id not in tiers:
            raise AdminError(
                f"`{tier_id}` isn't one of this campaign's tiers. Pick one from the list, or run "
                "`/patreon-admin tiers` to see them."
            )
        return tiers[tier_id]

    def _assert_assignable(self, guild_id: int, role_id: int) -> None:
        refusal = self.gateway.unassignable_roles(guild_id, frozenset({role_id}))
        if role_id in refusal:
            raise AdminError(f"I can't manage that role: {refusal[role_id]}.")

    def _role(self, guild_id: int, role_id: int) -> str:
        return self.gateway.role_name(guild_id, role_id)
