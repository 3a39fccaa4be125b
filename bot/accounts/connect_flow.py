"""`/patreon-admin connect`: a server admin's browser, Discord's proof of who they are, the creator's Patreon OAuth.

button → `/connect/start` (a cookie binds this browser to the attempt) → Discord `identify` (must be the admin who ran
the command, in the browser the start page bound Discord's state to) → Patreon OAuth with CREATOR_SCOPES →
`/patreon/callback` (the one registered redirect URL; the state's salt says it is this flow) → the creator's campaigns
(a picker when several, a signed single-use form) → the token pair stored, the server bound, the tiers read, the webhook
registered through the API. The admin and the creator may be different people at one keyboard: the admin signs in to
Discord, then whoever signs in to Patreon approves (only the campaigns that Patreon account owns are offered). A
forwarded button fails at Discord's step, and so does the admin's own unopened Discord callback replayed in the
creator's browser after her start link; a Patreon redirect replayed in another browser fails at the cookie; each attempt
binds once. A creator's pair waiting for the picker lives only as long as its attempt (15 minutes):
`PendingConnectSweeper` forgets abandoned ones at start-up and every few minutes, and each new connect button does too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from urllib.parse import quote

from bot.accounts.connect_refusal import ConnectRefusal
from bot.accounts.connect_state import (
    ConnectState,
    is_connect_state,
    issue_connect_patreon_state,
    issue_connect_state,
    issue_pick,
    verify_connect_patreon_state,
    verify_connect_state,
    verify_pick,
)
from bot.accounts.link_flow import DiscordSignIn, DiscordSignInRefused, DiscordSignInUnavailable
from bot.accounts.linking import LinkResult
from bot.accounts.oauth_state import (
    StateError,
    holds_start_proof,
    issue_binding,
    issue_discord_state,
    new_browser_proof,
    read_binding,
    read_discord_state,
)
from bot.domain.models import Campaign, TokenPair
from bot.patreon.creator_api import CREATOR_SCOPES, MEMBER_TRIGGERS, CreatorClient
from bot.patreon.errors import PatreonAuthError, PatreonError
from bot.store import Store
from bot.store.campaigns import pending_connect_subject
from bot.sync.campaign import CampaignUnavailable
from bot.sync.campaign_registry import CampaignRegistry
from bot.sync.participation import Participation
from bot.sync.worker import BackgroundWorker

log = logging.getLogger(__name__)

CONNECT_START_PATH = "/connect/start"
CONNECT_PICK_PATH = "/connect/pick"
WEBHOOK_PATH = "/patreon/webhook"
_UNAVAILABLE = "Nothing was connected. Try again in a few minutes."
_AGAIN = "Nothing was connected. Run /patreon-admin connect again in Discord, and open it in the same browser."
#: How often abandoned pickers' creator pairs are looked for: a pair outlives its 15-minute attempt by at most this.
PENDING_SWEEP_EVERY = timedelta(minutes=5)


class ConnectRefused(Exception):
    """No connect button can be offered; the message is one friendly sentence."""


@dataclass(frozen=True)
class ConnectStep:
    """Send the browser on (`redirect`, maybe setting `cookie`), show `result`, or show the campaign picker."""

    redirect: str | None = None
    cookie: str | None = None
    result: LinkResult | None = None
    #: The picker: (campaign id, name) offered, and the signed form token.
    choices: tuple[tuple[str, str], ...] = ()
    pick_token: str | None = None
    guild_name: str = ""


@dataclass
class _Connected:
    campaign: Campaign
    webhook: str
    notes: list[str] = field(default_factory=list)


def webhook_uri(public_base_url: str, campaign_id: str) -> str:
    """Where Patreon delivers a connected campaign's events (bot/web/app.py serves it)."""
    return f"{public_base_url.rstrip('/')}{WEBHOOK_PATH}/{campaign_id}"


class ConnectFlow:
    def __init__(
        self,
        signing_key: bytes,
        public_base_url: str,
        discord: DiscordSignIn,
        patreon: CreatorClient,
        campaigns: CampaignRegistry,
        participation: Participation,
        store: Store,
        clock: Callable[[], datetime],
        after_connect: Callable[[int, str], Awaitable[object]] | None = None,
        *,
        connect_refusal: Callable[[int, int], Awaitable[ConnectRefusal | None]],
    ) -> None:
        """`after_connect(guild_id, campaign_id)` runs in the background once a server is bound (the wiring
        starts a refresh, so linked patrons get their roles without waiting for the schedule).
        `connect_refusal(guild_id, admin_id)` asks Discord again whether the admin who made the button may still
        connect (bot/guild_admin/connect_recheck.py): the button outlives a kick or a demotion by 15 minutes."""
        self._key = signing_key
        self._public = public_base_url.rstrip("/")
        self._discord = discord
        self._patreon = patreon
        self._campaigns = campaigns
        self._participation = participation
        self._store = store
        self._clock = clock
        self._after_connect = after_connect
        self._connect_refusal = connect_refusal
        self._background: set[asyncio.Task[object]] = set()
        #: Started with the web app (bot/web/connect_routes.py), stopped by `close`.
        self.sweeper = PendingConnectSweeper(self.forget_abandoned, clock)

    @property
    def cookie_secure(self) -> bool:
        return self._public.startswith("https://")

    async def close(self) -> None:
        """Stop the work started after a connect (the bot is shutting down; the scheduled refresh catches up)."""
        await self.sweeper.stop()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    def owns(self, state_token: str) -> bool:
        """Whether a Discord or Patreon callback's state is this flow's (the link flow takes every other)."""
        return bool(state_token) and is_connect_state(self._key, read_discord_state(state_token).start_token)

    def webhook_uri(self, campaign_id: str) -> str:
        return webhook_uri(self._public, campaign_id)

    async def button_url(self, guild_id: int, guild_name: str, admin_id: int) -> str:
        if not self._discord.configured:
            raise ConnectRefused(
                "Connecting isn't set up yet: the bot's owner must set DISCORD_CLIENT_ID and DISCORD_CLIENT_SECRET."
            )
        await self.forget_abandoned()
        token, _ = issue_connect_state(self._key, guild_id, admin_id, self._clock(), guild_name)
        log.info("connect button made for guild=%s by user=%s", guild_id, admin_id)
        return f"{self._public}{CONNECT_START_PATH}?state={quote(token)}"

    async def forget_abandoned(self) -> int:
        """Forget the creator pairs of pickers whose attempt ended unpicked; they are creator tokens."""
        forgotten = await self._store.forget_pending_connects(self._clock())
        if forgotten:
            log.info("connect: the creator tokens of %d abandoned campaign picker(s) forgotten", forgotten)
        return forgotten

    async def start(self, state_token: str, cookie: str | None) -> ConnectStep:
        try:
            state = verify_connect_state(self._key, state_token, self._clock())
        except StateError as error:
            return _fail("This connect link can't be used.", str(error))
        known = read_binding(self._key, cookie)
        value, binding = issue_binding(self._key, state.nonce, known.browser_id if known else None)
        discord_state = issue_discord_state(self._key, state_token, binding)  # Discord's step: this browser only
        return ConnectStep(redirect=self._discord.authorize_url(discord_state), cookie=value)

    async def discord_callback(self, params: Mapping[str, str], cookie: str | None) -> ConnectStep:
        """Only the admin who ran the command goes on to Patreon, in the browser that opened the start page (Eve's
        own unopened callback replayed after her start link in the creator's browser fails here)."""
        step = read_discord_state(params.get("state", ""))
        try:
            state = verify_connect_state(self._key, step.start_token, self._clock())
        except StateError as error:
            return _fail("This connect link can't be used.", str(error))
        started_here = holds_start_proof(self._key, step, read_binding(self._key, cookie))
        if not self._same_browser(state, cookie) or not started_here:
            log.warning("connect for guild=%s refused: Discord callback in another browser", state.guild_id)
            return _fail("This sign-in was started in another browser.", _AGAIN, 403)
        if params.get("error"):
            return _fail("You didn't allow Discord sign-in.", "Nothing was connected.", 200)
        try:
            user_id = await self._discord.identify(params.get("code", ""))
        except DiscordSignInRefused:
            return _fail("Discord did not accept this sign-in.", _AGAIN)
        except DiscordSignInUnavailable:
            return _fail("Discord isn't answering right now.", "Nothing was changed. Try again in a few minutes.", 502)
        if user_id != state.admin_id:
            await self._store.consume_state(state.nonce, state.expires_at)  # a forwarded button is burnt
            log.warning("connect refused: button of user=%s opened by Discord user=%s", state.admin_id, user_id)
            return _fail(
                "This connect link was made for another Discord account.",
                "Nothing was connected. The server's admin runs /patreon-admin connect and opens it themselves.",
                403,
            )
        proof = new_browser_proof()
        binding = read_binding(self._key, cookie)
        value, _ = issue_binding(self._key, proof, binding.browser_id if binding else None)
        patreon_state = issue_connect_patreon_state(self._key, replace(state, browser_proof=proof))
        return ConnectStep(redirect=self._patreon.authorize_url(patreon_state, CREATOR_SCOPES), cookie=value)

    async def patreon_callback(self, params: Mapping[str, str], cookie: str | None) -> ConnectStep:
        try:
            state = verify_connect_patreon_state(self._key, params.get("state", ""), self._clock())
        except StateError as error:
            return _fail("This connect link can't be used.", str(error))
        if not self._same_browser(state, cookie, proof=True):
            # Used up, so the URL pasted back to whoever started it can't bind there (review F5).
            await self._store.consume_state(state.nonce, state.expires_at)
            log.warning("connect for guild=%s refused: Patreon callback without its cookie", state.guild_id)
            return _fail("This sign-in was started in another browser.", _AGAIN, 403)
        if not await self._store.consume_state(state.nonce, state.expires_at):
            return _fail("This connect link was already used.", "Run /patreon-admin connect again in Discord.")
        if params.get("error"):
            return _fail("The creator didn't approve on Patreon.", "Nothing was connected.", 200)
        if (refusal := await self._connect_refusal(state.guild_id, state.admin_id)) is not None:
            return self._refused(state, refusal)  # before the creator's code is exchanged
        try:
            tokens = await self._patreon.exchange_code(params.get("code", ""))
            owned = await self._patreon.get_campaigns(tokens.access_token)
        except PatreonAuthError as error:
            log.warning("connect for guild=%s: Patreon refused the code: %s", state.guild_id, error)
            return _fail("Patreon did not accept this approval.", _AGAIN)
        except PatreonError as error:
            log.warning("connect for guild=%s: Patreon unavailable: %s", state.guild_id, error)
            return _fail("Patreon isn't answering right now.", _UNAVAILABLE, 502)
        if not owned:
            return _fail(
                "This Patreon account has no campaign.",
                "Nothing was connected. The creator of the campaign signs in to Patreon at this step.",
                409,
            )
        if len(owned) == 1:
            return await self._connect(state, tokens, owned[0])
        await self._store.save_tokens(pending_connect_subject(state.nonce, state.expires_at), tokens)
        choices = tuple((campaign.id, campaign.name or campaign.vanity or campaign.id) for campaign in owned)
        pick = issue_pick(self._key, state, tuple(campaign.id for campaign in owned))
        return ConnectStep(choices=choices, pick_token=pick, guild_name=state.guild_name)

    async def pick(self, pick_token: str, campaign_id: str, cookie: str | None) -> ConnectStep:
        """The picker's POST: one of the offered campaigns, once, from the browser that started."""
        try:
            pick = verify_pick(self._key, pick_token, self._clock())
        except StateError as error:
            return _fail("This choice can't be used.", str(error))
        state = pick.state
        if not self._same_browser(state, cookie, proof=True):
            return _fail("This choice was started in another browser.", _AGAIN, 403)
        if campaign_id not in pick.campaign_ids:
            return _fail("That campaign wasn't one of the choices.", "Nothing was connected.", 400)
        if (refusal := await self._connect_refusal(state.guild_id, state.admin_id)) is not None:
            if not refusal.retry:  # Discord's own answer: the creator's pending pair goes at once
                await self._store.consume_state(f"pick:{state.nonce}", state.expires_at)
                await self._store.delete_tokens(pending_connect_subject(state.nonce, state.expires_at))
            return self._refused(state, refusal)
        if not await self._store.consume_state(f"pick:{state.nonce}", state.expires_at):
            return _fail("This choice was already made.", "Run /patreon-admin connect again in Discord.")
        subject = pending_connect_subject(state.nonce, state.expires_at)
        tokens = await self._store.get_tokens(subject)
        await self._store.delete_tokens(subject)
        if tokens is None:
            return _fail("This choice has expired.", _AGAIN)
        try:
            owned = {campaign.id: campaign for campaign in await self._patreon.get_campaigns(tokens.access_token)}
        except PatreonError:
            return _fail("Patreon isn't answering right now.", _UNAVAILABLE, 502)
        if campaign_id not in owned:
            return _fail("That campaign is no longer this Patreon account's.", "Nothing was connected.", 409)
        return await self._connect(state, tokens, owned[campaign_id])

    async def _connect(self, state: ConnectState, tokens: TokenPair, campaign: Campaign) -> ConnectStep:
        conflict = await self._conflict(state.guild_id, campaign.id)
        if conflict is not None:
            return _fail("This server already follows another campaign.", conflict, 409)
        done = await self._bind(state, tokens, campaign)
        server = state.guild_name or "This server"
        name = campaign.name or campaign.vanity or campaign.id
        detail = " ".join([f"{server} now follows {name} (campaign {campaign.id}).", done.webhook, *done.notes])
        return ConnectStep(result=LinkResult(True, f"{server} is connected to {name}.", detail))

    def _refused(self, state: ConnectState, refusal: ConnectRefusal) -> ConnectStep:
        """The admin who made the button, asked about again: kicked, demoted, or below a role mapped since; or
        Discord didn't answer, which decides nothing (503, the attempt kept)."""
        if refusal.retry:
            log.warning("connect for guild=%s: user=%s could not be checked now; kept", state.guild_id, state.admin_id)
            return _fail("Discord isn't answering right now.", refusal.sentence, 503)
        log.warning("connect for guild=%s refused at the callback: user=%s may not now", state.guild_id, state.admin_id)
        return _fail("You can't connect this server any more.", refusal.sentence, 403)

    async def _conflict(self, guild_id: int, campaign_id: str) -> str | None:
        """Why this server may not be bound to `campaign_id` now: it follows another campaign (re-binding would
        take back that campaign's roles at the next reconcile, so the admin disconnects on purpose first)."""
        binding = await self._store.guild_binding(guild_id)
        if binding is not None and binding.campaign_id != campaign_id:
            return (
                f"It follows campaign {binding.campaign_id}; nothing was changed. To follow another campaign, run "
                "/patreon-admin disconnect first (the roles the bot gave stay until you take them back)."
            )
        if binding is None:
            current = await self._participation.campaign_for(guild_id)
            if current is not None and current.known_campaign_id() not in (None, campaign_id):
                return (
                    f"It follows campaign {current.known_campaign_id()} from the bot's .env settings; nothing was "
                    "changed. The bot's owner takes this server out of that campaign first (ALLOWED_GUILD_IDS, or "
                    "the .env tokens)."
                )
        return None

    async def _bind(self, state: ConnectState, tokens: TokenPair, campaign: Campaign) -> _Connected:
        service = await self._campaigns.add(campaign.id, tokens, None)
        await self._campaigns.bind_guild(state.guild_id, campaign.id, state.admin_id)
        done = _Connected(campaign, await self._register_webhook(campaign.id, tokens.access_token))
        try:
            tiers = await service.refresh_tiers()
            done.notes.append(f"Its {len(tiers)} tier(s) are ready to map with /patreon-admin map.")
        except (PatreonError, CampaignUnavailable) as error:
            log.warning("connect: tiers of campaign %s not read yet: %s", campaign.id, error)
            done.notes.append("Its tiers couldn't be read yet; /patreon-admin tiers tries again.")
        env = self._campaigns.env
        if env is not None and env.known_campaign_id() == campaign.id:
            done.notes.append("This campaign is also set in the bot's .env: its owner can now remove those tokens.")
        log.info("guild=%s connected to campaign %s by user=%s", state.guild_id, campaign.id, state.admin_id)
        if self._after_connect is not None:
            task: asyncio.Task[object] = asyncio.create_task(_run(self._after_connect(state.guild_id, campaign.id)))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return done

    async def _register_webhook(self, campaign_id: str, access_token: str) -> str:
        """Patreon's webhook for this campaign's URL: reused when Patreon still has it (and its secret), else
        made; never a second one for the same URL."""
        uri = self.webhook_uri(campaign_id)
        try:
            existing = await self._patreon.webhook_for_uri(access_token, uri)
            if existing is not None and existing.secret:
                if existing.paused or set(MEMBER_TRIGGERS) - set(existing.triggers):
                    existing = await self._patreon.update_webhook(
                        access_token, existing.id, triggers=MEMBER_TRIGGERS, paused=False
                    )
                await self._campaigns.set_webhook(campaign_id, existing.id, existing.secret)
                return f"Its webhook at {uri} was already registered and is kept."
            if existing is not None:
                await self._patreon.forget_webhook(access_token, existing.id)
            created = await self._patreon.create_webhook(access_token, campaign_id, uri, MEMBER_TRIGGERS)
        except PatreonError as error:
            log.warning("connect: webhook of campaign %s not registered: %s", campaign_id, error)
            return (
                "Its webhook couldn't be registered just now, so pledges reach roles at each refresh only; run "
                "/patreon-admin webhook repair."
            )
        await self._campaigns.set_webhook(campaign_id, created.id, created.secret)
        return f"Its webhook is registered at {uri}."

    def _same_browser(self, state: ConnectState, cookie: str | None, *, proof: bool = False) -> bool:
        """The cookie names this attempt, or (after Discord's step, `proof`) holds its browser proof."""
        binding = read_binding(self._key, cookie)
        expected = state.browser_proof if proof else state.nonce
        return binding is not None and bool(expected) and binding.nonce == expected


async def _run(work: Awaitable[object]) -> object:
    try:
        return await work
    except Exception:
        log.exception("the work after a connect failed; the scheduled refresh catches up")
        return None


def _fail(headline: str, detail: str, status: int = 400) -> ConnectStep:
    return ConnectStep(result=LinkResult(False, headline, detail, status=status))


class PendingConnectSweeper(BackgroundWorker):
    """Runs `ConnectFlow.forget_abandoned` at start and then every `PENDING_SWEEP_EVERY` of the clock."""

    name = "abandoned connect pickers"

    def __init__(self, sweep: Callable[[], Awaitable[int]], clock: Callable[[], datetime]) -> None:
        super().__init__(clock)
        self._sweep = sweep
        self._next: datetime | None = None

    async def work(self) -> bool:
        now = self.clock()
        if self._next is not None and now < self._next:
            return False
        self._next = now + PENDING_SWEEP_EVERY
        await self._sweep()
        return False

    async def next_due(self) -> datetime | None:
        return self._next

    async def busy(self) -> bool:
        return False
