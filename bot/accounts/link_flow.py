"""The link flow's steps: the bot's start page, Discord's proof of identity, Patreon's callback, and undo.

button → `/link/start` (sets a cookie binding this browser to the attempt) → Discord OAuth2 `identify` →
`/discord/callback` (the Discord user must be the one the button was made for, and Discord's state must carry the
start page's proof of this browser, so the attacker's own unopened callback fails in a victim's browser even right
after his start link) → Patreon OAuth →
`/patreon/callback` (the cookie must hold the proof the Discord callback gave this browser) → the link. A forwarded
button fails at Discord's step, because Discord signs in the person holding the browser, not the person who ran the
command; a Patreon redirect replayed into another browser fails at the cookie, even when the attacker first made
that browser open his start page (the start page's cookie names only the attempt, which anyone holding the link
knows; the proof is minted after Discord's sign-in, in the browser that passed it). Nothing is stored before both
proofs hold.

Every step also asks whether the button's server still acts for the campaign (bot/sync/participation.py): a
button made before the server was turned off, or before it was left out of ALLOWED_GUILD_IDS, links nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol
from urllib.parse import quote

from bot.accounts.linking import PATRON_SCOPES, LinkingService, LinkResult
from bot.accounts.oauth_state import (
    UNDO_WINDOW,
    BrowserBinding,
    LinkState,
    StateError,
    holds_start_proof,
    issue_binding,
    issue_discord_state,
    issue_patreon_state,
    issue_state,
    issue_undo,
    new_browser_proof,
    read_binding,
    read_discord_state,
    read_undo,
    verify_patreon_state,
    verify_state,
)
from bot.patreon.client import PatreonClient
from bot.store import Store

log = logging.getLogger(__name__)

START_PATH = "/link/start"
_RUN_AGAIN = "Nothing was linked. Run /patreon link again in Discord, in the same browser you open it in."
#: What a patron hears in a server that doesn't take part; the admin-facing reason goes to the log only.
NOT_HERE = "This server doesn't use the bot for Patreon roles"


class DiscordSignInRefused(Exception):
    """Discord refused the code or the token (expired, used, not ours)."""


class DiscordSignInUnavailable(Exception):
    """Discord did not answer usefully; nothing can be decided."""


class DiscordSignIn(Protocol):
    """Discord OAuth2 as the flow needs it (bot.web.discord_sign_in is the real one)."""

    @property
    def configured(self) -> bool: ...

    def authorize_url(self, state: str) -> str: ...

    async def identify(self, code: str) -> int: ...


class LinkRefused(Exception):
    """`/patreon link` can't offer a button here; the message is the one friendly sentence to answer."""


@dataclass(frozen=True)
class FlowStep:
    """Either send the browser on (`redirect`, maybe setting `cookie`) or show `result`."""

    redirect: str | None = None
    cookie: str | None = None
    result: LinkResult | None = None
    #: The CSRF token of the result page's undo button, when a link was just made.
    undo_token: str | None = None
    #: `result` is the Patreon callback's: shown with the accounts, tier and roles.
    is_link_result: bool = False


class LinkFlow:
    def __init__(
        self,
        signing_key: bytes,
        public_base_url: str,
        discord: DiscordSignIn,
        patreon: PatreonClient,
        linking: LinkingService,
        store: Store,
        clock: Callable[[], datetime],
        after_link: Callable[[int], Awaitable[object]] | None = None,
    ) -> None:
        """`after_link(discord_user_id)` runs once a link is made (Linked Roles pushes the new metadata)."""
        self._key = signing_key
        self._public = public_base_url.rstrip("/")
        self._after_link = after_link
        self._discord = discord
        self._patreon = patreon
        self._linking = linking
        self._store = store
        self._clock = clock

    @property
    def cookie_secure(self) -> bool:
        return self._public.startswith("https://")

    async def button_url(self, guild_id: int, discord_user_id: int) -> str:
        """The URL behind the `/patreon link` button; LinkRefused while Discord sign-in isn't configured or the
        server doesn't act for the campaign."""
        if not self._discord.configured:
            log.warning("link refused for user=%s: DISCORD_CLIENT_ID/SECRET are not set", discord_user_id)
            raise LinkRefused(
                "Linking isn't set up yet: the bot's owner must set DISCORD_CLIENT_ID and DISCORD_CLIENT_SECRET."
            )
        problem = await self._linking.server_refusal(guild_id)
        if problem is not None:
            log.info("link refused for user=%s in guild=%s: %s", discord_user_id, guild_id, problem)
            raise LinkRefused(f"{NOT_HERE}, so there's nothing to link here.")
        token, _ = issue_state(self._key, guild_id, discord_user_id, self._clock())
        return f"{self._public}{START_PATH}?state={quote(token)}"

    async def start(self, state_token: str, cookie: str | None) -> FlowStep:
        """The bot's start page: bind this browser to the attempt, then on to Discord."""
        try:
            state = verify_state(self._key, state_token, self._clock())
        except StateError as error:
            return _fail("This link can't be used.", str(error))
        if (refused := await self._server_refused(state)) is not None:
            return refused
        known = read_binding(self._key, cookie)
        value, binding = issue_binding(self._key, state.nonce, known.browser_id if known else None)
        log.info("link started for user=%s in guild=%s", state.discord_user_id, state.guild_id)
        discord_state = issue_discord_state(self._key, state_token, binding)  # Discord's step: this browser only
        return FlowStep(redirect=self._discord.authorize_url(discord_state), cookie=value)

    async def discord_callback(self, params: Mapping[str, str], cookie: str | None) -> FlowStep:
        """Discord says who signed in: only the user the button was made for, in the browser that opened the start
        page (an attacker's own callback replayed after his start link in a victim's browser fails here)."""
        step = read_discord_state(params.get("state", ""))
        try:
            state = verify_state(self._key, step.start_token, self._clock())
        except StateError as error:
            return _fail("This link can't be used.", str(error))
        browser = self._browser_of(state, cookie)
        if browser is None or not holds_start_proof(self._key, step, browser):
            log.warning("link for user=%s refused: Discord callback in another browser", state.discord_user_id)
            return _fail("This sign-in was started in another browser.", _RUN_AGAIN, 403)
        if (refused := await self._server_refused(state)) is not None:
            return refused
        if params.get("error"):
            return _fail("You didn't allow Discord sign-in.", "Nothing was linked. Run /patreon link again.", 200)
        try:
            discord_user_id = await self._discord.identify(params.get("code", ""))
        except DiscordSignInRefused as error:
            log.warning("link for user=%s: Discord refused the sign-in: %s", state.discord_user_id, error)
            return _fail("Discord did not accept this sign-in.", "The code may have expired. Run /patreon link again.")
        except DiscordSignInUnavailable as error:
            log.warning("link for user=%s: Discord unavailable: %s", state.discord_user_id, error)
            return _fail("Discord isn't answering right now.", "Nothing was changed. Try again in a few minutes.", 502)
        if discord_user_id != state.discord_user_id:
            await self._store.consume_state(state.nonce, state.expires_at)  # a forwarded button is burnt
            log.warning(
                "link refused: button for user=%s opened by Discord user=%s", state.discord_user_id, discord_user_id
            )
            return _fail(
                "This link was made for another Discord account.",
                "Nothing was linked. To link your own account, run /patreon link yourself in Discord.",
                403,
            )
        proof = new_browser_proof()
        cookie_value, _ = issue_binding(self._key, proof, browser.browser_id)
        patreon_state = issue_patreon_state(self._key, replace(state, browser_proof=proof))
        return FlowStep(redirect=self._patreon.authorize_url(patreon_state, PATRON_SCOPES), cookie=cookie_value)

    async def patreon_callback(self, params: Mapping[str, str], cookie: str | None) -> FlowStep:
        state_token = params.get("state", "")
        if not state_token:
            return _fail("This link is missing its security token.", "Run /patreon link again in Discord.")
        try:
            state = verify_patreon_state(self._key, state_token, self._clock())
        except StateError as error:
            return _fail("This link can't be used.", str(error))
        browser = self._browser_of(state, cookie, proof=True)
        if browser is None:
            # Used up, so the URL pasted back to whoever started it can't finish there (review F5).
            await self._store.consume_state(state.nonce, state.expires_at)
            log.warning("link for user=%s refused: Patreon callback without its cookie", state.discord_user_id)
            return _fail("This sign-in was started in another browser.", _RUN_AGAIN, 403)
        if not state.chooses_home and (refused := await self._server_refused(state)) is not None:
            return refused  # before the code is exchanged or the state used: nothing is stored
        result = await self._linking.complete_link(state, params)
        link = await self._store.get_link_by_discord(state.discord_user_id) if result.ok else None
        if link is None:
            return FlowStep(result=result, is_link_result=True)
        if self._after_link is not None:
            await self._after_link(state.discord_user_id)
        undo = issue_undo(
            self._key, state.discord_user_id, link.patreon_user_id, browser.browser_id, link.linked_at, self._clock()
        )
        return FlowStep(result=result, undo_token=undo, is_link_result=True)

    async def undo(self, token: str, cookie: str | None) -> LinkResult:
        """"This isn't me": remove a link made in the last hour with this browser, taking back only our roles."""
        grant = read_undo(self._key, token)
        binding = read_binding(self._key, cookie)
        if grant is None or binding is None or binding.browser_id != grant.browser_id:
            log.warning("undo refused: token or browser cookie missing or not matching")
            return _failure("This undo button doesn't belong to this browser.", "Nothing was changed.", 403)
        if self._clock() - grant.issued_at > UNDO_WINDOW:
            return _failure(
                "It's too late to undo here.", "Nothing was changed. Run /patreon unlink in Discord instead.", 400
            )
        link = await self._store.get_link_by_discord(grant.discord_user_id)
        same = link is not None and (link.patreon_user_id, link.linked_at.isoformat()) == (
            grant.patreon_user_id,
            grant.linked_at,
        )
        if not same:
            return _failure("There is nothing to undo.", "This link was already removed or made again since.", 409)
        unlinked = await self._linking.unlink(grant.discord_user_id, who="undo")
        log.info("link undone on its result page: discord=%s patreon=%s", grant.discord_user_id, grant.patreon_user_id)
        return LinkResult(
            ok=True, headline="The link was undone.", detail=f"Nothing is linked any more. {unlinked.describe()}"
        )

    async def _server_refused(self, state: LinkState) -> FlowStep | None:
        """The button's server no longer acts for the campaign (turned off, or not the creator's)."""
        problem = await self._linking.server_refusal(state.guild_id)
        if problem is None:
            return None
        log.info("link for user=%s refused: guild=%s %s", state.discord_user_id, state.guild_id, problem)
        return _fail(f"{NOT_HERE}.", "Nothing was linked. Run /patreon link in a server that uses it.", 403)

    def _browser_of(self, state: LinkState, cookie: str | None, *, proof: bool = False) -> BrowserBinding | None:
        """The cookie's binding when it names this attempt, or (after Discord's step, `proof`) its browser proof."""
        binding = read_binding(self._key, cookie)
        expected = state.browser_proof if proof else state.nonce
        return binding if binding is not None and expected and binding.nonce == expected else None


def _failure(headline: str, detail: str, status: int) -> LinkResult:
    return LinkResult(ok=False, headline=headline, detail=detail, status=status)


def _fail(headline: str, detail: str, status: int = 400) -> FlowStep:
    return FlowStep(result=_failure(headline, detail, status))
