"""The connect flow's signed tokens: never mistaken for the link flow's, bound to one server and admin, expiring."""

from datetime import UTC, datetime, timedelta

import pytest

from bot.accounts.connect_state import (
    is_connect_state,
    issue_connect_patreon_state,
    issue_connect_state,
    issue_pick,
    verify_connect_patreon_state,
    verify_connect_state,
    verify_pick,
)
from bot.accounts.oauth_state import StateError, issue_state, verify_state

KEY = b"k" * 32
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def test_a_connect_state_names_its_server_admin_and_server_name():
    token, state = issue_connect_state(KEY, 1, 2, NOW, "Creator's Server")
    assert verify_connect_state(KEY, token, NOW) == state
    assert (state.guild_id, state.admin_id, state.guild_name) == (1, 2, "Creator's Server")


def test_link_and_connect_states_never_pass_for_each_other():
    link, _ = issue_state(KEY, 1, 2, NOW)
    connect, state = issue_connect_state(KEY, 1, 2, NOW)
    assert is_connect_state(KEY, connect) and is_connect_state(KEY, issue_connect_patreon_state(KEY, state))
    assert not is_connect_state(KEY, link)
    with pytest.raises(StateError):
        verify_connect_state(KEY, link, NOW)
    with pytest.raises(StateError):
        verify_state(KEY, connect, NOW)
    with pytest.raises(StateError):  # the start state is not the Patreon step's
        verify_connect_patreon_state(KEY, connect, NOW)


def test_a_state_from_another_key_or_past_its_expiry_is_refused():
    token, state = issue_connect_state(KEY, 1, 2, NOW)
    with pytest.raises(StateError):
        verify_connect_state(b"x" * 32, token, NOW)
    with pytest.raises(StateError, match="expired"):
        verify_connect_state(KEY, token, NOW + timedelta(minutes=16))
    pick = issue_pick(KEY, state, ("A", "B"))
    assert verify_pick(KEY, pick, NOW).campaign_ids == ("A", "B")
    with pytest.raises(StateError):
        verify_pick(KEY, token, NOW)
