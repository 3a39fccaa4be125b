"""`/patreon status`: what is linked, the tier, and why each managed role is or isn't held."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from bot.domain.models import Tier
from bot.store import Link
from bot.sync.reconcile import MemberPlan


def describe_status(
    link: Link | None,
    member_plan: MemberPlan | None,
    tiers: Mapping[str, Tier],
    managed_roles: frozenset[int],
    role_name: Callable[[int], str],
) -> str:
    if member_plan is None:
        return "You're not a member of this server as far as the bot can see."
    lines: list[str] = []
    membership = member_plan.membership
    if link is None:
        lines.append("**Not linked.** Run `/patreon link` to connect your Patreon account.")
    else:
        lines.append(f"**Linked** to Patreon user `{link.patreon_user_id}` (since {link.linked_at:%Y-%m-%d}).")
        if membership is None:
            lines.append("You aren't a member of this creator's Patreon campaign.")
        else:
            status = membership.patron_status.value if membership.patron_status else "free member (never pledged)"
            titles = [tiers[tier].title if tier in tiers else tier for tier in membership.entitled_tier_ids]
            lines.append(
                f"Patron status: **{status}**; tier: **{', '.join(titles) or 'none'}**; "
                f"last charge: {membership.last_charge_status or 'none'}"
                f"{f' on {membership.last_charge_date:%Y-%m-%d}' if membership.last_charge_date else ''}."
            )
    lines.append(f"Decision: {member_plan.decision.summary}")
    if not managed_roles:
        lines.append("This server hasn't mapped any Patreon tiers to roles yet.")
        return "\n".join(lines)
    lines.append("Roles:")
    for role_id in sorted(managed_roles, key=role_name):
        lines.append(f"{_role_line(member_plan, role_id, role_name(role_id))}")
    return "\n".join(lines)


def _role_line(plan: MemberPlan, role_id: int, name: str) -> str:
    holds = role_id in plan.actual
    reason = plan.decision.reasons.get(role_id, "")
    if role_id in plan.plan.blocked:
        return f"⚠️ @{name}: should change but can't: {plan.plan.blocked[role_id]}"
    if holds and role_id not in plan.granted and role_id not in plan.decision.desired:
        return f"✅ @{name}: held, given by someone else (this bot never removes it)"
    if holds:
        return f"✅ @{name}: held ({reason})" if reason else f"✅ @{name}: held"
    if role_id in plan.decision.desired:
        return f"⏳ @{name}: due, the bot gives it at the next sync ({reason})"
    return f"❌ @{name}: not held ({reason})" if reason else f"❌ @{name}: not held"
