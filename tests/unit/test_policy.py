"""The role policy of docs/policy.md: an exhaustive matrix against an independent oracle, targeted cases, properties."""

from __future__ import annotations

import dataclasses
import itertools
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.billing import DOCUMENTED_CHARGE_STATUSES
from bot.domain.guild_settings import GuildSettings, RoleMode
from bot.domain.models import MembershipSnapshot, PatronStatus, RoleDecision, Tier, TierRoleMap
from bot.domain.policy import _kept, _Standing, _Verdict, decide_roles, managed_role_ids

# --- A small campaign: Free (0), Silver (5.00), Gold (10.00), and an unpublished Platinum (12.00). ---
FREE, SILVER, GOLD, PLATINUM = "t0", "t5", "t10", "t12"
TIERS = {
    FREE: Tier(FREE, "Free", 0, published=True),
    SILVER: Tier(SILVER, "Silver", 500, published=True),
    GOLD: Tier(GOLD, "Gold", 1000, published=None),
    PLATINUM: Tier(PLATINUM, "Platinum", 1200, published=False),
}
R_FREE, R_SILVER, R_GOLD_A, R_GOLD_B = 100, 105, 110, 111
TIER_ROLES = TierRoleMap(
    {FREE: frozenset({R_FREE}), SILVER: frozenset({R_SILVER}), GOLD: frozenset({R_GOLD_A, R_GOLD_B})}
)
FREE_MEMBER, TRIAL, GIFTED, FORMER, LIFETIME = 201, 202, 203, 204, 205
ALL_SPECIALS = {FREE_MEMBER, TRIAL, GIFTED, FORMER, LIFETIME}
HELD = frozenset({R_FREE, R_SILVER})  # what the bot granted earlier: deliberately not what any rule grants

CHARGED = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
INSIDE = CHARGED + timedelta(days=3)  # inside the 7-day grace and the month paid for
OUTSIDE = CHARGED + timedelta(days=40)  # past both


def guild(**overrides: object) -> GuildSettings:
    base: dict[str, object] = {
        "guild_id": 1,
        "free_member_role_id": FREE_MEMBER,
        "free_trial_role_id": TRIAL,
        "gifted_role_id": GIFTED,
        "former_patron_role_id": FORMER,
        "lifetime_role_id": LIFETIME,
        "lifetime_threshold_cents": 1000,
    }
    base.update(overrides)
    return GuildSettings(**base)  # type: ignore[arg-type]


def member(**overrides: object) -> MembershipSnapshot:
    base: dict[str, object] = {
        "member_id": "m1",
        "campaign_id": "c1",
        "patreon_user_id": "u1",
        "patron_status": PatronStatus.ACTIVE,
        "last_charge_status": "Paid",
        "last_charge_date": CHARGED,
        "next_charge_date": CHARGED + timedelta(days=30),
        "pledge_cadence": 1,
        "currently_entitled_amount_cents": 1000,
        "entitled_tier_ids": (GOLD,),
    }
    base.update(overrides)
    return MembershipSnapshot(**base)  # type: ignore[arg-type]


def decide(
    m: MembershipSnapshot | None,
    now: datetime = INSIDE,
    held: frozenset[int] = frozenset(),
    tiers: dict[str, Tier] | None = None,
    tier_roles: TierRoleMap = TIER_ROLES,
    **settings_overrides: object,
) -> RoleDecision:
    return decide_roles(m, guild(**settings_overrides), tier_roles, TIERS if tiers is None else tiers, now, held)


# --- The exhaustive matrix ----------------------------------------------------------------------------
STATUSES = [None, PatronStatus.ACTIVE, PatronStatus.DECLINED, PatronStatus.FORMER]
CHARGES = [
    None,
    "Paid",
    "Declined",
    "Deleted",
    "Pending",
    "Refunded",
    "Fraud",
    "Refunded by Patreon",
    "Other",
    "Partially Refunded",
    "Free Trial",
]
#: How Patreon listed the entitlement: ([Free, Silver, Gold], 15.00), ([], 15.00) or ([], 0).
ENTITLEMENTS = {"listed": ((FREE, SILVER, GOLD), 1500), "blank+amount": ((), 1500), "blank+zero": ((), 0)}

# The oracle: one letter per (status, charge), read off the rules in docs/policy.md ("The whole grid" shows it too):
#   g = paid up: grant   k = unsettled: keep + hold   d = decline grace   x = money went back: nothing
#   t = free trial charge: grant + trial role          f = former: paid-through then former role
#   F = former after a refund: former role at once     n = never pledged: free-member role
#   columns: None Paid Declined Deleted Pending Refunded Fraud RbP Other PartRef FreeTrial
_ROWS = {
    None: "n n n n n n n n n n n",
    PatronStatus.ACTIVE: "g g d k g x x x k k t",
    PatronStatus.DECLINED: "d d d d d x x x d d d",
    PatronStatus.FORMER: "f f f f f F F F f f f",
}
ORACLE = {(status, charge): row.split()[i] for status, row in _ROWS.items() for i, charge in enumerate(CHARGES)}

# Tier roles each entitlement earns when granted (inference on [] + 15.00 → Gold: Platinum is unpublished).
GRANTED = {
    ("listed", RoleMode.STACK): {R_FREE, R_SILVER, R_GOLD_A, R_GOLD_B},
    ("listed", RoleMode.HIGHEST): {R_GOLD_A, R_GOLD_B},
    ("blank+amount", RoleMode.STACK): {R_GOLD_A, R_GOLD_B},
    ("blank+amount", RoleMode.HIGHEST): {R_GOLD_A, R_GOLD_B},
    ("blank+zero", RoleMode.STACK): set(),
    ("blank+zero", RoleMode.HIGHEST): set(),
}


def oracle(
    status: PatronStatus | None, charge: str | None, mode: RoleMode, keep: bool, inside: bool, ent: str
) -> tuple[set[int], bool]:
    letter = ORACLE[(status, charge)]
    granted = GRANTED[(ent, mode)]
    # Inference from the amount only counts for someone paying: active, or last charge Paid.
    if ent == "blank+amount" and not (status is PatronStatus.ACTIVE or charge == "Paid"):
        granted = set()
    kept = granted or set(HELD)
    always = {LIFETIME}  # lifetime support 50.00 >= 10.00 in every row
    if letter == "n":
        return always | {FREE_MEMBER} | ({R_FREE} if ent == "listed" else set()), False
    if letter == "x":
        return always, False
    if letter == "F":
        return always | {FORMER}, False
    if letter == "d":
        return (always | kept, True) if inside else (always, False)
    if letter == "f":
        return (always | kept, True) if keep and inside else (always | {FORMER}, False)
    if letter == "k":
        return always | kept, True
    extra = {TRIAL} if letter == "t" else set()
    if ent == "blank+zero" and charge in ("Paid", "Pending"):
        return always | extra | set(HELD), True  # Patreon's billing-day gap
    return always | extra | granted, False


MATRIX = list(itertools.product(STATUSES, CHARGES, list(RoleMode), [True, False], [True, False], list(ENTITLEMENTS)))


@pytest.mark.parametrize(("status", "charge", "mode", "keep", "inside", "ent"), MATRIX)
def test_matrix_matches_oracle(
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
    decision = decide(m, now=INSIDE if inside else OUTSIDE, held=HELD, role_mode=mode, keep_until_paid_through=keep)
    want_desired, want_hold = oracle(status, charge, mode, keep, inside, ent)
    assert (set(decision.desired), decision.hold) == (want_desired, want_hold)
    assert set(decision.reasons) == set(TIER_ROLES.managed_role_ids()) | ALL_SPECIALS
    assert decision.summary and "\n" not in decision.summary


def test_matrix_is_exhaustive() -> None:
    assert len(MATRIX) == 4 * 11 * 2 * 2 * 2 * 3
    assert set(ORACLE) == set(itertools.product(STATUSES, CHARGES))
    assert set(CHARGES) == set(DOCUMENTED_CHARGE_STATUSES)


# --- Patreon's gaps ---------------------------------------------------------------------------------------
# SAMPLES/ is tests/data/patreon/ (see tests/samples.py).
def test_real_pledge_create_webhook_with_no_tiers_infers_silver() -> None:
    # SAMPLES/webhook_members_pledge_create.json: active_patron, Paid, entitled 500, currently_entitled_tiers [].
    m = member(entitled_tier_ids=(), currently_entitled_amount_cents=500, will_pay_amount_cents=500)
    decision = decide(m, now=CHARGED + timedelta(minutes=1))
    assert decision.desired == {R_SILVER}
    assert decision.hold is False
    assert "inferred" in decision.reasons[R_SILVER]
    assert decision.summary == "Active patron of Silver (tier inferred from 5.00 USD entitled)"


@pytest.mark.parametrize(
    ("amount", "want"),
    [(499, set()), (500, {R_SILVER}), (999, {R_SILVER}), (1000, {R_GOLD_A, R_GOLD_B}), (99_999, {R_GOLD_A, R_GOLD_B})],
)
def test_inference_picks_highest_published_tier_not_above_amount(amount: int, want: set[int]) -> None:
    decision = decide(member(entitled_tier_ids=(), currently_entitled_amount_cents=amount))
    assert decision.desired - ALL_SPECIALS == want
    assert decision.hold is False


def test_inference_ignores_listed_ids_when_relationship_was_absent() -> None:
    m = member(entitled_tier_ids=(SILVER,), tiers_known=False, currently_entitled_amount_cents=1000)
    assert decide(m).desired == {R_GOLD_A, R_GOLD_B}


def test_listed_free_tier_alone_does_not_stop_inference() -> None:
    m = member(entitled_tier_ids=(FREE,), currently_entitled_amount_cents=500)
    assert decide(m, role_mode=RoleMode.STACK).desired == {R_FREE, R_SILVER}


@pytest.mark.parametrize("charge", ["Paid", "Pending"])
def test_billing_day_gap_holds_and_adds_nothing(charge: str) -> None:
    m = member(last_charge_status=charge, entitled_tier_ids=(), currently_entitled_amount_cents=0)
    decision = decide(m, held=frozenset({R_GOLD_A, FORMER}))
    assert decision.hold is True
    assert decision.desired == {R_GOLD_A}
    assert decision.summary.startswith("Billing day")
    assert decision.reasons[R_GOLD_B].startswith("not held")


def test_blank_active_member_with_no_charge_yet_is_not_held() -> None:
    m = member(last_charge_status=None, last_charge_date=None, entitled_tier_ids=(), currently_entitled_amount_cents=0)
    decision = decide(m, held=HELD)
    assert (decision.desired, decision.hold) == (frozenset(), False)


def test_paying_member_with_no_tier_catalogue_keeps_held_roles() -> None:
    m = member(entitled_tier_ids=(), currently_entitled_amount_cents=500)
    decision = decide(m, held=frozenset({R_SILVER}), tiers={})
    assert decision.hold is True
    assert decision.desired == {R_SILVER}


def test_listed_tier_missing_from_catalogue_is_trusted() -> None:
    decision = decide(member(entitled_tier_ids=(GOLD,)), tiers={})
    assert decision.desired == {R_GOLD_A, R_GOLD_B}
    assert decision.reasons[R_GOLD_A] == "tier t10 is entitled"


# --- Role modes -------------------------------------------------------------------------------------------
def test_highest_only_names_the_outranking_tier() -> None:
    m = member(entitled_tier_ids=(SILVER, GOLD))
    decision = decide(m, role_mode=RoleMode.HIGHEST)
    assert decision.desired == {R_GOLD_A, R_GOLD_B}
    assert decision.reasons[R_SILVER] == "highest-only: Gold outranks Silver"
    assert decision.reasons[R_GOLD_A] == "tier Gold is entitled"
    assert decision.reasons[R_FREE] == "tier Free not entitled"


def test_highest_only_breaks_amount_ties_by_smaller_numeric_id() -> None:
    tiers = {"9": Tier("9", "Nine", 700), "10": Tier("10", "Ten", 700), "3": Tier("3", "Cheap", 100)}
    roles = TierRoleMap({"9": frozenset({9}), "10": frozenset({10}), "3": frozenset({3})})
    for order in itertools.permutations(("10", "9", "3")):
        m = member(entitled_tier_ids=order)
        highest = decide(m, tiers=tiers, tier_roles=roles, role_mode=RoleMode.HIGHEST)
        stack = decide(m, tiers=tiers, tier_roles=roles, role_mode=RoleMode.STACK)
        assert highest.desired == {9}
        assert stack.desired == {3, 9, 10}


def test_highest_only_skips_tiers_without_roles_and_keeps_shared_roles() -> None:
    roles = TierRoleMap({SILVER: frozenset({R_SILVER, 7}), GOLD: frozenset({7}), PLATINUM: frozenset()})
    m = member(entitled_tier_ids=(SILVER, GOLD, PLATINUM))
    decision = decide(m, tier_roles=roles, role_mode=RoleMode.HIGHEST)
    assert decision.desired == {7}
    assert decision.reasons[R_SILVER] == "highest-only: Gold outranks Silver"


# --- Special roles ----------------------------------------------------------------------------------------
def test_free_member_gets_free_role_and_free_tier_role_only() -> None:
    m = member(patron_status=None, last_charge_status=None, entitled_tier_ids=(FREE, GOLD))
    decision = decide(m)
    assert decision.desired == {FREE_MEMBER, R_FREE}
    assert decision.hold is False
    assert decision.reasons[FREE_MEMBER] == "free-member role: never pledged"


def test_free_member_listing_nothing_gets_only_the_free_member_role() -> None:
    m = member(patron_status=None, last_charge_status=None, entitled_tier_ids=(), currently_entitled_amount_cents=0)
    assert decide(m, held=HELD).desired == {FREE_MEMBER}


@pytest.mark.parametrize(
    ("gets_tiers", "want"), [(True, {R_GOLD_A, R_GOLD_B, R_FREE, TRIAL}), (False, {R_FREE, TRIAL})]
)
def test_free_trial(gets_tiers: bool, want: set[int]) -> None:
    # SAMPLES/webhook_members_update_free_trial.json: active_patron, is_free_trial, no charge, tiers [Paid, Free].
    m = member(is_free_trial=True, last_charge_status=None, last_charge_date=None, entitled_tier_ids=(GOLD, FREE))
    decision = decide(m, trial_gets_tier_roles=gets_tiers)
    assert decision.desired == want
    assert decision.hold is False
    if not gets_tiers:
        assert "free trial" in decision.reasons[R_GOLD_A]


def test_gifted_membership_gets_tier_and_gifted_roles() -> None:
    decision = decide(member(is_gifted=True, last_charge_status=None))
    assert decision.desired == {R_GOLD_A, R_GOLD_B, GIFTED}
    assert decision.summary.startswith("Gifted patron of Gold")


def test_trial_and_gift_roles_need_an_active_membership() -> None:
    m = member(patron_status=PatronStatus.FORMER, is_free_trial=True, is_gifted=True)
    decision = decide(m, now=OUTSIDE)
    assert decision.desired == {FORMER}


def test_former_patron_after_paid_through_gets_former_role() -> None:
    decision = decide(member(patron_status=PatronStatus.FORMER), now=OUTSIDE, held=HELD)
    assert decision.desired == {FORMER}
    assert decision.hold is False
    assert decision.summary == "Former patron; paid period ended on 2026-12-01"


def test_real_pledge_delete_keeps_held_roles_until_next_charge_date() -> None:
    # SAMPLES/webhook_members_pledge_delete.json: former_patron, Deleted, entitled 0, tiers [], next charge ahead.
    m = member(
        patron_status=PatronStatus.FORMER,
        last_charge_status="Deleted",
        entitled_tier_ids=(),
        currently_entitled_amount_cents=0,
    )
    decision = decide(m, held=frozenset({R_GOLD_A, R_GOLD_B}))
    assert decision.desired == {R_GOLD_A, R_GOLD_B}
    assert decision.hold is True
    assert decision.summary == "Pledge cancelled; roles kept until 2026-12-01 (paid through)"
    assert decision.reasons[FORMER].startswith("former-patron role: not a former patron")


def test_former_deleted_without_next_charge_date_has_no_paid_through() -> None:
    m = member(patron_status=PatronStatus.FORMER, last_charge_status="Deleted", next_charge_date=None)
    assert (decide(m, held=HELD).desired, decide(m).hold) == ({FORMER}, False)


def test_former_annual_paid_is_kept_for_its_cadence() -> None:
    m = member(patron_status=PatronStatus.FORMER, next_charge_date=None, pledge_cadence=12)
    assert decide(m, now=CHARGED + timedelta(days=360)).hold is True
    assert decide(m, now=CHARGED + timedelta(days=366)).desired == {FORMER}


def test_declined_grace_summary_and_boundary() -> None:
    m = member(patron_status=PatronStatus.DECLINED, last_charge_status="Declined", last_charge_date=CHARGED)
    inside = decide(m, now=CHARGED + timedelta(days=7) - timedelta(seconds=1))
    assert inside.summary == "Payment declined on 2026-11-01; roles kept until 2026-11-08 (7-day grace)"
    assert (inside.desired, inside.hold) == ({R_GOLD_A, R_GOLD_B}, True)
    ended = decide(m, now=CHARGED + timedelta(days=7))
    assert (ended.desired, ended.hold) == (frozenset(), False)
    assert FORMER not in ended.desired


def test_declined_without_a_date_holds_unless_grace_is_off() -> None:
    m = member(patron_status=PatronStatus.DECLINED, last_charge_status="Declined", last_charge_date=None)
    assert decide(m, now=OUTSIDE).hold is True
    assert decide(m, now=OUTSIDE, decline_grace_days=0).hold is False


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize(
    ("support", "threshold", "wanted"), [(1000, 1000, True), (999, 1000, False), (1, None, True), (0, None, False)]
)
def test_lifetime_role_for_any_status(
    status: PatronStatus | None, support: int, threshold: int | None, wanted: bool
) -> None:
    m = member(patron_status=status, campaign_lifetime_support_cents=support)
    assert (LIFETIME in decide(m, lifetime_threshold_cents=threshold).desired) is wanted


def test_not_a_member_gets_nothing_not_even_lifetime() -> None:
    decision = decide(None, held=HELD, lifetime_threshold_cents=0)
    assert (decision.desired, decision.hold) == (frozenset(), False)
    assert decision.summary == "Not a member of the campaign"


def test_role_that_is_both_tier_and_special_is_desired_if_either_wants_it() -> None:
    former = decide(member(patron_status=PatronStatus.FORMER), now=OUTSIDE, former_patron_role_id=R_GOLD_A)
    assert former.desired == {R_GOLD_A}
    active = decide(member(), former_patron_role_id=R_GOLD_A)
    assert R_GOLD_A in active.desired
    assert active.reasons[R_GOLD_A] == "tier Gold is entitled"


def test_reasons_cover_every_managed_role_and_nothing_else() -> None:
    decision = decide(member(entitled_tier_ids=(SILVER,)), role_mode=RoleMode.HIGHEST)
    assert set(decision.reasons) == managed_role_ids(guild(), TIER_ROLES)
    assert decision.reasons[R_GOLD_A] == "tier Gold not entitled"
    assert decision.reasons[FREE_MEMBER] == "free-member role: not a free member (active patron)"


def test_managed_role_ids_unites_tier_and_special_roles() -> None:
    assert managed_role_ids(guild(), TIER_ROLES) == {R_FREE, R_SILVER, R_GOLD_A, R_GOLD_B} | ALL_SPECIALS
    assert managed_role_ids(GuildSettings(guild_id=1), TierRoleMap()) == frozenset()


def test_active_paid_summary() -> None:
    assert decide(member()).summary == "Active patron of Gold (paid 2026-11-01)"


def test_unknown_patron_status_holds() -> None:
    decision = decide(member(patron_status="mystery_patron"), held=frozenset({R_SILVER}))  # type: ignore[arg-type]
    assert (decision.desired, decision.hold) == ({R_SILVER}, True)


def test_naive_now_is_read_as_utc() -> None:
    m = member(patron_status=PatronStatus.DECLINED, last_charge_status="Declined")
    edge = CHARGED + timedelta(days=7)
    assert decide(m, now=edge.replace(tzinfo=None)) == decide(m, now=edge)
    assert decide(m, now=edge.replace(tzinfo=None) - timedelta(seconds=1)).hold is True


def test_kept_returns_a_new_verdict_and_leaves_its_arguments_alone() -> None:
    # `_kept` is private, but no public input reaches it: decide_roles builds all of its arguments itself.
    def arguments() -> tuple[_Verdict, dict[int, str], dict[int, str]]:
        verdict = _Verdict(_Standing.DECLINE_GRACE, True, "summary", {1: "old"}, {2: "x"}, trial=True)
        return verdict, {3: "tier Gold is entitled"}, {4: "highest-only", 5: "other"}

    verdict, granted, denied = arguments()
    result = _kept(verdict, granted, denied, frozenset({4, 6}), also_held=True)
    assert (verdict, granted, denied) == arguments()
    assert result is not verdict
    assert result.granted == {
        3: "tier Gold is entitled; kept during decline grace",
        4: "held; kept during decline grace",
        6: "held; kept during decline grace",
    }
    assert result.denied == {5: "other"}
    assert result.denial == "not held; nothing is added during decline grace"
    assert (result.standing, result.hold, result.summary) == (_Standing.DECLINE_GRACE, True, "summary")
    assert result.trial is True


# --- Properties -------------------------------------------------------------------------------------------
_role = st.integers(1, 12)
_tier_id = st.sampled_from(["1", "2", "10", "x", FREE, SILVER, GOLD])
_moment = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC))
_memberships = st.builds(
    MembershipSnapshot,
    member_id=st.just("m"),
    campaign_id=st.just("c"),
    patreon_user_id=st.just("u"),
    patron_status=st.sampled_from(STATUSES),
    last_charge_status=st.sampled_from([*CHARGES, "Brand New Status"]),
    last_charge_date=st.none() | _moment,
    next_charge_date=st.none() | _moment,
    pledge_cadence=st.none() | st.integers(-1, 24),
    currently_entitled_amount_cents=st.integers(0, 3000),
    campaign_lifetime_support_cents=st.integers(0, 5000),
    is_free_trial=st.booleans(),
    is_gifted=st.booleans(),
    entitled_tier_ids=st.lists(_tier_id, max_size=4).map(tuple),
    tiers_known=st.booleans(),
)
_tiers = st.dictionaries(_tier_id, st.integers(0, 2000), max_size=5).map(
    lambda amounts: {tid: Tier(tid, f"T{tid}", cents) for tid, cents in amounts.items()}
)
_tier_roles = st.dictionaries(_tier_id, st.frozensets(_role, max_size=3), max_size=5).map(TierRoleMap)
_settings = st.builds(
    GuildSettings,
    guild_id=st.just(1),
    decline_grace_days=st.integers(-1, 30),
    keep_until_paid_through=st.booleans(),
    role_mode=st.sampled_from(list(RoleMode)),
    free_member_role_id=st.none() | _role,
    free_trial_role_id=st.none() | _role,
    trial_gets_tier_roles=st.booleans(),
    gifted_role_id=st.none() | _role,
    former_patron_role_id=st.none() | _role,
    lifetime_role_id=st.none() | _role,
    lifetime_threshold_cents=st.none() | st.integers(0, 5000),
)


@settings(max_examples=400, deadline=None)
@given(
    membership=st.none() | _memberships,
    guild_settings=_settings,
    tier_roles=_tier_roles,
    tiers=_tiers,
    now=_moment,
    held=st.frozensets(st.integers(1, 15), max_size=6),
    shuffle_seed=st.randoms(),
)
def test_policy_properties(
    membership: MembershipSnapshot | None,
    guild_settings: GuildSettings,
    tier_roles: TierRoleMap,
    tiers: dict[str, Tier],
    now: datetime,
    held: frozenset[int],
    shuffle_seed: random.Random,
) -> None:
    decision = decide_roles(membership, guild_settings, tier_roles, tiers, now, held)
    managed = managed_role_ids(guild_settings, tier_roles)
    assert decision.desired <= managed
    assert set(decision.reasons) == managed
    assert all(decision.reasons.values())
    assert decision.summary and "\n" not in decision.summary
    if membership is None or membership.patron_status is None:
        assert decision.hold is False
    if membership is None:
        assert decision.desired == frozenset()
    # Deterministic, and blind to the order Patreon listed tiers in or the mappings were built in.
    assert decide_roles(membership, guild_settings, tier_roles, tiers, now, held) == decision
    if membership is not None:
        ids = list(membership.entitled_tier_ids)
        shuffle_seed.shuffle(ids)
        reordered = dataclasses.replace(membership, entitled_tier_ids=tuple(ids))
        rebuilt_map = TierRoleMap(dict(reversed(list(tier_roles.roles_by_tier.items()))))
        rebuilt_tiers = dict(reversed(list(tiers.items())))
        again = decide_roles(reordered, guild_settings, rebuilt_map, rebuilt_tiers, now, held)
        assert again == decision
    # Held roles only matter while on hold; without a hold they can neither add nor keep anything.
    if not decision.hold:
        assert decide_roles(membership, guild_settings, tier_roles, tiers, now, frozenset()).desired == decision.desired
