"""The link flow's signed tokens: only this bot can mint them, they expire, each kind is good for its own step
only, and tampering is caught."""

from datetime import UTC, datetime, timedelta

import pytest
from itsdangerous import URLSafeSerializer

from bot.accounts.oauth_state import (
    STATE_LIFETIME,
    StateError,
    issue_binding,
    issue_patreon_state,
    issue_state,
    issue_undo,
    made_before_host_prefix,
    read_binding,
    read_undo,
    verify_patreon_state,
    verify_state,
)

KEY = b"test-signing-key"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_round_trip_binds_guild_and_user():
    token, issued = issue_state(KEY, 111, 222, NOW)
    state = verify_state(KEY, token, NOW + timedelta(minutes=1))
    assert (state.guild_id, state.discord_user_id) == (111, 222)
    assert state.nonce == issued.nonce
    assert state.expires_at == (NOW + STATE_LIFETIME).replace(microsecond=0)


def test_each_state_has_a_fresh_nonce():
    first, _ = issue_state(KEY, 1, 2, NOW)
    second, _ = issue_state(KEY, 1, 2, NOW)
    assert first != second


def test_expired_state_is_refused():
    token, _ = issue_state(KEY, 1, 2, NOW)
    with pytest.raises(StateError, match="expired"):
        verify_state(KEY, token, NOW + STATE_LIFETIME + timedelta(seconds=1))


def test_state_signed_with_another_key_is_refused():
    token, _ = issue_state(b"someone-else", 1, 2, NOW)
    with pytest.raises(StateError, match="not issued by this bot"):
        verify_state(KEY, token, NOW)


def test_swapping_the_payload_breaks_the_signature():
    victim, _ = issue_state(KEY, 1, 2, NOW)
    attacker, _ = issue_state(KEY, 1, 999, NOW)
    forged = attacker.rpartition(".")[0] + "." + victim.rpartition(".")[2]
    with pytest.raises(StateError):
        verify_state(KEY, forged, NOW)


@pytest.mark.parametrize("garbage", ["", ".", "abc", "abc.", ".def", "a.b.c", "%%%.***", "eyJ9.AAAA"])
def test_garbage_is_refused_with_a_readable_message(garbage):
    with pytest.raises(StateError) as caught:
        verify_state(KEY, garbage, NOW)
    assert "/patreon link" in str(caught.value)


def test_the_patreon_state_keeps_the_attempt_and_is_good_only_at_patreons_step():
    start, state = issue_state(KEY, 1, 2, NOW)
    patreon = issue_patreon_state(KEY, state)
    assert verify_patreon_state(KEY, patreon, NOW) == state
    with pytest.raises(StateError):
        verify_patreon_state(KEY, start, NOW)  # the Discord step can't be skipped
    with pytest.raises(StateError):
        verify_state(KEY, patreon, NOW)


def test_the_browser_cookie_names_the_attempt_and_keeps_the_browser():
    value, binding = issue_binding(KEY, "nonce-1")
    assert read_binding(KEY, value) == binding
    again, rebound = issue_binding(KEY, "nonce-2", binding.browser_id)
    assert rebound.browser_id == binding.browser_id and read_binding(KEY, again).nonce == "nonce-2"
    start, _ = issue_state(KEY, 1, 2, NOW)
    for bad in (None, "", value + "x", start, issue_binding(b"other", "nonce-1")[0]):
        assert read_binding(KEY, bad) is None


def test_the_undo_token_round_trips_and_is_no_cookie():
    token = issue_undo(KEY, 2, "p-2", "browser", NOW, NOW)
    grant = read_undo(KEY, token)
    assert grant is not None
    assert (grant.discord_user_id, grant.patreon_user_id, grant.browser_id) == (2, "p-2", "browser")
    assert grant.issued_at == NOW and grant.linked_at == NOW.isoformat()
    assert read_binding(KEY, token) is None and read_undo(KEY, issue_binding(KEY, "n")[0]) is None
    assert read_undo(KEY, token[:-2]) is None and read_undo(KEY, "") is None


def test_only_a_cookie_value_without_a_version_counts_as_made_before_the_host_prefix():
    """Behind https the plain name is read only for such a value (bot/web/browser_cookie.py): every value made since
    carries its version, so a tossed one never counts."""
    new, binding = issue_binding(KEY, "nonce-1")
    old = str(URLSafeSerializer(KEY, salt="link-browser").dumps({"b": binding.browser_id, "n": "nonce-1"}))
    assert made_before_host_prefix(old) and read_binding(KEY, old) == binding
    for value in (new, "", "no-dot", "garbage.sig", ".eJwrzs8rSU0u0c8sKkksyUzLLMnMTgUASg8Hrw.sig", new + "x"):
        assert not made_before_host_prefix(value), value
