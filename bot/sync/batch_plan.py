"""The refresh's batch path: which members, in every acting guild, need a role job, computed in memory.

Each guild's inputs (settings, tier map, tier catalogue, which roles the bot may touch) are loaded once per
refresh; the ledger and links only for the members being planned, a page at a time. Every member is planned with
the same pure rule the one-member path uses (`plan_member_roles`). Only members whose plan changes something, or
whose ledger is stale, become jobs; the job recomputes the plan when it runs, so a change that arrives meanwhile
is never overwritten by this older view. A member Discord fails to look up (5xx, timeout) becomes a job as well:
the job looks again when it runs, and retries within its own bounds.

A guild is planned in full (every member a page shows) or for changes only (`GuildInputs.full`); which, and why,
is the refresh's decision (bot/sync/plan_scope.py). For changes only, a member whose snapshot is unchanged is still
planned when time alone may have changed their roles (`may_change_by_time`): the store finds those from the moments
it keeps with each membership (`Store.memberships_due_by_time`), and the refresh plans them after the listing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bot.domain import billing
from bot.domain.comps import Comp
from bot.domain.guild_settings import GuildSettings
from bot.domain.models import MembershipSnapshot, Tier, TierRoleMap
from bot.domain.policy import managed_role_ids
from bot.patreon.member_rows import MemberRows
from bot.store import Store
from bot.sync.member_plan import plan_member_roles
from bot.sync.role_gateway import RoleChangeError, RoleGateway

log = logging.getLogger(__name__)

#: Members planned between two yields to the event loop (planning 100,000 takes seconds of CPU).
YIELD_EVERY = 500


def may_change_by_time(membership: billing.BillingTimes, since: datetime, now: datetime, grace_days: int) -> bool:
    """Whether the policy's decision for this unchanged snapshot may differ between `since` and `now`.

    Time matters to the policy only for a declined payment (its grace ends `grace_days` after the last charge)
    and a cancelled pledge (kept until the paid-through date: the next charge date, or the last paid charge plus
    its cadence). A superset is fine (it costs one plan); tests/unit/test_plan_scope.py holds it to the policy.
    """
    found = billing.time_moments(membership)
    if found is None:
        return False
    since, now = billing.as_utc(since), billing.as_utc(now)
    upcoming, paid_end, last = found
    grace_end = billing.add_days(last, grace_days) if last is not None else None
    return any(moment is not None and since < moment <= now for moment in (upcoming, paid_end, grace_end))


@dataclass
class GuildInputs:
    """What planning one guild needs besides its members: loaded once per refresh."""

    guild_id: int
    settings: GuildSettings
    tier_roles: TierRoleMap
    #: Plan every member (else only what changed since `since`).
    full: bool
    #: The engine's time of the last plan of this guild (unused when `full`).
    since: datetime | None = None
    #: Members already planned by this refresh (changes-only guilds: a member is planned once).
    planned: set[int] = field(default_factory=set)
    _refused: dict[int, str | None] = field(default_factory=dict)
    #: The guild's active comps by member, read once per refresh (`comps`).
    _comps: dict[int, list[Comp]] | None = None

    async def comps(self, store: Store, now: datetime) -> dict[int, list[Comp]]:
        """The comps active at `now`, by member: a comped role is wanted, so the batch doesn't queue its removal."""
        if self._comps is None:
            self._comps = await store.guild_comps(self.guild_id, now)
        return self._comps

    def unassignable(self, gateway: RoleGateway, roles: frozenset[int]) -> dict[int, str]:
        """`gateway.unassignable_roles`, asked once per role per refresh."""
        unknown = frozenset(role for role in roles if role not in self._refused)
        if unknown:
            found = gateway.unassignable_roles(self.guild_id, unknown)
            self._refused.update({role: found.get(role) for role in unknown})
        return {role: why for role in roles if (why := self._refused[role]) is not None}


def guild_fingerprint(
    settings: GuildSettings, tier_roles: TierRoleMap, tiers: Mapping[str, Tier], refused: Mapping[int, str]
) -> str:
    """Everything besides the members that decides a guild's roles: when it differs from the last plan's, every
    member of the guild is planned again (a settings or mapping change, a new tier price, a role moved)."""
    mapping = sorted((tier, sorted(roles)) for tier, roles in tier_roles.roles_by_tier.items())
    catalogue = sorted((t.id, t.amount_cents, t.published) for t in tiers.values())
    return repr((settings, mapping, catalogue, sorted(refused.items())))


async def load_guild_inputs(store: Store, gateway: RoleGateway, guild_id: int, tiers: Mapping[str, Tier]) -> tuple[
    GuildSettings, TierRoleMap, str
]:
    """A guild's settings, tier map and fingerprint, as they are now."""
    settings = await store.get_settings(guild_id)
    tier_roles = await store.get_tier_roles(guild_id)
    refused = gateway.unassignable_roles(guild_id, managed_role_ids(settings, tier_roles))
    return settings, tier_roles, guild_fingerprint(settings, tier_roles, tiers, refused)


@dataclass
class BatchPlan:
    #: (guild id, Discord user id) of every member that needs a job.
    jobs: list[tuple[int, int]] = field(default_factory=list)
    #: Members (guild, user) whose roles differ from the policy (the others in `jobs` only have a stale ledger).
    changes: int = 0
    #: Candidates looked at (whether or not they are members of the guild).
    planned: int = 0
    #: Candidates who are members of the guild and were planned.
    checked: int = 0
    #: Candidates Discord failed to look up; each is in `jobs` so the job plans them later.
    unchecked: int = 0

    def take_jobs(self) -> list[tuple[int, int]]:
        jobs, self.jobs = self.jobs, []
        return jobs


class RefreshPlanner:
    """Plans the acting guilds page by page while the listing streams in, then the members it can't show."""

    def __init__(
        self,
        store: Store,
        gateway: RoleGateway,
        guilds: Sequence[GuildInputs],
        tiers: Mapping[str, Tier],
        now: datetime,
        campaign_id: str | None = None,
    ) -> None:
        """`guilds` all follow the campaign `campaign_id` (its stored key), whose memberships alone count there."""
        self.store = store
        self.gateway = gateway
        self.guilds = list(guilds)
        self.tiers = tiers
        self.now = now
        self.campaign_id = campaign_id
        self.result = BatchPlan()

    async def plan_page(self, page: MemberRows, changed: set[str]) -> None:
        """Plan the members of one listing page: all of them in a full guild, else the ones whose snapshot
        `changed` (by Patreon user id; the ones time may have changed come from the store after the listing)."""
        for guild in self.guilds:
            if guild.full:
                subject = list(page.snapshots())
            else:
                subject = [page.snapshot(index) for index, user in enumerate(page.user_ids) if user in changed]
            if not subject:
                continue
            by_patreon = {m.patreon_user_id: m for m in subject if m.patreon_user_id is not None}
            links = await self.store.links_counting_in_for_patreon(guild.guild_id, by_patreon)
            await self._plan(guild, {user: by_patreon[patreon_id] for user, patreon_id in links.items()})

    async def plan_members(self, guild: GuildInputs, discord_ids: Iterable[int]) -> None:
        """Plan these members of `guild` from the store: their counting link's stored membership (None when
        unlinked here or no longer in the campaign)."""
        wanted = set(discord_ids) - guild.planned
        if not wanted:
            return
        links = await self.store.links_counting_in_for_discord(guild.guild_id, wanted)
        stored = await self.store.memberships_of(links.values(), self.campaign_id)
        await self._plan(guild, {user: stored.get(links[user]) if user in links else None for user in wanted})

    async def _plan(self, guild: GuildInputs, members: Mapping[int, MembershipSnapshot | None]) -> None:
        guild_id, result = guild.guild_id, self.result
        grants = await self.store.grants_of_users(guild_id, members)
        comps = await guild.comps(self.store, self.now)
        for count, user_id in enumerate(sorted(members), start=1):
            if count % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let webhooks and the gateway heartbeat through
            if not guild.full:
                if user_id in guild.planned:
                    continue
                guild.planned.add(user_id)
            result.planned += 1
            if members[user_id] is None and not grants.get(user_id) and not comps.get(user_id):
                # No membership of this campaign, no grant, no comp: the plan is empty whatever the member holds,
                # so Discord isn't asked (start-up asks each server only for links that can matter there).
                continue
            actual = self.gateway.cached_member_roles(guild_id, user_id)
            if actual is None and not self.gateway.knows_member(guild_id, user_id):
                try:
                    actual = await self.gateway.member_roles(guild_id, user_id)
                except RoleChangeError as error:
                    log.info("refresh: could not look up user=%s in guild=%s (%s); queued", user_id, guild_id, error)
                    result.unchecked += 1
                    result.jobs.append((guild_id, user_id))
                    continue
            if actual is None:
                continue
            result.checked += 1
            granted = grants.get(user_id, frozenset())
            _decision, plan = plan_member_roles(
                members[user_id],
                guild.settings,
                guild.tier_roles,
                self.tiers,
                self.now,
                actual,
                granted,
                lambda roles: guild.unassignable(self.gateway, roles),
                explain=False,  # the refresh shows no per-role reason
                comps=comps.get(user_id, ()),
            )
            if not plan.is_empty:
                result.changes += 1
                result.jobs.append((guild_id, user_id))
            elif granted - actual:
                result.jobs.append((guild_id, user_id))
