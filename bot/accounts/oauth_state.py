"""The OAuth `state`: a signed, expiring token binding one link attempt to a guild and a Discord user.

The signature stops forgery; the expiry bounds how long a leaked link works; the store's
"consume once" record (keyed by the nonce) makes each state single-use.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

STATE_LIFETIME = timedelta(minutes=15)


class StateError(Exception):
    """The state is forged, malformed or expired; the message is safe to show a person."""


@dataclass(frozen=True)
class LinkState:
    guild_id: int
    discord_user_id: int
    nonce: str
    expires_at: datetime


def issue_state(key: bytes, guild_id: int, discord_user_id: int, now: datetime) -> tuple[str, LinkState]:
    state = LinkState(guild_id, discord_user_id, secrets.token_urlsafe(16), now + STATE_LIFETIME)
    payload = json.dumps(
        {"g": str(guild_id), "u": str(discord_user_id), "n": state.nonce, "e": int(state.expires_at.timestamp())},
        separators=(",", ":"),
    ).encode()
    body = _b64(payload)
    return f"{body}.{_b64(_sign(key, body))}", state


def verify_state(key: bytes, token: str, now: datetime) -> LinkState:
    """Check signature then expiry; raise StateError with a plain reason on any failure."""
    body, dot, signature = token.partition(".")
    if not dot or not body or not signature:
        raise StateError("This link is not valid. Run /patreon link again to get a fresh one.")
    try:
        given = _unb64(signature)
    except ValueError:
        raise StateError("This link is not valid. Run /patreon link again to get a fresh one.") from None
    if not hmac.compare_digest(given, _sign(key, body)):
        raise StateError("This link was not issued by this bot. Run /patreon link again to get a fresh one.")
    try:
        fields = json.loads(_unb64(body))
        state = LinkState(
            guild_id=int(fields["g"]),
            discord_user_id=int(fields["u"]),
            nonce=str(fields["n"]),
            expires_at=datetime.fromtimestamp(int(fields["e"]), UTC),
        )
    except (ValueError, KeyError, TypeError):
        raise StateError("This link is not valid. Run /patreon link again to get a fresh one.") from None
    if now >= state.expires_at:
        raise StateError("This link has expired. Run /patreon link again to get a fresh one.")
    return state


def _sign(key: bytes, body: str) -> bytes:
    return hmac.new(key, body.encode(), hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as error:
        raise ValueError("bad base64") from error
