"""Discord OAuth2 (`identify`) for the link flow: who is really at the keyboard, as Discord says.

The bot's own application is the OAuth2 client (DISCORD_CLIENT_ID / DISCORD_CLIENT_SECRET); Discord sends the
browser back to `<PUBLIC_URL>/discord/callback`, which must be registered on the application's OAuth2 page.
`prompt=none` lets someone who already authorised the app skip Discord's consent screen (Discord: "If set to none,
it will skip the authorization screen and redirect them back"); a first-timer still sees it. The access token is
used for one `GET /users/@me` and then dropped: the bot keeps no Discord user token.
"""

from __future__ import annotations

import logging
from urllib.parse import quote, urlencode

import aiohttp

from bot.accounts.link_flow import DiscordSignInRefused, DiscordSignInUnavailable

log = logging.getLogger(__name__)

SCOPES = ("identify",)
DISCORD_CALLBACK_PATH = "/discord/callback"


class DiscordSignInClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        timeout: float = 10.0,
    ) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self.redirect_uri = redirect_uri
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    @property
    def configured(self) -> bool:
        return bool(self._client_id and self._client_secret)

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

    async def identify(self, code: str) -> int:
        """Trade the code for a token and ask Discord whose it is; the Discord user id."""
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri}
        auth = {"Authorization": aiohttp.encode_basic_auth(self._client_id, self._client_secret)}
        try:
            async with self._session.post(
                f"{self._base_url}/api/v10/oauth2/token", data=form, headers=auth, timeout=self._timeout
            ) as response:
                body = await response.json(content_type=None)
                if response.status in (400, 401):
                    error = body.get("error") if isinstance(body, dict) else None
                    raise DiscordSignInRefused(f"token endpoint answered {response.status} {error}")
                if response.status != 200 or not isinstance(body, dict) or "access_token" not in body:
                    raise DiscordSignInUnavailable(f"token endpoint answered {response.status}")
                access_token = str(body["access_token"])
            async with self._session.get(
                f"{self._base_url}/api/v10/users/@me",
                headers={"Authorization": f"Bearer {access_token}"},
                timeout=self._timeout,
            ) as response:
                user = await response.json(content_type=None)
                if response.status == 401:
                    raise DiscordSignInRefused("users/@me answered 401")
                if response.status != 200 or not isinstance(user, dict) or not str(user.get("id", "")).isdigit():
                    raise DiscordSignInUnavailable(f"users/@me answered {response.status}")
                return int(user["id"])
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise DiscordSignInUnavailable(type(error).__name__) from None
