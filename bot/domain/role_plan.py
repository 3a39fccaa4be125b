"""Turn (what the policy wants, what the member holds, what this bot granted) into the minimal change.

Pure code: the reconcile service feeds it and applies the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.domain.models import RoleDecision


@dataclass(frozen=True)
class RolePlan:
    add: frozenset[int] = frozenset()
    remove: frozenset[int] = frozenset()
    #: Roles the plan wanted to change but the bot may not touch, with the reason (hierarchy, managed...).
    blocked: dict[int, str] = field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        return not self.add and not self.remove

    def final_roles(self, actual: frozenset[int]) -> frozenset[int]:
        return (actual - self.remove) | self.add


def plan_roles(
    decision: RoleDecision,
    actual: frozenset[int],
    granted_by_bot: frozenset[int],
    unassignable: dict[int, str] | None = None,
) -> RolePlan:
    """Add what is desired and missing; remove only what this bot granted and is no longer desired.

    A role someone else gave is never removed, even when it is a mapped role: the ledger of grants is
    the only licence to take a role away. During a hold nothing is removed.
    """
    unassignable = unassignable or {}
    add = decision.desired - actual
    remove = frozenset() if decision.hold else (granted_by_bot & actual) - decision.desired
    blocked = {role: unassignable[role] for role in (add | remove) if role in unassignable}
    return RolePlan(add=add - blocked.keys(), remove=remove - blocked.keys(), blocked=blocked)


def grants_to_forget(plan: RolePlan, actual: frozenset[int], granted_by_bot: frozenset[int]) -> set[int]:
    """Which grants to forget once the plan has been applied (its additions are recorded as they are made).

    Grants for roles the member no longer holds (someone removed them by hand) are forgotten too, so a
    role later given by hand is not mistaken for ours.
    """
    return set(plan.remove) | {role for role in granted_by_bot if role not in actual and role not in plan.add}
