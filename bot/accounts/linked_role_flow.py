"""The Linked Roles verification URL: Discord OAuth2 with `identify role_connections.write`, then Patreon's sign-in
when the user isn't linked yet, then the push of their metadata with their own token.

`/discord/linked-role` (what Discord opens from a role's Links requirement) → sets the browser cookie of the link
flow (bot/accounts/oauth_state.py) naming this attempt → Discord OAuth2 → `/discord/linked-role/callback`, where
the cookie must still match, so an authorisation URL forwarded to someone else, or a callback replayed in another
browser, is refused before any code is exchanged. Discord then says who signed in: the token pair is theirs and is
stored sealed; the metadata pushed is computed from *their* link only (the per-user endpoint is `@me`). Without a
link they go on to Patreon with the link flow's own Patreon state, bound to the same cookie and to their Discord id,
so the Patreon account that ends up linked (and described) is the one that signed in in this browser, under the
link flow's ownership rules (an account linked to someone else is refused). The verification has no server of its
own: the link lands in the server of the campaign the patron belongs to, chosen from Patreon's answer
(bot/accounts/link_home.py), never in another creator's server he is merely a member of.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from itsdangerous import BadData, URLSafeSerializer

from bot.accounts.link_flow import FlowStep
from bot.accounts.link_home import LinkHomes
from bot.accounts.linked_roles import LinkedRoleMetadata
from bot.accounts.linking import PATRON_SCOPES, LinkResult
from bot.accounts.oauth_state import STATE_LIFETIME, LinkState, issue_binding, issue_patreon_state, read_binding
from bot.domain.models import TokenPair
from bot.patreon.client import PatreonClient
from bot.store import Store
from bot.sync.role_connection_push import (
    PushResult,
    RoleConnectionPusher,
    RoleConnectionRefused,
    RoleConnectionUnavailable,
)

log = logging.getLogger(__name__)

VERIFY_PATH = "/discord/linked-role"
_SALT = "linked-role-start"
_AGAIN = "Nothing was changed. Open the role's Linked Roles requirement in Discord again, in the same browser."


class LinkedRoleSignIn(Protocol):
    """Discord OAuth2 for Linked Roles as the flow needs it (bot/web/discord_bearer.py is the real one)."""

    @property
    def configured(self) -> bool: ...

    def authorize_url(self, state: str) -> str: ...

    async def exchange(self, code: str) -> TokenPair: ...

    async def user_id(self, access_token: str) -> int: ...


@dataclass(frozen=True)
class _Start:
    nonce: str
    expires_at: datetime


class LinkedRoleFlow:
    def __init__(
        self,
        signing_key: bytes,
        discord: LinkedRoleSignIn,
        patreon: PatreonClient,
        pusher: RoleConnectionPusher,
        homes: LinkHomes,
        store: Store,
        clock: Callable[[], datetime],
    ) -> None:
        """`homes`: where a verification's link may land (bot/accounts/link_home.py)."""
        self._key = signing_key
        self._discord = discord
        self._patreon = patreon
        self._pusher = pusher
        self._homes = homes
        self._store = store
        self._clock = clock

    async def start(self, cookie: str | None) -> FlowStep:
        """The verification URL: bind this browser to a fresh attempt and send it to Discord."""
        if not self._discord.configured:
            owner = "The bot's owner must set DISCORD_CLIENT_ID and DISCORD_CLIENT_SECRET."
            return _fail("Linked Roles aren't set up yet.", owner, 503)
        nonce = secrets.token_urlsafe(16)
        expires = int((self._clock() + STATE_LIFETIME).timestamp())
        state = str(URLSafeSerializer(self._key, salt=_SALT).dumps({"n": nonce, "e": expires}))
        known = read_binding(self._key, cookie)
        value, _ = issue_binding(self._key, nonce, known.browser_id if known else None)
        log.info("linked roles: verification started")
        return FlowStep(redirect=self._discord.authorize_url(state), cookie=value)

    async def discord_callback(self, params: Mapping[str, str], cookie: str | None) -> FlowStep:
        start = self._read_state(params.get("state", ""))
        if start is None:
            return _fail("This link can't be used.", "It is not valid or has expired. " + _AGAIN)
        binding = read_binding(self._key, cookie)
        if binding is None or binding.nonce != start.nonce:
            log.warning("linked roles: Discord callback in a browser that didn't start it; refused")
            return _fail("This sign-in was started in another browser.", _AGAIN, 403)
        if params.get("error"):
            return _fail("You didn't allow the connection.", "Nothing was changed.", 200)
        if not await self._store.consume_state(start.nonce, start.expires_at):
            return _fail("This link was already used.", _AGAIN)
        try:
            tokens = await self._discord.exchange(params.get("code", ""))
            if "role_connections.write" not in tokens.scope:
                return _fail("Discord didn't grant the connection.", "Nothing was changed. Please allow it.", 400)
            user_id = await self._discord.user_id(tokens.access_token)
        except RoleConnectionRefused as error:
            log.warning("linked roles: Discord refused the sign-in: %s", error)
            return _fail("Discord did not accept this sign-in.", "The code may have expired. " + _AGAIN)
        except RoleConnectionUnavailable as error:
            log.warning("linked roles: Discord unavailable: %s", error)
            return _fail("Discord isn't answering right now.", "Nothing was changed. Try again in a few minutes.", 502)
        await self._store.connect_role_connection(user_id, tokens, self._clock())
        log.info("linked roles: user=%s connected", user_id)
        link = await self._store.get_link_by_discord(user_id)
        if link is not None and not link.by_hand:
            return FlowStep(result=await self._pushed(user_id))
        servers = await self._homes.servers_with(user_id)
        if not servers:
            return _fail(
                "You're not in a server that uses this bot for Patreon roles.",
                "Your Discord account is connected; join the creator's server and open the role again.",
                403,
            )
        proof = secrets.token_urlsafe(16)  # Patreon's callback wants the proof this browser's cookie now holds
        nonce = secrets.token_urlsafe(16)  # the link's server is chosen from Patreon's answer, not by id here
        state = LinkState(servers[0], user_id, nonce, start.expires_at, browser_proof=proof, chooses_home=True)
        value, _ = issue_binding(self._key, proof, binding.browser_id)
        patreon_state = issue_patreon_state(self._key, state)
        return FlowStep(redirect=self._patreon.authorize_url(patreon_state, PATRON_SCOPES), cookie=value)

    async def _pushed(self, user_id: int) -> LinkResult:
        result: PushResult = await self._pusher.push_now(user_id)
        connection = await self._store.role_connection(user_id)
        shown = connection.pushed if connection is not None else None
        described = LinkedRoleMetadata.from_payload(shown).describe() if shown else "nothing yet"
        if result.ok:
            return LinkResult(
                ok=True,
                headline="Your Patreon is connected to Discord.",
                detail=f"Discord now knows: {described}. Roles that require it follow on their own.",
            )
        if result.outcome == "revoked":
            return _failure("Discord refused the connection.", _AGAIN, 403)
        return LinkResult(
            ok=True,
            headline="Your Patreon is connected to Discord.",
            detail="Discord didn't take the update just now; it will be sent again within minutes.",
        )

    def _read_state(self, token: str) -> _Start | None:
        if not token:
            return None
        try:
            fields = URLSafeSerializer(self._key, salt=_SALT).loads(token)
            start = _Start(str(fields["n"]), datetime.fromtimestamp(int(fields["e"]), UTC))
        except (BadData, KeyError, TypeError, ValueError):
            return None
        return start if self._clock() < start.expires_at else None


def _failure(headline: str, detail: str, status: int) -> LinkResult:
    return LinkResult(ok=False, headline=headline, detail=detail, status=status)


def _fail(headline: str, detail: str, status: int = 400) -> FlowStep:
    return FlowStep(result=_failure(headline, detail, status))
