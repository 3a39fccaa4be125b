"""The OAuth state: only this bot can mint one, it expires, and tampering is caught."""

from datetime import UTC, datetime, timedelta

import pytest

from bot.accounts.oauth_state import STATE_LIFETIME, StateError, issue_state, verify_state

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
    forged = attacker.split(".")[0] + "." + victim.split(".")[1]
    with pytest.raises(StateError):
        verify_state(KEY, forged, NOW)


@pytest.mark.parametrize("garbage", ["", ".", "abc", "abc.", ".def", "a.b.c", "%%%.***", "eyJ9.AAAA"])
def test_garbage_is_refused_with_a_readable_message(garbage):
    with pytest.raises(StateError) as caught:
        verify_state(KEY, garbage, NOW)
    assert "/patreon link" in str(caught.value)
