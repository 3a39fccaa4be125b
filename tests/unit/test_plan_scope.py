"""The pure parts of "plan only what changed": the time rule held to the policy, marks, and when a guild is
planned in full."""

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain import billing
from bot.domain.guild_settings import GuildSettings
from bot.domain.models import MembershipSnapshot, PatronStatus, Tier, TierRoleMap
from bot.domain.policy import decide_roles
from bot.sync.batch_plan import guild_fingerprint, may_change_by_time
from bot.sync.plan_scope import FULL_REPLAN_INTERVAL, DirtyMembers, GuildScope

T0 = datetime(2026, 11, 1, tzinfo=UTC)
TIERS = {"1": Tier("1", "Gold", 1000), "2": Tier("2", "Free", 0)}
TIER_ROLES = TierRoleMap({"1": frozenset({11}), "2": frozenset({12})})
moments = st.builds(lambda hours: T0 + timedelta(hours=hours), st.integers(-24 * 70, 24 * 70))


@st.composite
def memberships(draw: st.DrawFn) -> MembershipSnapshot:
    return MembershipSnapshot(
        "m",
        "c",
        "p",
        patron_status=draw(st.sampled_from([None, *PatronStatus])),
        last_charge_status=draw(st.sampled_from(billing.DOCUMENTED_CHARGE_STATUSES)),
        last_charge_date=draw(st.none() | moments),
        next_charge_date=draw(st.none() | moments),
        pledge_cadence=draw(st.sampled_from([None, 0, 1, 12])),
        currently_entitled_amount_cents=draw(st.sampled_from([0, 1000])),
        entitled_tier_ids=draw(st.sampled_from([(), ("1",), ("2",), ("1", "2")])),
    )


@settings(max_examples=600, deadline=None)
@given(
    membership=memberships(),
    since=moments,
    later=st.integers(0, 24 * 40),
    grace=st.sampled_from([0, 1, 7, 30]),
    keep=st.booleans(),
    held=st.sampled_from([frozenset(), frozenset({11}), frozenset({11, 12})]),
)
def test_a_decision_that_time_alone_changes_is_always_replanned(membership, since, later, grace, keep, held):
    """If the policy decides differently at `now` than at `since` for the same snapshot, the refresh's time rule
    must pick the member (else only the daily full re-plan would)."""
    now = since + timedelta(hours=later)
    guild = GuildSettings(guild_id=1, decline_grace_days=grace, keep_until_paid_through=keep)
    before = decide_roles(membership, guild, TIER_ROLES, TIERS, since, held)
    after = decide_roles(membership, guild, TIER_ROLES, TIERS, now, held)
    if (before.desired, before.hold) != (after.desired, after.hold):
        assert may_change_by_time(membership, since, now, grace)


def test_an_active_patron_is_never_replanned_for_time():
    active = MembershipSnapshot("m", "c", "p", patron_status=PatronStatus.ACTIVE, last_charge_status="Paid",
                                last_charge_date=T0, next_charge_date=T0 + timedelta(days=30))  # fmt: skip
    assert not may_change_by_time(active, T0, T0 + timedelta(days=60), 7)


def test_marks_are_taken_once_restored_after_a_failure_and_bounded():
    dirty = DirtyMembers(limit=3)
    dirty.mark(1, 10)
    dirty.mark(1, 11)
    dirty.mark(2, 20)
    taken = dirty.take()
    assert taken == ({1: {10, 11}, 2: {20}}, set())
    assert dirty.take() == ({}, set())
    dirty.mark(1, 12)
    dirty.restore(*taken)
    assert dirty.take() == ({1: {10, 11, 12}, 2: {20}}, set())
    for user in range(5):  # a mass change (a raid, a role deleted): the guild is planned in full instead
        dirty.mark(3, user)
    assert dirty.take() == ({}, {3})


def test_a_guild_is_planned_in_full_first_on_request_daily_and_when_its_inputs_change():
    scope, fingerprint = GuildScope(), guild_fingerprint(GuildSettings(guild_id=1), TIER_ROLES, TIERS, {})
    assert scope.full_reason(1, fingerprint, T0, False) == "first plan since start-up"
    scope.planned(1, fingerprint, T0, T0, full=True)
    assert scope.full_reason(1, fingerprint, T0 + timedelta(hours=1), False) is None
    assert scope.full_reason(1, fingerprint, T0 + timedelta(hours=1), True) is not None, "too many marks"
    assert scope.full_reason(1, fingerprint, T0 + FULL_REPLAN_INTERVAL, False) == "daily full re-plan"
    scope.planned(1, fingerprint, T0 + timedelta(hours=1), T0, full=False)
    assert scope.full_reason(1, fingerprint, T0 + FULL_REPLAN_INTERVAL, False) == "daily full re-plan"
    for changed in (
        guild_fingerprint(GuildSettings(guild_id=1, decline_grace_days=3), TIER_ROLES, TIERS, {}),
        guild_fingerprint(GuildSettings(guild_id=1), TierRoleMap({"1": frozenset({13})}), TIERS, {}),
        guild_fingerprint(GuildSettings(guild_id=1), TIER_ROLES, {**TIERS, "1": Tier("1", "Gold", 1500)}, {}),
        guild_fingerprint(GuildSettings(guild_id=1), TIER_ROLES, TIERS, {11: "above the bot"}),
    ):
        assert scope.full_reason(1, changed, T0 + timedelta(hours=2), False) is not None
    scope.request_full(1)
    assert scope.full_reason(1, fingerprint, T0 + timedelta(hours=2), False) == "asked for by a sync"
    scope.planned(1, fingerprint, T0 + timedelta(hours=2), T0, full=True)
    assert scope.full_reason(1, fingerprint, T0 + timedelta(hours=3), False) is None


def test_the_listing_gc_threshold_is_put_back_even_when_the_listing_fails():
    import gc

    import pytest

    from bot.sync.refresh_listing import LISTING_GC_THRESHOLD, fewer_collections

    before = gc.get_threshold()
    with pytest.raises(RuntimeError), fewer_collections():
        assert gc.get_threshold()[0] >= LISTING_GC_THRESHOLD
        raise RuntimeError("Patreon failed on page 3")
    assert gc.get_threshold() == before
