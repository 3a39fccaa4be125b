"""Discord's state: the button's start state plus the start page's proof of the browser it set its cookie in.

The proof is what an attacker's own unopened `/discord/callback` can't carry for a victim's browser (review F1), so
it must depend on that browser's id and the attempt, need the bot's key, and be refused when missing or altered."""

from datetime import UTC, datetime

from bot.accounts.connect_state import is_connect_state, issue_connect_state
from bot.accounts.oauth_state import (
    BrowserBinding,
    DiscordStepState,
    holds_start_proof,
    issue_binding,
    issue_discord_state,
    issue_state,
    read_discord_state,
    verify_state,
)

KEY = b"test-signing-key"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _started() -> tuple[str, BrowserBinding, str]:
    token, state = issue_state(KEY, 111, 222, NOW)
    _, binding = issue_binding(KEY, state.nonce)
    return token, binding, issue_discord_state(KEY, token, binding)


def test_the_start_state_comes_back_whole_and_the_browser_that_started_holds_the_proof():
    token, binding, discord_state = _started()
    step = read_discord_state(discord_state)
    assert step.start_token == token and verify_state(KEY, step.start_token, NOW).discord_user_id == 222
    assert holds_start_proof(KEY, step, binding)


def test_another_browser_on_the_same_attempt_does_not_hold_it():
    """The victim's browser opened the attacker's start link: same attempt, her own browser id."""
    _, binding, discord_state = _started()
    victims = BrowserBinding("another-browser-id", binding.nonce)
    assert not holds_start_proof(KEY, read_discord_state(discord_state), victims)


def test_the_same_browser_on_another_attempt_does_not_hold_it():
    _, binding, discord_state = _started()
    assert not holds_start_proof(KEY, read_discord_state(discord_state), BrowserBinding(binding.browser_id, "other"))


def test_a_missing_altered_or_foreign_keyed_proof_is_refused():
    token, binding, discord_state = _started()
    assert read_discord_state(token) == DiscordStepState(token, "")  # the bare start state: no proof at all
    assert not holds_start_proof(KEY, read_discord_state(token), binding)
    altered = discord_state[:-1] + ("A" if discord_state[-1] != "A" else "B")
    assert not holds_start_proof(KEY, read_discord_state(altered), binding)
    assert not holds_start_proof(b"another-bots-key", read_discord_state(discord_state), binding)
    assert not holds_start_proof(KEY, read_discord_state(discord_state), None)


def test_two_tabs_of_one_browser_get_the_same_proof():
    token, state = issue_state(KEY, 111, 222, NOW)
    _, binding = issue_binding(KEY, state.nonce)
    _, again = issue_binding(KEY, state.nonce, binding.browser_id)
    assert issue_discord_state(KEY, token, binding) == issue_discord_state(KEY, token, again)


def test_the_proof_is_url_safe_and_the_connect_flow_still_knows_its_own():
    token, _ = issue_connect_state(KEY, 111, 222, NOW, "Eve's Server")
    discord_state = issue_discord_state(KEY, token, BrowserBinding("browser", "nonce"))
    proof = read_discord_state(discord_state).proof
    assert proof and all(char.isalnum() or char in "-_" for char in proof)
    assert is_connect_state(KEY, read_discord_state(discord_state).start_token)
    assert not is_connect_state(KEY, discord_state)  # ConnectFlow.owns splits the proof off first
