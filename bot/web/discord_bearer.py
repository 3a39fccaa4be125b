"""Discord's Bearer-token endpoints for Linked Roles: the code grant with `identify role_connections.write`, the
refresh, `GET /users/@me` and `PUT /users/@me/applications/{app}/role-connection`.

Only ever a user's own access token goes to the per-user endpoint; the bot token never does (Discord answers it
401: docs/discord-api.md, Linked Roles). Tokens are never logged. Refresh tokens rotate: the caller stores the pair
this returns before using it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp

from bot.accounts.linked_roles import SCOPES
from bot.domain.models import TokenPair
from bot.sync.role_connection_push import (
    RoleConnectionRateLimited,
    RoleConnectionRefused,
    RoleConnectionUnavailable,
)

log = logging.getLogger(__name__)

LINKED_ROLE_CALLBACK_PATH = "/discord/linked-role/callback"


class DiscordBearerClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        clock: Callable[[], datetime],
        timeout: float = 10.0,
    ) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self.redirect_uri = redirect_uri
        self._clock = clock
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    @property
    def configured(self) -> bool:
        return bool(self._client_id and self._client_secret)

    @property
    def application_id(self) -> str:
        """The application's id is its OAuth2 client id."""
        return self._client_id

    def authorize_url(self, state: str) -> str:
        query = {
            "response_type": "code",
            "client_id": self._client_id,
            "redirect_uri": self.redirect_uri,
            "scope": " ".join(SCOPES),
            "state": state,
            "prompt": "none",
        }
        return f"{self._base_url}/oauth2/authorize?{urlencode(query, quote_via=quote)}"

    async def exchange(self, code: str) -> TokenPair:
        """The code for a token pair; RoleConnectionRefused for a bad or used code."""
        return await self._token({"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri})

    async def refresh(self, refresh_token: str) -> TokenPair:
        return await self._token({"grant_type": "refresh_token", "refresh_token": refresh_token})

    async def user_id(self, access_token: str) -> int:
        body = await self._call("GET", "/users/@me", access_token, None)
        if not isinstance(body, dict) or not str(body.get("id", "")).isdigit():
            raise RoleConnectionUnavailable("users/@me answered without an id")
        return int(body["id"])

    async def put_role_connection(
        self, access_token: str, platform_name: str, platform_username: str | None, metadata: dict[str, str]
    ) -> None:
        body: dict[str, Any] = {"platform_name": platform_name, "metadata": metadata}
        if platform_username:
            body["platform_username"] = platform_username[:100]
        await self._call("PUT", f"/users/@me/applications/{self._client_id}/role-connection", access_token, body)

    async def _token(self, form: dict[str, str]) -> TokenPair:
        auth = {"Authorization": aiohttp.encode_basic_auth(self._client_id, self._client_secret)}
        try:
            async with self._session.post(
                f"{self._base_url}/api/v10/oauth2/token", data=form, headers=auth, timeout=self._timeout
            ) as response:
                body = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise RoleConnectionUnavailable(type(error).__name__) from None
        code = body.get("error") if isinstance(body, dict) else None
        if status == 400 and code == "invalid_grant":
            raise RoleConnectionRefused("Discord refused the grant (invalid_grant)")
        if status != 200 or not isinstance(body, dict) or "access_token" not in body or "refresh_token" not in body:
            raise RoleConnectionUnavailable(f"token endpoint answered {status} {code or ''}".strip())
        return TokenPair(
            access_token=str(body["access_token"]),
            refresh_token=str(body["refresh_token"]),
            expires_at=self._clock() + timedelta(seconds=int(body.get("expires_in", 604800))),
            scope=tuple(str(body.get("scope", "")).split()),
        )

    async def _call(self, method: str, path: str, access_token: str, body: dict[str, Any] | None) -> Any:
        try:
            async with self._session.request(
                method,
                f"{self._base_url}/api/v10{path}",
                json=body,
                headers={"Authorization": f"Bearer {access_token}"},
                timeout=self._timeout,
            ) as response:
                answer = await response.json(content_type=None)
                status, headers = response.status, response.headers
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise RoleConnectionUnavailable(type(error).__name__) from None
        if status in (401, 403):
            raise RoleConnectionRefused(f"{method} {path.split('/applications/')[0]} answered {status}")
        if status == 429:
            retry = answer.get("retry_after") if isinstance(answer, dict) else None
            retry_after = float(retry if retry is not None else headers.get("Retry-After", "1"))
            is_global = bool(answer.get("global")) if isinstance(answer, dict) else False
            raise RoleConnectionRateLimited(retry_after, is_global=is_global)
        if status == 400:
            log.error("Discord refused the role-connection body: %s", answer)  # a bug of ours: no token in it
            raise RoleConnectionUnavailable("Discord answered 400 Invalid Form Body")
        if status >= 300:
            raise RoleConnectionUnavailable(f"{method} answered {status}")
        return answer
