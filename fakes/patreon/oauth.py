"""OAuth as Patreon does it: authorize redirect, single-use codes, single-use rotating refresh tokens, revocation.

Error bodies are OAuth-shaped (`{"error": ..., "error_description": ...}`), not JSON:API, exactly as captured
from the real token endpoint.

Scopes, as a second account sees them (patreondevelopers.com "What I have learned about scopes", t/8908, observed):
the account that owns the client gets every scope whatever it asks for; scopes a user granted stay granted to later
authorizations until the user revokes the app (Settings > Connected Apps > Disconnect); a scope Patreon doesn't know
sends the browser back with `error=invalid_scope` (patreondevelopers.com t/388, observed). After a revocation the
refresh token answers `invalid_grant` (RFC 6749 5.2; the same body as a used refresh token) and the access token the
API's 401 (unconfirmed for Patreon: the fake takes the unkind reading that it stops at once).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from aiohttp import web

if TYPE_CHECKING:
    from fakes.patreon.fake import FakePatreon

ALL_SCOPES = (
    "identity",
    "identity[email]",
    "identity.memberships",
    "campaigns",
    "w:campaigns.webhook",
    "campaigns.members",
    "campaigns.members[email]",
    "campaigns.members.address",
    "campaigns.posts",
)
DEFAULT_TOKEN_LIFETIME = 2678400
#: What `GET /oauth2/authorize` accepts in `scope` (the v2 scopes, docs "APIv2: OAuth"); anything else: invalid_scope.
KNOWN_SCOPES = frozenset(ALL_SCOPES)
#: The scopes a creator grants when connecting a campaign to the bot (issue 10): no e-mail scope.
CREATOR_SCOPES = ("identity", "campaigns", "campaigns.members", "w:campaigns.webhook")


@dataclass(slots=True)
class FakeToken:
    access_token: str
    refresh_token: str
    user_id: str
    scopes: tuple[str, ...]
    expires_at: float


@dataclass(slots=True, frozen=True)
class FakeCode:
    user_id: str
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]


class TokenStore:
    """Access tokens, refresh tokens and authorization codes, all opaque random strings."""

    def __init__(self, lifetime: int = DEFAULT_TOKEN_LIFETIME) -> None:
        self.lifetime = lifetime
        self.by_access: dict[str, FakeToken] = {}
        self.by_refresh: dict[str, FakeToken] = {}
        self.codes: dict[str, FakeCode] = {}
        #: user id → every scope the user has granted this client (they persist until revoked).
        self.granted: dict[str, set[str]] = {}
        #: user ids that revoked the app, in order (tests read it).
        self.revocations: list[str] = []

    def grant(self, user_id: str, asked: Sequence[str], *, owner: bool) -> tuple[str, ...]:
        """The scopes an authorization gives: everything for the client's owner, else what was asked for plus what
        the user granted before."""
        if owner:
            return ALL_SCOPES
        granted = self.granted.setdefault(user_id, set())
        granted.update(asked)
        return tuple(scope for scope in ALL_SCOPES if scope in granted)

    def revoke(self, user_id: str) -> int:
        """The user removes the app: every token and code of theirs dies, and their granted scopes are forgotten.
        Returns how many token pairs died."""
        dead = [token for token in self.by_access.values() if token.user_id == user_id]
        for token in dead:
            self.by_access.pop(token.access_token, None)
            self.by_refresh.pop(token.refresh_token, None)
        for code in [code for code, grant in self.codes.items() if grant.user_id == user_id]:
            del self.codes[code]
        self.granted.pop(user_id, None)
        self.revocations.append(user_id)
        return len(dead)

    def issue(self, user_id: str, scopes: Sequence[str]) -> FakeToken:
        token = FakeToken(
            secrets.token_urlsafe(32), secrets.token_urlsafe(32), user_id, tuple(scopes), time.time() + self.lifetime
        )
        self.by_access[token.access_token] = token
        self.by_refresh[token.refresh_token] = token
        return token

    def lookup(self, access_token: str) -> FakeToken | None:
        token = self.by_access.get(access_token)
        return token if token is not None and token.expires_at > time.time() else None

    def rotate(self, refresh_token: str) -> FakeToken | None:
        """Single use: the old refresh token dies; the old access token lives until it expires."""
        old = self.by_refresh.pop(refresh_token, None)
        return None if old is None else self.issue(old.user_id, old.scopes)

    def issue_code(self, user_id: str, client_id: str, redirect_uri: str, scopes: Sequence[str]) -> str:
        code = secrets.token_urlsafe(24)
        self.codes[code] = FakeCode(user_id, client_id, redirect_uri, tuple(scopes))
        return code


def _oauth_error(status: int, error: str, description: str | None = None) -> web.Response:
    body: dict[str, Any] = {"error": error}
    if description is not None:
        body["error_description"] = description
    return web.json_response(body, status=status)


def _with_query(uri: str, params: dict[str, str]) -> str:
    parts = urlsplit(uri)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def token_response_body(token: FakeToken, lifetime: int) -> dict[str, Any]:
    return {
        "access_token": token.access_token,
        "expires_in": lifetime,
        "token_type": "Bearer",
        "scope": " ".join(token.scopes),
        "refresh_token": token.refresh_token,
        "version": "0.0.1",
    }


def oauth_routes(fake: FakePatreon) -> list[web.RouteDef]:
    """`GET /oauth2/authorize` and `POST /api/oauth2/token`."""

    async def authorize(request: web.Request) -> web.StreamResponse:
        query = request.query
        redirect_uri = query.get("redirect_uri", "")
        if query.get("client_id") != fake.client_id or redirect_uri not in fake.redirect_uris:
            return web.Response(status=400, text="Invalid client_id or redirect_uri")
        state = query.get("state")
        echo = {"state": state} if state is not None else {}
        if query.get("response_type") != "code":
            raise web.HTTPFound(_with_query(redirect_uri, {"error": "unsupported_response_type", **echo}))
        asked = tuple(query.get("scope", "identity").split()) or ("identity",)
        if any(scope not in KNOWN_SCOPES for scope in asked):
            raise web.HTTPFound(_with_query(redirect_uri, {"error": "invalid_scope", **echo}))
        if fake.take_deny_next_authorize():
            raise web.HTTPFound(_with_query(redirect_uri, {"error": "access_denied", **echo}))
        user_id = fake.authorizing_user_id()
        if user_id is None:
            return web.Response(status=400, text="No fake Patreon user to authorize as")
        scopes = fake.tokens.grant(user_id, asked, owner=user_id == fake.owner_id)
        code = fake.tokens.issue_code(user_id, fake.client_id, redirect_uri, scopes)
        raise web.HTTPFound(_with_query(redirect_uri, {"code": code, **echo}))

    async def token(request: web.Request) -> web.Response:
        params: dict[str, str] = dict(request.query)
        if request.can_read_body:
            form = await request.post()
            params.update({key: value for key, value in form.items() if isinstance(value, str)})
        grant_type = params.get("grant_type")
        if grant_type == "authorization_code" and not params.get("code"):
            return _oauth_error(400, "invalid_request", "Missing code parameter.")
        if grant_type == "refresh_token" and not params.get("refresh_token"):
            return _oauth_error(400, "invalid_request", "Missing refresh_token parameter.")
        if grant_type not in ("authorization_code", "refresh_token"):
            return _oauth_error(400, "invalid_request", "not_supported_grant.")
        if params.get("client_id") != fake.client_id:
            return _oauth_error(400, "invalid_request", "Invalid client_id parameter value.")
        if params.get("client_secret") != fake.client_secret:
            return _oauth_error(401, "invalid_client")
        store = fake.tokens
        if grant_type == "authorization_code":
            grant = store.codes.get(params["code"])
            if grant is None or grant.client_id != fake.client_id or grant.redirect_uri != params.get("redirect_uri"):
                return _oauth_error(401, "invalid_grant")
            del store.codes[params["code"]]
            issued = store.issue(grant.user_id, grant.scopes)
        else:
            rotated = store.rotate(params["refresh_token"])
            if rotated is None:
                return _oauth_error(401, "invalid_grant")
            issued = rotated
        return web.json_response(token_response_body(issued, store.lifetime))

    return [web.get("/oauth2/authorize", authorize), web.post("/api/oauth2/token", token)]
