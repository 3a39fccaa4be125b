"""The refresh's batch path: which members, in every acting guild, need a role job, computed in memory.

Each guild's inputs (settings, tier map, tier catalogue, ledger, the links that count there) are loaded once and
every candidate is planned with the same pure rule the one-member path uses (`plan_member_roles`). Only members
whose plan changes something, or whose ledger is stale, become jobs; the job recomputes the plan when it runs, so
a change that arrives meanwhile is never overwritten by this older view. A member Discord fails to look up (5xx,
timeout) becomes a job as well: the job looks again when it runs, and retries within its own bounds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from bot.domain.models import MembershipSnapshot
from bot.domain.policy import managed_role_ids
from bot.store import Store
from bot.sync.reconcile import RoleChangeError, RoleGateway, plan_member_roles

log = logging.getLogger(__name__)

#: Members planned between two yields to the event loop (planning 100,000 takes seconds of CPU).
YIELD_EVERY = 500


@dataclass
class BatchPlan:
    #: (guild id, Discord user id) of every member that needs a job.
    jobs: list[tuple[int, int]] = field(default_factory=list)
    #: Members (guild, user) whose roles differ from the policy (the others in `jobs` only have a stale ledger).
    changes: int = 0
    #: Candidates who are members of the guild and were planned.
    checked: int = 0
    #: Candidates Discord failed to look up; each is in `jobs` so the job plans them later.
    unchecked: int = 0


async def plan_all_guilds(
    store: Store,
    gateway: RoleGateway,
    guild_ids: Iterable[int],
    memberships: Mapping[str, MembershipSnapshot],
    now: datetime,
) -> BatchPlan:
    """Plan every user linked in a way that counts there and every holder of a bot grant, in each of `guild_ids`
    (the servers that act for the campaign: `ReconcileService.acting_guild_ids`).

    `memberships` is the complete listing by Patreon user id: a linked user missing from it is not a member. A
    link made by hand in another server doesn't count here (`Link.counts_in`): its user is planned as unlinked.
    """
    tiers = await store.get_tiers()
    result = BatchPlan()
    for guild_id in guild_ids:
        links = await store.links_counting_in(guild_id)
        settings = await store.get_settings(guild_id)
        tier_roles = await store.get_tier_roles(guild_id)
        grants = await store.grants_in_guild(guild_id)
        every_granted = frozenset().union(*grants.values()) if grants else frozenset()
        refused = gateway.unassignable_roles(guild_id, managed_role_ids(settings, tier_roles) | every_granted)

        def unassignable(roles: frozenset[int], refused: Mapping[int, str] = refused) -> dict[int, str]:
            return {role: refused[role] for role in roles if role in refused}

        complete = gateway.knows_all_members(guild_id)
        for count, user_id in enumerate(sorted(links.keys() | grants.keys()), start=1):
            if count % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let webhooks and the gateway heartbeat through
            actual = gateway.cached_member_roles(guild_id, user_id)
            if actual is None and not complete:
                try:
                    actual = await gateway.member_roles(guild_id, user_id)
                except RoleChangeError as error:
                    log.info("refresh: could not look up user=%s in guild=%s (%s); queued", user_id, guild_id, error)
                    result.unchecked += 1
                    result.jobs.append((guild_id, user_id))
                    continue
            if actual is None:
                continue
            result.checked += 1
            granted = grants.get(user_id, frozenset())
            patreon_id = links.get(user_id)
            membership = memberships.get(patreon_id) if patreon_id is not None else None
            _decision, plan = plan_member_roles(
                membership, settings, tier_roles, tiers, now, actual, granted, unassignable
            )
            if not plan.is_empty:
                result.changes += 1
                result.jobs.append((guild_id, user_id))
            elif granted - actual:
                result.jobs.append((guild_id, user_id))
    return result
