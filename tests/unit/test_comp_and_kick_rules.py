"""The pure rules behind comps (bot/domain/comps.py) and kick on lapse (bot/domain/kick_rules.py)."""

from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.comps import ENDED, Comp, clean_reason, comp_expiry, with_comps
from bot.domain.kick_rules import MemberRank, kick_refusal
from bot.domain.models import RoleDecision

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def comp(role: int = 7, ends: timedelta = timedelta(days=1), state: str = "active") -> Comp:
    return Comp(1, 2, role, NOW + ends, "guest", 3, NOW - timedelta(days=1), state)


def test_an_active_comp_adds_its_role_and_says_why_and_an_ended_or_expired_one_adds_nothing():
    decision = RoleDecision(frozenset({5}), False, "Former patron", {5: "tier Gold", 7: "tier Bronze not entitled"})
    wanted = with_comps(decision, [comp()], NOW)
    assert wanted.desired == {5, 7} and wanted.reasons[7].startswith("comp until 2026-12-02") and not wanted.hold
    assert wanted.reasons[5] == "tier Gold"
    both = with_comps(decision, [comp(role=5)], NOW)
    assert both.reasons[5].startswith("tier Gold; comp until")
    for stale in (comp(ends=timedelta(0)), comp(ends=-timedelta(seconds=1)), comp(state=ENDED)):
        assert with_comps(decision, [stale], NOW) == decision
    assert with_comps(decision, [comp()], NOW, explain=False).desired == {5, 7}


def test_a_renewal_adds_to_the_current_end_and_a_lapsed_comp_starts_from_now():
    assert comp_expiry(None, NOW, 3) == NOW + timedelta(days=3)
    assert comp_expiry(comp(ends=timedelta(days=2)), NOW, 3) == NOW + timedelta(days=5)
    assert comp_expiry(comp(ends=-timedelta(days=2)), NOW, 3) == NOW + timedelta(days=3)
    assert comp_expiry(comp(state=ENDED, ends=timedelta(days=9)), NOW, 3) == NOW + timedelta(days=3)


def test_a_reason_is_one_printable_line():
    assert clean_reason(" podcast\n guest\t\x00 ") == "podcast guest"
    assert clean_reason(None) == ""


def rank(**changes) -> MemberRank:
    values = dict(user_id=9, is_owner=False, is_bot=False, role_positions={}, bot_top_position=50)
    return MemberRank(**(values | changes))


@pytest.mark.parametrize(
    ("member", "granted", "threshold", "spared"),
    [
        (rank(), frozenset(), None, None),
        (rank(is_owner=True), frozenset(), None, "the server owner"),
        (rank(is_bot=True), frozenset(), None, "a bot"),
        (rank(role_positions={60: 50}), frozenset({60}), None, "holds a role at or above the bot's highest role"),
        (rank(role_positions={8: 8}), frozenset(), None, "holds a role the bot didn't give"),
        (rank(role_positions={8: 8}), frozenset({8}), None, None),
        (rank(role_positions={8: 8}), frozenset(), 10, None),
        (
            rank(role_positions={8: 10}),
            frozenset(),
            10,
            "holds a role the bot didn't give at or above the protect role",
        ),
        (rank(role_positions={8: 12}), frozenset({8}), 10, None),
    ],
)
def test_who_kick_on_lapse_spares(member, granted, threshold, spared):
    assert kick_refusal(member, granted, threshold) == spared
