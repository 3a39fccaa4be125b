"""Discord's OAuth2 authorization-code grant, as a person's browser and the bot's server meet it.

What Discord does (docs.discord.com/developers/topics/oauth2, and the threads in discord/discord-api-docs):
- `GET /oauth2/authorize?client_id&redirect_uri&response_type=code&scope&state[&prompt]`: a browser not signed
  in to Discord is sent to the sign-in page (`/login?redirect_to=...`) first. An unknown client or a redirect URI
  that is not registered is an error page, never a redirect. Then the consent screen; `prompt=none` skips it only
  for a user who already authorised this client for these scopes ("If set to none, it will skip the authorization
  screen and redirect them back to your redirect URI"). Authorize redirects with `code` and `state`, Cancel with
  `error=access_denied`, `error_description` and `state`.
- `POST /api/v10/oauth2/token` takes only `application/x-www-form-urlencoded` ("JSON content is not permitted");
  the client authenticates with HTTP Basic or `client_id`/`client_secret` in the form. A code works once, for the
  redirect URI it was issued for, and expires quickly (a maintainer: "codes are one time use and expire ... after
  creation"): else 400 `{"error": "invalid_grant", "error_description": "Invalid \\"code\\" in request."}`.
  A wrong client is 401 `{"error": "invalid_client"}`.
- `GET /api/v10/users/@me` with `Authorization: Bearer <token>` answers the signed-in user's object; a missing,
  unknown or expired token is 401 `{"message": "401: Unauthorized", "code": 0}`.
- Refreshing (`docs/topics/oauth2.mdx`, "Refresh Token Exchange Example"): `grant_type=refresh_token` with the
  refresh token answers a new access token *and a new refresh token*; the fake invalidates the old refresh token
  and the old access token once used (rotation), so a client must store each new pair. An unknown, used or revoked
  refresh token is 400 `invalid_grant`. `POST /oauth2/token/revoke` (form `token`, the client's credentials)
  revokes the token; a user who removes the app under *Settings → Authorized Apps* (`deauthorize`) loses every
  token of theirs for it.

Tests pick who is signed in to Discord in a browser by signing in through `/login` (a form that takes a username,
standing in for Discord's e-mail and password) or by `sign_in(user_id)` and putting the returned session in the
browser's cookie jar under SESSION_COOKIE; a browser without it is signed out.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from aiohttp import web

from .transport import API_PREFIX, json_response

if TYPE_CHECKING:
    from .server import FakeDiscord

SESSION_COOKIE = "fake_discord_session"
CODE_LIFETIME = 600.0
TOKEN_LIFETIME = 604800
DENIED = "The resource owner or authorization server denied the request"
_INVALID_CODE = 'Invalid "code" in request.'
_INVALID_REDIRECT = 'Invalid "redirect_uri" in request.'
_PAGE = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>'
    "<body><h1>{title}</h1>{body}</body></html>"
)


@dataclass(frozen=True)
class _Code:
    user_id: int
    redirect_uri: str
    scopes: tuple[str, ...]
    expires_at: float


@dataclass(frozen=True)
class _Token:
    user_id: int
    scopes: tuple[str, ...]
    expires_at: float
    #: The refresh token issued with this access token (rotation retires both).
    refresh_token: str = ""


@dataclass
class DiscordOAuth:
    """The OAuth2 side of the fake: the bot's application as a client, sessions, grants, codes and tokens."""

    fake: FakeDiscord
    client_secret: str = "fake-discord-client-secret"
    redirect_uris: set[str] = field(default_factory=set)
    sessions: dict[str, int] = field(default_factory=dict)
    #: (user id, scope) pairs a user has authorised; `prompt=none` skips consent only when all are there.
    authorised: set[tuple[int, str]] = field(default_factory=set)
    codes: dict[str, _Code] = field(default_factory=dict)
    tokens: dict[str, _Token] = field(default_factory=dict)
    #: refresh token → (user id, scopes); one use each.
    refresh_tokens: dict[str, tuple[int, tuple[str, ...]]] = field(default_factory=dict)
    #: Seconds an access token lives (`expires_in`); a test shortens it to make the bot refresh.
    token_lifetime: int = TOKEN_LIFETIME
    #: The grant type of every token issued ("authorization_code", "refresh_token"), oldest first.
    grants: list[str] = field(default_factory=list)
    #: Every page or call, as (method, path): the tests count what a person's browser went through.
    visits: list[tuple[str, str]] = field(default_factory=list)

    @property
    def client_id(self) -> str:
        return str(self.fake.application_id)

    # ---- test controls ---------------------------------------------------------------------------

    def register(self, client_secret: str, redirect_uris: tuple[str, ...]) -> None:
        """The developer portal's OAuth2 page: the client secret and the allowed redirect URIs."""
        self.client_secret = client_secret
        self.redirect_uris = set(redirect_uris)

    def sign_in(self, user_id: int) -> str:
        """A Discord session for this user; put it in a browser's cookie jar as SESSION_COOKIE."""
        session = secrets.token_urlsafe(24)
        self.sessions[session] = user_id
        return session

    def deauthorize(self, user_id: int) -> None:
        """The user removes the app under Settings → Authorized Apps: every token of theirs stops working."""
        self.tokens = {key: token for key, token in self.tokens.items() if token.user_id != user_id}
        self.refresh_tokens = {key: value for key, value in self.refresh_tokens.items() if value[0] != user_id}
        self.authorised = {(user, scope) for user, scope in self.authorised if user != user_id}

    def expire_access_tokens(self, user_id: int) -> None:
        """Time passes: this user's access tokens expire (their refresh tokens still work)."""
        for key, token in list(self.tokens.items()):
            if token.user_id == user_id:
                self.tokens[key] = _Token(token.user_id, token.scopes, 0.0, token.refresh_token)

    def bearer_user(self, access_token: str, scope: str) -> int | None:
        """Whose live token this is when it carries `scope`; None for an unknown, expired or revoked one."""
        token = self.tokens.get(access_token)
        if token is None or token.expires_at <= time.monotonic() or scope not in token.scopes:
            return None
        return token.user_id

    # ---- wiring ----------------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/oauth2/authorize", self.authorize)
        app.router.add_post("/oauth2/authorize", self.consent)
        app.router.add_get("/login", self.login_page)
        app.router.add_post("/login", self.login)

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """The token endpoint and Bearer `/users/@me` authenticate differently from the bot's REST calls."""
        if request.method == "POST" and request.path == API_PREFIX + "/oauth2/token":
            return await self.token(request)
        if request.method == "POST" and request.path == API_PREFIX + "/oauth2/token/revoke":
            return await self.revoke(request)
        auth = request.headers.get("Authorization", "")
        if request.method == "GET" and request.path == API_PREFIX + "/users/@me" and auth.startswith("Bearer "):
            return self.me(auth.removeprefix("Bearer "))
        return await handler(request)

    # ---- the browser's side ----------------------------------------------------------------------

    async def authorize(self, request: web.Request) -> web.StreamResponse:
        self.visits.append(("GET", "/oauth2/authorize"))
        query = request.query
        problem = self._client_problem(query.get("client_id"), query.get("redirect_uri", ""))
        if problem:
            return _page("Invalid OAuth2 request", problem, 400)
        user_id = self._signed_in(request)
        if user_id is None:
            raise web.HTTPFound("/login?" + urlencode({"redirect_to": str(request.rel_url)}))
        redirect_uri, state = query["redirect_uri"], query.get("state")
        if query.get("response_type") != "code":
            return _page("Invalid OAuth2 request", "Invalid response_type.", 400)
        scopes = tuple(query.get("scope", "").split())
        if not scopes:
            return _page("Invalid OAuth2 request", "No scopes were provided.", 400)
        if query.get("prompt") == "none" and all((user_id, scope) in self.authorised for scope in scopes):
            raise web.HTTPFound(self._approve(user_id, redirect_uri, scopes, state))
        hidden = "".join(
            f'<input type="hidden" name="{escape(key)}" value="{escape(value)}">' for key, value in query.items()
        )
        body = (
            f"<p>An external application wants to access your Discord account: {escape(', '.join(scopes))}.</p>"
            f'<form method="post" action="/oauth2/authorize">{hidden}'
            '<button type="submit" name="decision" value="authorize" id="authorize">Authorize</button> '
            '<button type="submit" name="decision" value="cancel" id="cancel">Cancel</button></form>'
        )
        return _page("Authorize access to your account", body, 200)

    async def consent(self, request: web.Request) -> web.StreamResponse:
        self.visits.append(("POST", "/oauth2/authorize"))
        form = {key: value for key, value in (await request.post()).items() if isinstance(value, str)}
        problem = self._client_problem(form.get("client_id"), form.get("redirect_uri", ""))
        user_id = self._signed_in(request)
        if problem or user_id is None:
            return _page("Invalid OAuth2 request", problem or "You are not signed in.", 400)
        redirect_uri, state = form["redirect_uri"], form.get("state")
        echo = {"state": state} if state is not None else {}
        if form.get("decision") != "authorize":
            denied = {"error": "access_denied", "error_description": DENIED, **echo}
            raise web.HTTPFound(_with_query(redirect_uri, denied))
        scopes = tuple(form.get("scope", "").split())
        self.authorised.update((user_id, scope) for scope in scopes)
        raise web.HTTPFound(self._approve(user_id, redirect_uri, scopes, state))

    async def login_page(self, request: web.Request) -> web.Response:
        self.visits.append(("GET", "/login"))
        redirect_to = escape(request.query.get("redirect_to", "/"))
        body = (
            f'<form method="post" action="/login"><input type="hidden" name="redirect_to" value="{redirect_to}">'
            '<label>Username <input name="login" id="login" autocomplete="username"></label> '
            '<button type="submit" id="log-in">Log In</button></form>'
        )
        return _page("Welcome back!", body, 200)

    async def login(self, request: web.Request) -> web.StreamResponse:
        self.visits.append(("POST", "/login"))
        form = await request.post()
        login, redirect_to = str(form.get("login", "")), str(form.get("redirect_to", "/"))
        user_id = self._user_by_name(login.strip())
        if user_id is None:
            return _page("Welcome back!", "<p>Login or password is invalid.</p>", 400)
        if not redirect_to.startswith("/"):
            redirect_to = "/"
        response = web.HTTPFound(redirect_to)
        response.set_cookie(SESSION_COOKIE, self.sign_in(user_id), httponly=True, samesite="Lax", path="/")
        raise response

    # ---- the bot server's side -------------------------------------------------------------------

    async def token(self, request: web.Request) -> web.Response:
        self.visits.append(("POST", "/api/v10/oauth2/token"))
        if request.content_type != "application/x-www-form-urlencoded":
            return json_response({"error": "invalid_request", "error_description": "Unsupported content type"}, 400)
        form = {key: value for key, value in (await request.post()).items() if isinstance(value, str)}
        client_id, client_secret = _basic_auth(request) or (form.get("client_id"), form.get("client_secret"))
        if client_id != self.client_id or client_secret != self.client_secret:
            return json_response({"error": "invalid_client"}, 401)
        if form.get("grant_type") == "refresh_token":
            grant = self.refresh_tokens.pop(form.get("refresh_token", ""), None)
            if grant is None:
                return json_response({"error": "invalid_grant", "error_description": "Invalid refresh_token"}, 400)
            used = form.get("refresh_token", "")
            self.tokens = {key: token for key, token in self.tokens.items() if token.refresh_token != used}
            self.grants.append("refresh_token")
            return json_response(self._issue(*grant))
        if form.get("grant_type") != "authorization_code":
            return json_response({"error": "unsupported_grant_type"}, 400)
        code = self.codes.pop(form.get("code", ""), None)
        if code is None or code.expires_at <= time.monotonic():
            return json_response({"error": "invalid_grant", "error_description": _INVALID_CODE}, 400)
        if code.redirect_uri != form.get("redirect_uri"):
            return json_response({"error": "invalid_grant", "error_description": _INVALID_REDIRECT}, 400)
        self.grants.append("authorization_code")
        return json_response(self._issue(code.user_id, code.scopes))

    def _issue(self, user_id: int, scopes: tuple[str, ...]) -> dict[str, Any]:
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self.tokens[access] = _Token(user_id, scopes, time.monotonic() + self.token_lifetime, refresh)
        self.refresh_tokens[refresh] = (user_id, scopes)
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.token_lifetime,
            "refresh_token": refresh,
            "scope": " ".join(scopes),
        }

    async def revoke(self, request: web.Request) -> web.Response:
        """POST /oauth2/token/revoke: the access or refresh token (and its partner) stops working."""
        self.visits.append(("POST", "/api/v10/oauth2/token/revoke"))
        form = {key: value for key, value in (await request.post()).items() if isinstance(value, str)}
        client_id, client_secret = _basic_auth(request) or (form.get("client_id"), form.get("client_secret"))
        if client_id != self.client_id or client_secret != self.client_secret:
            return json_response({"error": "invalid_client"}, 401)
        value = form.get("token", "")
        token = self.tokens.pop(value, None)
        refresh = token.refresh_token if token is not None else value
        self.refresh_tokens.pop(refresh, None)
        self.tokens = {key: t for key, t in self.tokens.items() if t.refresh_token != refresh}
        return json_response({})

    def me(self, access_token: str) -> web.Response:
        self.visits.append(("GET", "/api/v10/users/@me"))
        token = self.tokens.get(access_token)
        user = self._user_payload(token.user_id) if token and token.expires_at > time.monotonic() else None
        if token is None or user is None or "identify" not in token.scopes:
            return json_response({"message": "401: Unauthorized", "code": 0}, 401)
        return json_response(user)

    # ---- helpers ---------------------------------------------------------------------------------

    def _client_problem(self, client_id: str | None, redirect_uri: str) -> str:
        if client_id != self.client_id:
            return "Unknown application."
        if redirect_uri not in self.redirect_uris:
            return "Invalid OAuth2 redirect_uri"
        return ""

    def _approve(self, user_id: int, redirect_uri: str, scopes: tuple[str, ...], state: str | None) -> str:
        code = secrets.token_urlsafe(24)
        self.codes[code] = _Code(user_id, redirect_uri, scopes, time.monotonic() + CODE_LIFETIME)
        return _with_query(redirect_uri, {"code": code, **({"state": state} if state is not None else {})})

    def _signed_in(self, request: web.Request) -> int | None:
        return self.sessions.get(request.cookies.get(SESSION_COOKIE, ""))

    def _members(self) -> list[Any]:
        return [member for guild in self.fake.guilds.values() for member in guild.members.values() if not member.bot]

    def _user_by_name(self, login: str) -> int | None:
        named = (member.user_id for member in self._members() if login in (member.username, str(member.user_id)))
        return next(named, None)

    def _user_payload(self, user_id: int) -> dict[str, Any] | None:
        member = next((member for member in self._members() if member.user_id == user_id), None)
        return None if member is None else dict(member.user_payload())


def _basic_auth(request: web.Request) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return None
    try:
        client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        return None
    return client_id, secret


def _with_query(uri: str, params: dict[str, str]) -> str:
    parts = urlsplit(uri)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _page(title: str, body: str, status: int) -> web.Response:
    if not body.startswith("<"):
        body = f"<p>{escape(body)}</p>"
    return web.Response(text=_PAGE.format(title=escape(title), body=body), status=status, content_type="text/html")
