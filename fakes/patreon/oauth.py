"""OAuth as Patreon does it: authorize redirect, single-use codes, single-use rotating refresh tokens.

Error bodies are OAuth-shaped (`{"error": ..., "error_description": ...}`), not JSON:API, exactly as captured
from the real token endpoint.
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
        if fake.take_deny_next_authorize():
            raise web.HTTPFound(_with_query(redirect_uri, {"error": "access_denied", **echo}))
        user_id = fake.authorizing_user_id()
        if user_id is None:
            return web.Response(status=400, text="No fake Patreon user to authorize as")
        scopes = tuple(query.get("scope", "identity").split()) or ("identity",)
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
