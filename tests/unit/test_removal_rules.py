"""The pure parts of review 1's F4 and F8: the rank sentence for taking roles away, and who may have the panel
posted where (bot/guild_admin/rank.py, bot/accounts/panel.py)."""

from __future__ import annotations

import pytest

from bot.accounts.panel import poster_refusal
from bot.guild_admin.rank import InvokerRank

MOD = InvokerRank(user_id=1, owner=False, roles_below=frozenset({10}), top_role_name="@Staff")


def name(role_id: int) -> str:
    return {10: "Helper", 20: "Senior Staff"}[role_id]


def test_taking_away_a_role_above_the_invoker_is_refused_in_one_sentence():
    assert MOD.refusal({10, 20}, name, "take back", removing=True) == (
        "You can't take back @Senior Staff: Discord only lets you take away roles below your highest role (@Staff)."
    )
    assert MOD.refusal({10}, name, "take back", removing=True) is None
    assert MOD.refusal(set(), name, "stop giving", removing=True) is None, "nothing taken away, nothing refused"


def test_the_owner_may_take_away_anything():
    owner = InvokerRank(user_id=2, owner=True, roles_below=frozenset())
    assert owner.refusal({20}, name, "stop giving", removing=True) is None


@pytest.mark.parametrize(("can_view", "can_send"), [(False, False), (True, False), (False, True)])
def test_the_panel_needs_the_admins_own_view_and_send(can_view, can_send):
    text = poster_refusal("<#5>", owner=False, can_view=can_view, can_send=can_send)
    assert text == (
        "You can't post in <#5> yourself, so the bot won't post the panel there for you; nothing was changed."
    )
    assert poster_refusal("<#5>", owner=True, can_view=can_view, can_send=can_send) is None
    old = poster_refusal("<#5>", owner=False, can_view=can_view, can_send=can_send, old=True)
    assert old is not None and "the panel's current channel, <#5>," in old


def test_an_admin_who_can_post_may_post_the_panel():
    assert poster_refusal("<#5>", owner=False, can_view=True, can_send=True) is None
