"""One member's plan and outcome: what the policy wants, the minimal role change, and what a reconcile did.

`plan_member_roles` is the one rule both the engine's one-member path (bot/sync/reconcile.py) and the refresh's
batch path (bot/sync/batch_plan.py) use, so they can't disagree; it is pure, like the policy beneath it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bot.domain.comps import Comp, with_comps
from bot.domain.guild_settings import GuildSettings
from bot.domain.models import MembershipSnapshot, RoleDecision, Tier, TierRoleMap
from bot.domain.policy import decide_roles
from bot.domain.role_plan import RolePlan, plan_roles


@dataclass(frozen=True)
class MemberPlan:
    guild_id: int
    user_id: int
    membership: MembershipSnapshot | None
    decision: RoleDecision
    actual: frozenset[int]
    granted: frozenset[int]
    plan: RolePlan


@dataclass
class ReconcileOutcome:
    guild_id: int
    user_id: int
    added: frozenset[int] = frozenset()
    removed: frozenset[int] = frozenset()
    blocked: dict[int, str] = field(default_factory=dict)
    summary: str = ""
    in_guild: bool = True
    error: str | None = None
    #: Set with `error`: True when retrying cannot help (missing permission, member gone).
    permanent: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)


def plan_member_roles(
    membership: MembershipSnapshot | None,
    settings: GuildSettings,
    tier_roles: TierRoleMap,
    tiers: Mapping[str, Tier],
    now: datetime,
    actual: frozenset[int],
    granted: frozenset[int],
    unassignable: Callable[[frozenset[int]], Mapping[int, str]],
    *,
    explain: bool = True,
    comps: Sequence[Comp] = (),
) -> tuple[RoleDecision, RolePlan]:
    """The policy's decision and the minimal plan for one member: the one rule both the one-member path and
    the refresh's batch path use, so they can't disagree. `unassignable(roles)` says which of `roles` the bot
    may not touch, and why. `explain=False` (nothing will show the reasons) builds no per-role reason. `comps`:
    the member's comps here (bot/domain/comps.py); those active at `now` are wanted too.
    """
    decision = decide_roles(
        membership, settings, tier_roles, tiers, now, held_managed_roles=granted & actual, explain=explain
    )
    decision = with_comps(decision, comps, now, explain=explain)
    touched = frozenset(decision.desired | (granted & actual))
    return decision, plan_roles(decision, actual, granted, dict(unassignable(touched)))
