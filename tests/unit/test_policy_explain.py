"""`decide_roles(..., explain=False)` (the refresh and the role-job queue, which show no reasons) gives exactly the
roles, hold and summary of the explained decision that `/patreon status`, the sync preview and `check` show, over
the whole policy matrix of test_policy.py and over random inputs; it only leaves `reasons` empty."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.guild_settings import GuildSettings, RoleMode
from bot.domain.models import MembershipSnapshot, PatronStatus, Tier, TierRoleMap
from bot.domain.policy import decide_roles
from bot.sync.member_plan import plan_member_roles
from tests.unit.test_policy import (
    ENTITLEMENTS,
    HELD,
    INSIDE,
    MATRIX,
    OUTSIDE,
    TIER_ROLES,
    TIERS,
    _memberships,
    _moment,
    _settings,
    _tier_roles,
    _tiers,
    guild,
    member,
)


@pytest.mark.parametrize(("status", "charge", "mode", "keep", "inside", "ent"), MATRIX)
def test_matrix_same_roles_without_reasons(
    status: PatronStatus | None, charge: str | None, mode: RoleMode, keep: bool, inside: bool, ent: str
) -> None:
    tier_ids, amount = ENTITLEMENTS[ent]
    m = member(
        patron_status=status,
        last_charge_status=charge,
        entitled_tier_ids=tier_ids,
        currently_entitled_amount_cents=amount,
        campaign_lifetime_support_cents=5000,
    )
    now = INSIDE if inside else OUTSIDE
    for held in (HELD, frozenset(), TIER_ROLES.managed_role_ids()):
        server = guild(role_mode=mode, keep_until_paid_through=keep)
        shown = decide_roles(m, server, TIER_ROLES, TIERS, now, held)
        quiet = decide_roles(m, server, TIER_ROLES, TIERS, now, held, explain=False)
        assert (quiet.desired, quiet.hold, quiet.summary) == (shown.desired, shown.hold, shown.summary)
        assert quiet.reasons == {} and shown.reasons


def test_not_a_member_same_without_reasons() -> None:
    shown = decide_roles(None, guild(), TIER_ROLES, TIERS, INSIDE, HELD)
    quiet = decide_roles(None, guild(), TIER_ROLES, TIERS, INSIDE, HELD, explain=False)
    assert (quiet.desired, quiet.hold, quiet.summary, quiet.reasons) == (shown.desired, shown.hold, shown.summary, {})


@settings(max_examples=600, deadline=None)
@given(
    membership=st.none() | _memberships,
    guild_settings=_settings,
    tier_roles=_tier_roles,
    tiers=_tiers,
    now=_moment,
    held=st.frozensets(st.integers(1, 15), max_size=6),
)
def test_random_inputs_same_roles_without_reasons(
    membership: MembershipSnapshot | None,
    guild_settings: GuildSettings,
    tier_roles: TierRoleMap,
    tiers: dict[str, Tier],
    now: datetime,
    held: frozenset[int],
) -> None:
    shown = decide_roles(membership, guild_settings, tier_roles, tiers, now, held)
    quiet = decide_roles(membership, guild_settings, tier_roles, tiers, now, held, explain=False)
    assert (quiet.desired, quiet.hold, quiet.summary) == (shown.desired, shown.hold, shown.summary)
    assert quiet.reasons == {}


def _none(roles: frozenset[int]) -> dict[int, str]:
    return {}


def test_plan_member_roles_passes_explain_through() -> None:
    m, silver = member(), frozenset({105})
    shown_decision, shown_plan = plan_member_roles(m, guild(), TIER_ROLES, TIERS, INSIDE, silver, silver, _none)
    quiet_decision, quiet_plan = plan_member_roles(
        m, guild(), TIER_ROLES, TIERS, INSIDE, silver, silver, _none, explain=False
    )
    assert quiet_plan == shown_plan and quiet_decision.desired == shown_decision.desired
    assert quiet_decision.reasons == {} and shown_decision.reasons
