"""Comps: a managed role an admin gives one member for a while, whatever they pledge (rules: docs/policy.md).

A comp adds its role to what the policy wants while it lasts; it never holds anything else and never removes a
role. Because the engine records every role it adds in the grant ledger, a comped role is the bot's grant: it goes
when the comp ends unless a tier still gives it, and a role the member already held by hand is never the comp's to
take. Pure: no clock but the one passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from bot.domain import billing
from bot.domain.models import RoleDecision

#: A comp lasts between one day and ten years.
MIN_COMP_DAYS = 1
MAX_COMP_DAYS = 3650
#: The reason an admin gives is shown in status, the report and the log channel: one short line.
MAX_COMP_REASON = 200
ACTIVE = "active"
ENDED = "ended"


@dataclass(frozen=True)
class Comp:
    guild_id: int
    user_id: int
    role_id: int
    expires_at: datetime
    reason: str
    granted_by: int
    granted_at: datetime
    state: str = ACTIVE

    def active_at(self, now: datetime) -> bool:
        return self.state == ACTIVE and billing.as_utc(now) < billing.as_utc(self.expires_at)

    def describe(self) -> str:
        why = f": {self.reason}" if self.reason else ""
        return f"comp until {billing.as_utc(self.expires_at):%Y-%m-%d %H:%M} UTC{why}"


def clean_reason(reason: str | None) -> str:
    """One line, no control characters, at most MAX_COMP_REASON characters (the caller refuses a longer one)."""
    printable = "".join(ch if ch.isprintable() else " " for ch in reason or "")
    return " ".join(printable.split())


def comp_expiry(current: Comp | None, now: datetime, days: int) -> datetime:
    """A new comp ends `days` from now; renewing an active one adds `days` to its end (never shortens it)."""
    start = billing.as_utc(now)
    if current is not None and current.active_at(now):
        start = max(start, billing.as_utc(current.expires_at))
    return start + timedelta(days=days)


def with_comps(decision: RoleDecision, comps: Iterable[Comp], now: datetime, *, explain: bool = True) -> RoleDecision:
    """`decision` with every comp active at `now` added to `desired` (a tier's reason stays first)."""
    active = [comp for comp in comps if comp.active_at(now)]
    if not active:
        return decision
    desired = decision.desired | {comp.role_id for comp in active}
    if not explain:
        return replace(decision, desired=desired)
    reasons = dict(decision.reasons)
    for comp in sorted(active, key=lambda comp: comp.role_id):
        already = decision.reasons.get(comp.role_id) if comp.role_id in decision.desired else None
        reasons[comp.role_id] = f"{already}; {comp.describe()}" if already else comp.describe()
    return replace(decision, desired=desired, reasons=reasons)
