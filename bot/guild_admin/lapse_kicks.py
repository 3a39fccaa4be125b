"""Kick on lapse (off by default): remove members whose entitlement ended more than `kick_after_days` ago.

Only members the bot knows were entitled and lapsed are ever candidates: the engine records a lapse when it takes
the last tier role it had given a member whose own link (OAuth, auto-match) names a pledge Patreon no longer calls
active (bot/sync/reconcile.py `not_own_lapse`), so someone who never was a patron here, whose roles were all given
by hand, who is linked by hand, or who still pays while an admin's `unmap` or setting took their role, never is one.
Before each kick the member is planned again from the stored membership: entitled again, paying again, linked by
hand, on hold (grace, paid-through), comped or unlinked means no kick. Leaving or joining the server forgets a
lapse (`start_afresh`, from the gateway's member events), so a rejoin starts afresh even between two sweeps, and the
sweep forgets a lapse from before the member's Discord `joined_at` (a leave and rejoin while the bot was down, whose
events never reached it: review 6, R6-5). The rule of
bot/domain/kick_rules.py spares the owner, bots, anyone the bot can't outrank and anyone holding a role the bot
didn't give at or above the admin's protect role. Upstream failure never removes anyone: kicks happen only while
the campaign's last refresh listed every member without error and is recent (`REFRESH_FRESH_FOR`).
`/patreon-admin kick-preview` shows the same list without kicking.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

from bot.domain.guild_settings import GuildSettings
from bot.domain.kick_rules import MemberRank, kick_refusal
from bot.store import LAST_REFRESH, Store
from bot.sync.participation import Participation
from bot.sync.reconcile import ReconcileService, not_own_lapse
from bot.sync.role_gateway import RoleChangeError
from bot.sync.worker import BackgroundWorker

log = logging.getLogger(__name__)

#: A refresh older than this (its listing may no longer be true) allows no kick.
REFRESH_FRESH_FOR = timedelta(hours=2)
#: How often the sweep looks (lapses are counted in days).
SWEEP_EVERY = timedelta(hours=1)


class KickFailed(Exception):
    """Discord refused or failed the kick."""


@runtime_checkable
class KickGateway(Protocol):
    """What kick on lapse needs from Discord (bot/discord_io/kicks.py)."""

    def missing_kick_permission(self, guild_id: int) -> str | None: ...

    def member_rank(self, guild_id: int, user_id: int) -> MemberRank | None: ...

    def role_position(self, guild_id: int, role_id: int) -> int | None: ...

    async def kick_member(self, guild_id: int, user_id: int, reason: str) -> None: ...


@dataclass
class KickCandidate:
    user_id: int
    lapsed_at: datetime
    #: Why they stay; None: they go.
    spared: str | None = None


@dataclass
class KickSweep:
    guild_id: int
    #: Why nobody is kicked in this server now (off, no permission, Patreon failing), or None.
    blocked: str | None = None
    candidates: list[KickCandidate] = field(default_factory=list)

    @property
    def going(self) -> list[KickCandidate]:
        return [candidate for candidate in self.candidates if candidate.spared is None]


class LapseKicks:
    def __init__(
        self,
        store: Store,
        reconcile: ReconcileService,
        gateway: KickGateway | None,
        participation: Participation,
        clock: Callable[[], datetime],
    ) -> None:
        """`gateway` None (no Discord adapter: the engine's tests): nothing is ever kicked."""
        self.store = store
        self.reconcile = reconcile
        self.gateway = gateway
        self.participation = participation
        self.clock = clock

    async def start_afresh(self, guild_id: int, user_id: int) -> None:
        """The member left or joined this server (cogs/member_events.py): a lapse from before never counts, even when
        no sweep saw them gone (review 5, R5-10)."""
        await self.store.clear_lapse(guild_id, user_id)

    async def preview(self, guild_id: int) -> KickSweep:
        """Who would go now, and who is spared and why; kicks nobody."""
        return await self._plan(guild_id)

    async def sweep(self) -> list[tuple[int, int]]:
        """Kick the lapsed members of every acting server that asked for it; returns (guild, user) kicked."""
        kicked: list[tuple[int, int]] = []
        for guild_id in await self.reconcile.acting_guild_ids():
            plan = await self._plan(guild_id)
            if plan.blocked is not None:
                continue
            for candidate in plan.going:
                if await self._kick(guild_id, candidate, await self.store.get_settings(guild_id)):
                    kicked.append((guild_id, candidate.user_id))
        return kicked

    async def _plan(self, guild_id: int) -> KickSweep:
        sweep = KickSweep(guild_id)
        settings = await self.store.get_settings(guild_id)
        sweep.blocked = await self._blocked(guild_id, settings)
        if settings.kick_after_days <= 0 or self.gateway is None:
            return sweep
        now = self.clock()
        threshold = settings.kick_protect_rank_id
        position = self.gateway.role_position(guild_id, threshold) if threshold is not None else None
        if threshold is not None and position is None:
            sweep.blocked = sweep.blocked or "the protect role no longer exists; set it again"
        lapsed = await self.store.lapses_before(guild_id, now - timedelta(days=settings.kick_after_days))
        tier_roles = (await self.store.get_tier_roles(guild_id)).managed_role_ids()
        tiers = await self.store.get_tiers(await self.reconcile.campaign_key(guild_id))
        for user_id, lapsed_at in lapsed.items():
            candidate = KickCandidate(user_id, lapsed_at)
            try:
                member_plan = await self.reconcile.plan_member(guild_id, user_id, explain=False)
            except RoleChangeError as error:
                candidate.spared = f"Discord couldn't look them up ({error})"
                sweep.candidates.append(candidate)
                continue
            if member_plan is None:
                await self.store.clear_lapse(guild_id, user_id)  # they left: a rejoin starts afresh
                continue
            membership = member_plan.membership
            rank = self.gateway.member_rank(guild_id, user_id)
            if rank is not None and rank.joined_at is not None and lapsed_at < rank.joined_at:
                await self.store.clear_lapse(guild_id, user_id)  # left and rejoined since, unseen: starts afresh
                log.info("guild=%s user=%s: lapse cleared: rejoined the server after it", guild_id, user_id)
                continue
            link = await self.store.get_link_by_discord(user_id)
            why_not = not_own_lapse(link, membership, settings, tiers, now)
            if membership is None or membership.patron_status is None:
                candidate.spared = "not linked to a patron of the campaign here any more"
            elif why_not is not None:  # an admin's link or mapping, not their own pledge: never theirs to be kicked
                await self.store.clear_lapse(guild_id, user_id)
                log.info("guild=%s user=%s: lapse cleared: %s", guild_id, user_id, why_not)
                continue
            elif member_plan.decision.desired & tier_roles and not member_plan.decision.hold:
                await self.store.clear_lapse(guild_id, user_id)  # entitled again: a later lapse counts afresh
                continue
            elif member_plan.decision.hold:
                candidate.spared = "on hold (grace period or paid-through time)"
            elif rank is None:
                candidate.spared = "not known to the bot"
            else:
                candidate.spared = kick_refusal(rank, member_plan.granted & member_plan.actual, position)
            sweep.candidates.append(candidate)
        return sweep

    async def _blocked(self, guild_id: int, settings: GuildSettings) -> str | None:
        if settings.kick_after_days <= 0:
            return "kick on lapse is off (`/patreon-admin settings kick_after_days:<n>` turns it on)"
        refusal = await self.participation.refusal(guild_id)
        if refusal is not None:
            return refusal
        if self.gateway is None:
            return "the bot can't kick here"
        problem = self.gateway.missing_kick_permission(guild_id)
        if problem is not None:
            return problem
        campaign = await self.participation.campaign_for(guild_id)
        if campaign is None:
            return "this server follows no campaign"
        fact = await self.store.get_fact(campaign.fact_key(LAST_REFRESH))
        if not isinstance(fact, dict) or fact.get("ok") is not True:
            return "the last refresh from Patreon failed or hasn't run; nobody is kicked until one lists every member"
        at = datetime.fromisoformat(str(fact.get("at")))
        at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
        if self.clock() - at > REFRESH_FRESH_FOR:
            return "the last complete refresh from Patreon is too old; nobody is kicked until a fresh one succeeds"
        return None

    async def _kick(self, guild_id: int, candidate: KickCandidate, settings: GuildSettings) -> bool:
        assert self.gateway is not None
        user_id = candidate.user_id
        since = f"{candidate.lapsed_at:%Y-%m-%d}"
        reason = f"Patreon kick on lapse: entitlement ended {since}, more than {settings.kick_after_days} day(s) ago"
        try:
            await self.gateway.kick_member(guild_id, user_id, reason)
        except KickFailed as error:
            log.warning("guild=%s: could not kick user=%s: %s", guild_id, user_id, error)
            await self.reconcile.log_event(guild_id, f"Could not kick <@{user_id}> (kick on lapse): {error}")
            return False
        await self.store.clear_lapse(guild_id, user_id)
        await self.reconcile.log_event(guild_id, f"Kicked <@{user_id}>: {reason}")
        return True


class LapseKickSweeper(BackgroundWorker):
    """Runs `LapseKicks.sweep` at start and then every `SWEEP_EVERY` of the clock."""

    name = "kick on lapse"

    def __init__(self, kicks: LapseKicks, clock: Callable[[], datetime]) -> None:
        super().__init__(clock)
        self.kicks = kicks
        self._next: datetime | None = None

    async def work(self) -> bool:
        now = self.clock()
        if self._next is not None and now < self._next:
            return False
        self._next = now + SWEEP_EVERY
        await self.kicks.sweep()
        return False

    async def next_due(self) -> datetime | None:
        return self._next

    async def busy(self) -> bool:
        return False
