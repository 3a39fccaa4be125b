"""`/patreon-admin check`: everything that would stop roles from flowing, in one list."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.domain.guild_settings import GuildSettings
from bot.domain.models import Tier, TierRoleMap
from bot.store import LAST_REFRESH, WEBHOOK_LAST_SEEN
from bot.sync.role_gateway import RoleGateway
from bot.sync.role_pacing import describe_duration


@dataclass(frozen=True)
class HealthLine:
    ok: bool
    text: str

    def render(self) -> str:
        return f"{'✅' if self.ok else '⚠️'} {self.text}"


def health_report(
    guild_id: int,
    gateway: RoleGateway,
    settings: GuildSettings,
    tier_roles: TierRoleMap,
    tiers: Mapping[str, Tier],
    facts: Mapping[str, object],
    failed_jobs: Sequence[tuple[int, str | None]] = (),
    queued_jobs: int = 0,
    participation: str | None = None,
    *,
    role_calls_per_second: float | None = None,
    rate_limited_calls: int | None = None,
    campaign: str | None = None,
    comps: Sequence[str] = (),
    kick_problem: str | None = None,
) -> list[HealthLine]:
    """`failed_jobs`: (Discord user id, last error) of members whose roles could not be put right;
    `participation`: why this server doesn't act for the campaign, None when it does; `role_calls_per_second`:
    the pace Discord allows one server (bot/sync/role_pacing.py), for an honest estimate of the queue;
    `rate_limited_calls`: 429s Discord sent since start despite the pacing (None: not known); `campaign`: which
    campaign the server follows and how it came to, as a phrase (None: none); `comps`: the active comps, one
    phrase each; `kick_problem`: why the bot can't kick (Kick Members), read only while kick on lapse is on."""
    lines = [HealthLine(participation is None, participation or "This server acts for the Patreon campaign.")]
    if campaign is not None:
        lines.append(HealthLine(True, f"It follows campaign {campaign}."))
    problem = gateway.missing_permissions(guild_id)
    lines.append(HealthLine(problem is None, problem or "The bot has Manage Roles."))

    roles = tier_roles.managed_role_ids() | settings.special_role_ids()
    refused = gateway.unassignable_roles(guild_id, frozenset(roles)) if problem is None else {}
    for role_id, why in sorted(refused.items()):
        lines.append(HealthLine(False, f"Role {role_id} (@{gateway.role_name(guild_id, role_id)}): {why}."))
    if roles and not refused and problem is None:
        lines.append(HealthLine(True, f"All {len(roles)} managed role(s) exist and sit below the bot's role."))

    unknown = sorted(set(tier_roles.roles_by_tier) - set(tiers)) if tiers else []
    for tier_id in unknown:
        lines.append(HealthLine(False, f"Tier {tier_id} is mapped but isn't in the campaign any more."))
    unmapped = [tier.title or tier.id for tier in tiers.values() if tier.id not in tier_roles.roles_by_tier]
    if unmapped:
        lines.append(HealthLine(False, f"Tiers without a role: {', '.join(unmapped)}."))
    elif tiers:
        lines.append(HealthLine(True, "Every tier has a role."))
    if not tiers:
        lines.append(HealthLine(False, "The campaign's tiers couldn't be loaded from Patreon yet."))

    seen = facts.get(WEBHOOK_LAST_SEEN)
    lines.append(
        HealthLine(True, f"Last Patreon webhook: {seen}.")
        if seen
        else HealthLine(False, "No Patreon webhook received yet; check the webhook URL and secret.")
    )
    refresh = facts.get(LAST_REFRESH)
    if isinstance(refresh, dict):
        lines.append(HealthLine(bool(refresh.get("ok")), f"Last refresh {refresh.get('at')}: {refresh.get('detail')}."))
        unlinkable = refresh.get("members_without_user")
        if refresh.get("ok") and isinstance(unlinkable, int) and unlinkable > 0:
            lines.append(
                HealthLine(
                    False,
                    f"{unlinkable} member(s) without a Patreon account (deleted) can't be linked; the refresh "
                    "counted them and still completed.",
                )
            )
    else:
        lines.append(HealthLine(False, "No full refresh has run yet."))
    if failed_jobs:
        shown = "; ".join(f"<@{user_id}>: {error or 'unknown error'}" for user_id, error in failed_jobs[:5])
        more = f" and {len(failed_jobs) - 5} more" if len(failed_jobs) > 5 else ""
        lines.append(HealthLine(False, f"{len(failed_jobs)} member(s) whose roles couldn't be set: {shown}{more}."))
    else:
        lines.append(HealthLine(True, "No member is stuck with roles the bot couldn't set."))
    if queued_jobs and role_calls_per_second:
        estimate = describe_duration(queued_jobs / role_calls_per_second)
        lines.append(
            HealthLine(
                True,
                f"{queued_jobs} member(s) queued for role changes. Discord lets a bot change about "
                f"{role_calls_per_second:.1f} role per second per server, so that takes {estimate} or more "
                "(a tier switch is two changes).",
            )
        )
    elif queued_jobs:
        lines.append(HealthLine(True, f"{queued_jobs} role change(s) queued, applied at Discord's pace."))
    if rate_limited_calls:
        lines.append(
            HealthLine(
                False,
                f"Discord rate-limited {rate_limited_calls} call(s) since the bot started, despite the pacing "
                "(each was retried; nothing is lost).",
            )
        )
    elif rate_limited_calls == 0:
        lines.append(HealthLine(True, "No call was rate-limited by Discord since the bot started."))
    if comps:
        shown = "; ".join(comps[:5]) + (f" and {len(comps) - 5} more" if len(comps) > 5 else "")
        lines.append(HealthLine(True, f"{len(comps)} comp(s) active: {shown}."))
    if settings.kick_after_days > 0:
        days = settings.kick_after_days
        lines.append(
            HealthLine(False, f"Kick on lapse is on ({days} day(s)) but can't work: {kick_problem}")
            if kick_problem
            else HealthLine(True, f"Kick on lapse is on: members lapsed more than {days} day(s) are kicked.")
        )
    if settings.log_channel_id is None:
        lines.append(HealthLine(True, "No log channel set (optional: `/patreon-admin settings log_channel:`)."))
    return lines

