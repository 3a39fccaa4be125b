"""The signed tokens of the connect flow (`/patreon-admin connect`), beside the link flow's (oauth_state.py).

- the **start state** rides in the connect button: one attempt, for one (server, admin), 15 minutes;
- the **Patreon state** is minted only once Discord's sign-in proved the admin is at the keyboard;
- the **pick token** is the campaign picker's form field: the same attempt, the campaign ids offered.

Each kind has its own salt, distinct from every link-flow salt, so a link state never passes for a connect state
(that is how the one Discord and Patreon callback tell the flows apart: `is_connect_state`). The browser cookie is
the link flow's (same name, same signer), naming this attempt's nonce; the store's "consume once" record makes the
Patreon callback and the pick single-use.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from itsdangerous import BadData, URLSafeSerializer

from bot.accounts.oauth_state import STATE_LIFETIME, StateError

_START, _PATREON, _PICK = "connect-start", "connect-patreon", "connect-pick"
_INVALID = "This connect link is not valid. Run /patreon-admin connect again to get a fresh one."
_EXPIRED = "This connect link has expired. Run /patreon-admin connect again to get a fresh one."


@dataclass(frozen=True)
class ConnectState:
    guild_id: int
    admin_id: int
    nonce: str
    expires_at: datetime
    #: The server's name when the button was made, for the pages (signed, so the bot's own words).
    guild_name: str = ""
    #: After Discord's step only: the random value the Discord callback put in this browser's cookie. The start
    #: page's cookie names the nonce, which rides in a URL anyone can forward; this proof exists only in the
    #: browser that passed the admin's sign-in (bot/accounts/oauth_state.py says why).
    browser_proof: str = ""


@dataclass(frozen=True)
class CampaignPick:
    state: ConnectState
    campaign_ids: tuple[str, ...]


def issue_connect_state(
    key: bytes, guild_id: int, admin_id: int, now: datetime, guild_name: str = ""
) -> tuple[str, ConnectState]:
    expires = (now + STATE_LIFETIME).replace(microsecond=0)
    state = ConnectState(guild_id, admin_id, secrets.token_urlsafe(16), expires, guild_name[:100])
    return _dump(key, _START, _fields(state)), state


def verify_connect_state(key: bytes, token: str, now: datetime) -> ConnectState:
    return _state(_load(key, _START, token), now)


def issue_connect_patreon_state(key: bytes, state: ConnectState) -> str:
    return _dump(key, _PATREON, _fields(state))


def verify_connect_patreon_state(key: bytes, token: str, now: datetime) -> ConnectState:
    return _state(_load(key, _PATREON, token), now)


def issue_pick(key: bytes, state: ConnectState, campaign_ids: tuple[str, ...]) -> str:
    return _dump(key, _PICK, {**_fields(state), "c": list(campaign_ids)})


def verify_pick(key: bytes, token: str, now: datetime) -> CampaignPick:
    fields = _load(key, _PICK, token)
    ids = fields.get("c")
    if not isinstance(ids, list) or not all(isinstance(item, str) for item in ids):
        raise StateError(_INVALID)
    return CampaignPick(_state(fields, now), tuple(ids))


def is_connect_state(key: bytes, token: str) -> bool:
    """Whether a callback's `state` belongs to the connect flow (signed with one of its salts), expired or not."""
    for salt in (_START, _PATREON):
        try:
            URLSafeSerializer(key, salt=salt).loads(token)
        except BadData:
            continue
        return True
    return False


def _fields(state: ConnectState) -> dict[str, Any]:
    return {
        "g": str(state.guild_id),
        "a": str(state.admin_id),
        "n": state.nonce,
        "e": int(state.expires_at.timestamp()),
        "s": state.guild_name,
        **({"p": state.browser_proof} if state.browser_proof else {}),
    }


def _dump(key: bytes, salt: str, fields: dict[str, Any]) -> str:
    return str(URLSafeSerializer(key, salt=salt).dumps(fields))


def _load(key: bytes, salt: str, token: str) -> dict[str, Any]:
    if not token:
        raise StateError(_INVALID)
    try:
        fields = URLSafeSerializer(key, salt=salt).loads(token)
    except BadData:
        raise StateError(_INVALID) from None
    if not isinstance(fields, dict):
        raise StateError(_INVALID)
    return fields


def _state(fields: dict[str, Any], now: datetime) -> ConnectState:
    try:
        state = ConnectState(
            guild_id=int(fields["g"]),
            admin_id=int(fields["a"]),
            nonce=str(fields["n"]),
            expires_at=datetime.fromtimestamp(int(fields["e"]), UTC),
            guild_name=str(fields.get("s", "")),
            browser_proof=str(fields.get("p", "")),
        )
    except (KeyError, TypeError, ValueError):
        raise StateError(_INVALID) from None
    if now >= state.expires_at:
        raise StateError(_EXPIRED)
    return state
