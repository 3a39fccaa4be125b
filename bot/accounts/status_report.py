"""`/patreon status`: what is linked, the tier, and why each managed role is or isn't held.

What a server is told stays within what it acts for: a server that doesn't take part (bot/sync/participation.py)
hears nothing of the patron's Patreon account, and a link made by hand in another server is not shown as the
patron's account here, since it gives nothing here (`Link.counts_in`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from bot.accounts.linked_role_view import describe_connection
from bot.domain.billing import cadence_months
from bot.domain.models import Tier
from bot.domain.money import DEFAULT_CURRENCY, describe_pledge
from bot.store import Link, Store
from bot.sync.member_plan import MemberPlan
from bot.sync.reconcile import ReconcileService

NOT_HERE = "This server doesn't use the bot for Patreon roles."


async def member_status(
    store: Store, reconcile: ReconcileService, role_name: Callable[[int, int], str], guild_id: int, user_id: int
) -> str:
    """The whole `/patreon status` answer for this member in this server."""
    if await reconcile.participation_refusal(guild_id) is not None:
        return NOT_HERE
    report = describe_status(
        guild_id,
        await store.get_link_by_discord(user_id),
        await reconcile.plan_member(guild_id, user_id),
        await store.get_tiers(await reconcile.campaign_key(guild_id)),
        await reconcile.managed_roles(guild_id),
        lambda role_id: role_name(guild_id, role_id),
        (await store.get_settings(guild_id)).currency,
    )
    return report + describe_connection(await store.role_connection(user_id))


def describe_status(
    guild_id: int,
    link: Link | None,
    member_plan: MemberPlan | None,
    tiers: Mapping[str, Tier],
    managed_roles: frozenset[int],
    role_name: Callable[[int], str],
    currency: str = DEFAULT_CURRENCY,
) -> str:
    if member_plan is None:
        return "You're not a member of this server as far as the bot can see."
    lines: list[str] = []
    membership = member_plan.membership
    if link is None:
        lines.append("**Not linked.** Run `/patreon link` to connect your Patreon account.")
    elif not link.counts_in(guild_id):
        lines.append(
            "You were **linked by hand in another server**, by an admin there; that link gives no roles here. "
            "Run `/patreon link` to sign in to your own Patreon account, which counts everywhere."
        )
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
            if membership.currently_entitled_amount_cents > 0:
                pledge = describe_pledge(membership, currency, cadence_months(membership))
                lines.append(f"Pledge: {pledge} (the campaign's currency is {currency}).")
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
