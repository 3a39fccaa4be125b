"""The signed tokens of the link flow, made with `itsdangerous` rather than a hand-rolled HMAC.

- the **start state** rides in the `/patreon link` button: one attempt, for one (guild, Discord user), 15 minutes;
- the **browser cookie** is set by the bot's start page and names the attempt (its nonce) and the browser, so a
  forwarded button can't be finished in another browser;
- the **Discord state** is the start state plus a **start proof** of the browser that opened the start page (a keyed
  hash of its cookie's browser id and the attempt): the start state rides in a URL anyone holding the button knows,
  so without the proof an attacker's own unused `/discord/callback?code=…&state=…` (his code, his button) opened in a
  victim's browser right after his start link found the cookie it wanted there, and the Patreon step went on in the
  victim's browser (review F1). The attacker never sees the victim's browser id, so he can't make that proof; two
  tabs of one browser get the same one;
- the **Patreon state** is only minted after Discord's OAuth2 proved who is at the keyboard; Patreon's callback
  accepts nothing else, so the Discord step can't be skipped. It carries a fresh **browser proof** that the Discord
  callback also writes into that browser's cookie: the start page copies the attempt's nonce out of a URL anyone
  can forward, so a cookie naming only that nonce could be planted in a victim's browser (open my start link, then
  my Patreon link) and tie the victim's Patreon account to the attacker; the proof exists only in the browser that
  passed Discord's sign-in;
- the **undo token** is the CSRF token of the result page's "This isn't me" button, bound to the same cookie.

Each kind is signed with its own salt, so one can never be passed off as another. Expiry is checked against the
injected clock (not the signer's own time), so tests and the bot agree on "now"; the store's "consume once"
record (keyed by the nonce) makes each attempt single-use.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from base64 import urlsafe_b64encode
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from itsdangerous import BadData, URLSafeSerializer

STATE_LIFETIME = timedelta(minutes=15)
#: How long after a link the result page's "This isn't me — undo" button still works.
UNDO_WINDOW = timedelta(hours=1)
#: The cookie outlives an attempt by the undo window, so the undo button still finds it.
COOKIE_LIFETIME = STATE_LIFETIME + UNDO_WINDOW
#: The cookie's name over plain http (tests, the demo) and, before the prefix, over https too.
COOKIE_NAME = "patreon_link"
#: Its name behind https (review 5, R5-11): browsers keep a `__Host-` cookie only when it is Secure, has Path=/
#: and no Domain, so no other host (a sibling subdomain) can set one in a patron's browser (bot/web/browser_cookie.py).
HOST_COOKIE_NAME = "__Host-" + COOKIE_NAME
#: Marks a cookie value made since the prefix: a value without it was made before and can only finish an attempt
#: begun before the upgrade (at most STATE_LIFETIME ago), so it is still read under the old name.
_BINDING_VERSION = 2

_START, _PATREON, _BROWSER, _UNDO = "link-start", "link-patreon", "link-browser", "link-undo"
_DISCORD_PROOF = b"discord-step-proof"
#: Joins the start state and the start proof in Discord's state: in neither's alphabet (base64url and ".").
_PROOF_SEPARATOR = "~"
_INVALID = "This link is not valid. Run /patreon link again to get a fresh one."
_FOREIGN = "This link was not issued by this bot. Run /patreon link again to get a fresh one."
_EXPIRED = "This link has expired. Run /patreon link again to get a fresh one."


class StateError(Exception):
    """The token is forged, malformed or expired; the message is safe to show a person."""


@dataclass(frozen=True)
class LinkState:
    guild_id: int
    discord_user_id: int
    nonce: str
    expires_at: datetime
    #: Set on the Patreon state only: the random value the Discord callback put in this browser's cookie.
    browser_proof: str = ""
    #: The Linked Roles verification's: no button, so `guild_id` is only a server that has the user; the link's
    #: server is chosen from Patreon's answer (bot/accounts/link_home.py).
    chooses_home: bool = False


@dataclass(frozen=True)
class BrowserBinding:
    """What the cookie says: this browser (a random id it keeps) is running the attempt `nonce`."""

    browser_id: str
    nonce: str


@dataclass(frozen=True)
class UndoGrant:
    discord_user_id: int
    patreon_user_id: str
    browser_id: str
    linked_at: str
    issued_at: datetime


def issue_state(key: bytes, guild_id: int, discord_user_id: int, now: datetime) -> tuple[str, LinkState]:
    """The start state for the button: a fresh nonce, valid for STATE_LIFETIME."""
    state = LinkState(guild_id, discord_user_id, secrets.token_urlsafe(16), _whole_seconds(now + STATE_LIFETIME))
    return _dump(key, _START, _state_fields(state)), state


def verify_state(key: bytes, token: str, now: datetime) -> LinkState:
    """Check the start state's signature, then its expiry; StateError with a plain reason on any failure."""
    return _load_state(key, _START, token, now)


def issue_patreon_state(key: bytes, state: LinkState) -> str:
    """The state sent to Patreon once Discord proved the user is `state.discord_user_id` (same nonce, same expiry)."""
    return _dump(key, _PATREON, _state_fields(state))


def verify_patreon_state(key: bytes, token: str, now: datetime) -> LinkState:
    return _load_state(key, _PATREON, token, now)


@dataclass(frozen=True)
class DiscordStepState:
    """What comes back in Discord's `state`: the button's start state and the start page's proof of the browser."""

    start_token: str
    proof: str


def issue_discord_state(key: bytes, start_token: str, binding: BrowserBinding) -> str:
    """The state the start page sends to Discord: the start state, bound to the browser it just set `binding` in."""
    return f"{start_token}{_PROOF_SEPARATOR}{_start_proof(key, binding)}"


def read_discord_state(token: str) -> DiscordStepState:
    """Split Discord's state; a token without a proof (not a Discord state) comes back whole with an empty proof."""
    start_token, separator, proof = token.rpartition(_PROOF_SEPARATOR)
    return DiscordStepState(start_token, proof) if separator else DiscordStepState(token, "")


def holds_start_proof(key: bytes, step: DiscordStepState, binding: BrowserBinding | None) -> bool:
    """Whether this browser's cookie is the one the start page bound Discord's state to."""
    return binding is not None and bool(step.proof) and hmac.compare_digest(step.proof, _start_proof(key, binding))


def _start_proof(key: bytes, binding: BrowserBinding) -> str:
    message = b"\0".join((_DISCORD_PROOF, binding.browser_id.encode(), binding.nonce.encode()))
    return urlsafe_b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode().rstrip("=")


def issue_binding(key: bytes, nonce: str, browser_id: str | None = None) -> tuple[str, BrowserBinding]:
    """The cookie value for this attempt; a browser that already has an id keeps it (its undo buttons still work)."""
    binding = BrowserBinding(browser_id or secrets.token_urlsafe(16), nonce)
    return _dump(key, _BROWSER, {"b": binding.browser_id, "n": binding.nonce, "v": _BINDING_VERSION}), binding


def read_binding(key: bytes, cookie: str | None) -> BrowserBinding | None:
    """The cookie's binding, or None when it is missing or not signed by this bot."""
    if not cookie:
        return None
    try:
        fields = URLSafeSerializer(key, salt=_BROWSER).loads(cookie)
        return BrowserBinding(str(fields["b"]), str(fields["n"]))
    except (BadData, KeyError, TypeError):
        return None


def made_before_host_prefix(cookie: str) -> bool:
    """Whether this cookie value was made by a version before the `__Host-` name (it has no version), read without
    the key: `read_binding` still checks its signature. Such a value names an attempt begun before the upgrade."""
    payload, dot, _ = cookie.rpartition(".")
    if not dot:
        return False
    try:
        fields = URLSafeSerializer(b"", salt=_BROWSER).load_payload(payload.encode())
    except BadData:
        return False
    return isinstance(fields, dict) and "v" not in fields


def issue_undo(
    key: bytes, discord_user_id: int, patreon_user_id: str, browser_id: str, linked_at: datetime, now: datetime
) -> str:
    fields = {
        "u": str(discord_user_id),
        "p": patreon_user_id,
        "b": browser_id,
        "l": linked_at.isoformat(),
        "t": int(now.timestamp()),
    }
    return _dump(key, _UNDO, fields)


def read_undo(key: bytes, token: str) -> UndoGrant | None:
    """The undo grant, or None when the token is missing or not signed by this bot (age is the caller's check)."""
    if not token:
        return None
    try:
        fields = URLSafeSerializer(key, salt=_UNDO).loads(token)
        return UndoGrant(
            discord_user_id=int(fields["u"]),
            patreon_user_id=str(fields["p"]),
            browser_id=str(fields["b"]),
            linked_at=str(fields["l"]),
            issued_at=datetime.fromtimestamp(int(fields["t"]), UTC),
        )
    except (BadData, KeyError, TypeError, ValueError):
        return None


def new_browser_proof() -> str:
    return secrets.token_urlsafe(16)


def _state_fields(state: LinkState) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "g": str(state.guild_id),
        "u": str(state.discord_user_id),
        "n": state.nonce,
        "e": int(state.expires_at.timestamp()),
    }
    if state.browser_proof:
        fields["p"] = state.browser_proof
    if state.chooses_home:
        fields["h"] = 1
    return fields


def _dump(key: bytes, salt: str, fields: dict[str, Any]) -> str:
    return str(URLSafeSerializer(key, salt=salt).dumps(fields))


def _load_state(key: bytes, salt: str, token: str, now: datetime) -> LinkState:
    if not token:
        raise StateError(_INVALID)
    serializer = URLSafeSerializer(key, salt=salt)
    try:
        fields = serializer.loads(token)
    except BadData as error:
        payload = getattr(error, "payload", None)
        raise StateError(_FOREIGN if payload is not None and _decodes(serializer, payload) else _INVALID) from None
    try:
        state = LinkState(
            guild_id=int(fields["g"]),
            discord_user_id=int(fields["u"]),
            nonce=str(fields["n"]),
            expires_at=datetime.fromtimestamp(int(fields["e"]), UTC),
            browser_proof=str(fields.get("p", "")),
            chooses_home=fields.get("h") == 1,
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        raise StateError(_INVALID) from None
    if now >= state.expires_at:
        raise StateError(_EXPIRED)
    return state


def _decodes(serializer: URLSafeSerializer, payload: Any) -> bool:
    """A well-formed body under a bad signature is "not ours"; garbage is "not valid"."""
    try:
        serializer.load_payload(payload)
    except BadData:
        return False
    return True


def _whole_seconds(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)
