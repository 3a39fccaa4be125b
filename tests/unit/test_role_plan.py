"""The minimal change: add what's missing, remove only what this bot granted, nothing during a hold."""

from bot.domain.models import RoleDecision
from bot.domain.role_plan import grants_to_forget, plan_roles


def decision(desired, hold=False):
    return RoleDecision(desired=frozenset(desired), hold=hold, summary="test")


def test_adds_missing_and_removes_only_bot_granted():
    plan = plan_roles(decision({1, 2}), actual=frozenset({2, 3, 4}), granted_by_bot=frozenset({2, 3}))
    assert plan.add == {1}
    assert plan.remove == {3}  # 4 was hand-given: untouched


def test_hand_given_mapped_role_is_never_removed():
    plan = plan_roles(decision(set()), actual=frozenset({5}), granted_by_bot=frozenset())
    assert plan.is_empty


def test_hold_adds_but_never_removes():
    plan = plan_roles(decision({1}, hold=True), actual=frozenset({2}), granted_by_bot=frozenset({2}))
    assert plan.add == {1}
    assert plan.remove == frozenset()


def test_nothing_to_do_when_roles_already_right():
    plan = plan_roles(decision({1}), actual=frozenset({1, 9}), granted_by_bot=frozenset({1}))
    assert plan.is_empty
    assert plan.final_roles(frozenset({1, 9})) == {1, 9}


def test_unassignable_roles_are_blocked_not_sent():
    plan = plan_roles(
        decision({1, 2}), actual=frozenset({3}), granted_by_bot=frozenset({3}), unassignable={2: "above", 3: "managed"}
    )
    assert plan.add == {1}
    assert plan.remove == frozenset()
    assert plan.blocked == {2: "above", 3: "managed"}


def test_the_ledger_forgets_removed_and_vanished_grants_but_not_new_ones():
    plan = plan_roles(decision({1}), actual=frozenset({2}), granted_by_bot=frozenset({2, 7}))
    forget = grants_to_forget(plan, frozenset({2}), frozenset({2, 7}))
    assert forget == {2, 7}  # 2 removed by us, 7 taken away by someone else meanwhile
