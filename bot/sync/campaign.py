"""The creator's side of Patreon for one campaign: which campaign, its tiers, and a creator token that stays fresh.

One `CampaignService` per connected campaign (bot/sync/campaign_registry.py holds them): the `.env` campaign
(`source` env, tokens under `creator`, seeded from the configured pair) and each campaign connected through the
creator's OAuth (`source` oauth, tokens under `campaign:<id>`, no configured seed).

Refresh tokens are single-use, so every refreshed pair is stored before it is used. When Patreon refuses the
refresh token (someone rotated it in the portal, or signed in to the client as the creator), the bot alerts the
servers' log channels once and stops asking Patreon until the configured tokens change: repeated 4xx answers
get a client blocked at Patreon's edge.

Only an OAuth refusal counts (`invalid_grant`, or `invalid_client`; see `grant_refused`). Any other answer from
the token endpoint (a 403 from the edge, a 400 without that error, 5xx) is a failure for now: the current token
is used while it is valid and the refresh is tried again next time.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

from bot.domain.models import Tier, TokenPair
from bot.patreon.client import PatreonClient
from bot.patreon.errors import PatreonAuthError, PatreonError, PatreonUnavailable
from bot.store import CREATOR_SUBJECT, Store
from bot.store.campaigns import ENV_SOURCE, REVOKED, UNKNOWN_CAMPAIGN

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Refresh this long before expiry: real tokens have died well before their advertised lifetime.
REFRESH_MARGIN = timedelta(days=7)
#: Which configured pair the stored creator tokens descend from (a fingerprint, never the tokens).
CREATOR_SEED_FACT = "creator_token_seed"
#: Set when Patreon refused the creator refresh token: {"seed": fingerprint, "at": iso, "detail": text}.
CREATOR_REJECTED_FACT = "creator_token_rejected"


#: OAuth `error` codes with which the token endpoint refuses the grant itself (RFC 6749 §5.2).
REFUSED_GRANT = "invalid_grant"
#: Seconds a process waits for another one's creator-token refresh before it answers with the current token.
TOKEN_LOCK_WAIT = 30.0
REFUSED_CLIENT = "invalid_client"


def grant_refused(error: PatreonError, *, client_too: bool = True) -> bool:
    """Whether the token endpoint refused for good: `invalid_grant` (the refresh token is dead), or with
    `client_too` `invalid_client` (our client credentials). Anything else from it is transient."""
    codes = (REFUSED_GRANT, REFUSED_CLIENT) if client_too else (REFUSED_GRANT,)
    return isinstance(error, PatreonAuthError) and error.error in codes


class CampaignUnavailable(Exception):
    """The campaign could not be determined (no campaign on the creator token, or Patreon failed)."""


class CreatorTokenRejected(PatreonAuthError):
    """Patreon refused the creator's refresh token; nothing works until new tokens are configured."""


def token_fingerprint(tokens: TokenPair) -> str:
    return hashlib.sha256(f"{tokens.access_token}\0{tokens.refresh_token}".encode()).hexdigest()[:16]


class CampaignService:
    def __init__(
        self,
        client: PatreonClient,
        store: Store,
        seed_tokens: TokenPair | None,
        clock: Callable[[], datetime],
        campaign_id: str | None = None,
        *,
        on_token_rejected: Callable[[str], Awaitable[None]] | None,
        token_subject: str = CREATOR_SUBJECT,
        source: str = ENV_SOURCE,
        webhook_secret: str = "",
    ) -> None:
        """`on_token_rejected` is called once with a readable line when Patreon refuses the creator token (the
        wiring alerts the campaign's servers); None: the log line is all. `seed_tokens`: the configured pair of
        the `.env` campaign (None: a connected campaign, whose pair is stored, or no campaign at all).
        `webhook_secret`: the secret its deliveries are signed with ('' : none known)."""
        self.client = client
        self.store = store
        self._seed_tokens = seed_tokens
        self._seed = token_fingerprint(seed_tokens) if seed_tokens is not None else token_subject
        self._clock = clock
        self._campaign_id = campaign_id
        self._token_lock = asyncio.Lock()
        self._on_token_rejected = on_token_rejected
        self.token_subject = token_subject
        self.source = source
        self.webhook_secret = webhook_secret
        self._identified = False

    @property
    def from_env(self) -> bool:
        return self.source == ENV_SOURCE

    def fact_key(self, name: str) -> str:
        """This campaign's name for a service fact: the `.env` campaign keeps the names of the single-campaign
        days (so an upgraded database reads on), a connected one gets `<name>:<campaign id>`."""
        return name if self.from_env else f"{name}:{self._campaign_id}"

    def known_campaign_id(self) -> str | None:
        """The campaign id if known without asking Patreon (configured, stored, or found before)."""
        return self._campaign_id

    async def storage_key(self) -> str:
        """The campaign key of this campaign's stored rows, without asking Patreon: its id, or for the `.env`
        campaign whose id nobody has told yet, the key its migrated rows carry (`UNKNOWN_CAMPAIGN`)."""
        if self._campaign_id is None:
            stored = await self.store.get_fact("campaign_id")
            if isinstance(stored, str) and stored:
                self._campaign_id = stored
        if self._campaign_id is not None:
            await self._identify(self._campaign_id)
            return self._campaign_id
        return UNKNOWN_CAMPAIGN

    async def _identify(self, campaign_id: str) -> None:
        """Once per process, when the `.env` campaign's id is known: record it as a connected campaign (source
        env) and re-key the rows an older database kept without an id."""
        if self._identified or not self.from_env or self._seed_tokens is None:
            self._identified = True
            return
        self._identified = True
        if await self.store.get_campaign(campaign_id) is None:
            await self.store.save_campaign(campaign_id, token_subject=self.token_subject, source=ENV_SOURCE)
            log.info("campaign %s from the .env creator tokens recorded as connected (source env)", campaign_id)
        moved = await self.store.adopt_unknown_campaign(campaign_id)
        if moved:
            log.info("%d row(s) stored before the campaign id was known now belong to campaign %s", moved, campaign_id)

    async def creator_access_token(self, *, stale: str | None = None) -> str:
        """The creator token, refreshed first when close to expiry, or when `stale` (a token Patreon just
        answered 401 to) is still the current one.

        A refresh that fails because Patreon is down keeps using the current token while it is still valid.
        Raises `CreatorTokenRejected` without calling Patreon once the configured pair has been refused.
        """
        async with self._token_lock:
            rejected = await self.store.get_fact(self.fact_key(CREATOR_REJECTED_FACT))
            if isinstance(rejected, dict) and rejected.get("seed") == self._seed:
                raise CreatorTokenRejected(f"the creator token was refused at {rejected.get('at')}; set new tokens")
            tokens = await self._current_tokens()
            if not self._refresh_due(tokens, stale):
                return tokens.access_token
            # Refresh tokens are single use: two processes refreshing one pair would leave the loser with a dead
            # token, read as the creator's revocation. One process at a time refreshes it; the others wait, then
            # read the pair again (it is likely fresh by then).
            async with self.store.token_refresh(self.token_subject, wait=TOKEN_LOCK_WAIT) as held:
                if not held:
                    if tokens.expires_at > self._clock():
                        log.warning("another process is refreshing the creator token; using the current one")
                        return tokens.access_token
                    raise PatreonUnavailable("another process is refreshing the creator token; try again shortly")
                tokens = await self._current_tokens()
                if not self._refresh_due(tokens, stale):
                    return tokens.access_token
                return await self._refreshed(tokens, stale)

    def _refresh_due(self, tokens: TokenPair, stale: str | None) -> bool:
        """Close to expiry, or `stale` (the token Patreon just answered 401 to) is still the current one."""
        forced = stale is not None and stale == tokens.access_token
        return forced or tokens.expires_at - self._clock() < REFRESH_MARGIN

    async def _refreshed(self, tokens: TokenPair, stale: str | None) -> str:
        """Refresh the pair at Patreon and store the new one before it is used."""
        forced = stale is not None and stale == tokens.access_token
        why = "Patreon answered 401" if forced else f"it expires {tokens.expires_at.isoformat()}"
        log.info("refreshing the creator token: %s", why)
        try:
            fresh = await self.client.refresh(tokens.refresh_token)
        except PatreonError as error:
            if isinstance(error, PatreonAuthError) and grant_refused(error):
                await self._rejected(error)
                raise CreatorTokenRejected(str(error), status=error.status, error=error.error) from error
            if forced or tokens.expires_at <= self._clock():
                if isinstance(error, PatreonAuthError):  # not a refusal: callers must not treat it as one
                    raise PatreonUnavailable(
                        f"the creator token could not be refreshed for now: {error}", status=error.status
                    ) from error
                raise
            log.warning(
                "creator token refresh failed (%s); the current token is valid until %s",
                error,
                tokens.expires_at.isoformat(),
            )
            return tokens.access_token
        await self.store.save_tokens(self.token_subject, fresh)
        # Patreon: refreshing doesn't reset the token's rate limit, so the new token counts in the old one's window.
        self.client.budget.carry_token_window(tokens.access_token, fresh.access_token)
        return fresh.access_token

    async def with_creator_token(self, operation: Callable[[str], Awaitable[T]]) -> T:
        """Run `operation(token)`; on a 401 refresh the token once and run it again."""
        token = await self.creator_access_token()
        try:
            return await operation(token)
        except CreatorTokenRejected:
            raise
        except PatreonAuthError as error:
            if error.status != 401:
                raise
            return await operation(await self.creator_access_token(stale=token))

    async def _current_tokens(self) -> TokenPair:
        """The stored pair, unless the configured pair changed since it was stored (the admin's new tokens win).
        A connected campaign has only the stored pair."""
        if self._seed_tokens is None and self.from_env:
            # No creator tokens in .env: a pair an older configuration left in the store is not used.
            raise CampaignUnavailable("no campaign is connected; an admin connects one with `/patreon-admin connect`")
        stored = await self.store.get_tokens(self.token_subject)
        if self._seed_tokens is None:
            if stored is None:
                raise CampaignUnavailable(f"campaign {self._campaign_id} has no creator tokens; connect it again")
            return stored
        seed_fact = await self.store.get_fact(CREATOR_SEED_FACT)
        if stored is not None and seed_fact in (self._seed, None):
            if seed_fact is None:  # stored before seeds were tracked: keep the rotated pair
                await self.store.set_fact(CREATOR_SEED_FACT, self._seed)
            return stored
        if stored is not None:
            log.info("the configured creator tokens changed; using them instead of the stored pair")
        await self.store.save_tokens(self.token_subject, self._seed_tokens)
        await self.store.set_fact(CREATOR_SEED_FACT, self._seed)
        return self._seed_tokens

    async def _rejected(self, error: PatreonAuthError) -> None:
        at = self._clock().isoformat(timespec="seconds")
        await self.store.set_fact(
            self.fact_key(CREATOR_REJECTED_FACT), {"seed": self._seed, "at": at, "detail": str(error)}
        )
        if not self.from_env and self._campaign_id is not None:
            await self.store.set_campaign_state(self._campaign_id, REVOKED)
        log.error(
            "Patreon refused the creator refresh token of campaign %s (%s); stopping until it is connected again",
            self._campaign_id,
            error,
        )
        if self._on_token_rejected is not None:
            try:
                await self._on_token_rejected(
                    "⚠️ Patreon refused the creator token, so roles can't follow pledges any more. Copy a fresh "
                    "Creator's Access Token and Refresh Token from the Patreon client page into the bot's settings "
                    "and restart it."
                    if self.from_env
                    else "⚠️ Patreon refused this campaign's creator token (the creator may have removed the app), so "
                    "roles can't follow pledges any more; roles stay as they are. An admin reconnects with "
                    "`/patreon-admin connect`."
                )
            except Exception:
                log.exception("could not deliver the creator-token alert")

    async def campaign_id(self) -> str:
        if self._campaign_id is None:
            stored = await self.store.get_fact("campaign_id")
            if isinstance(stored, str):
                self._campaign_id = stored
        if self._campaign_id is None:
            try:
                campaigns = await self.with_creator_token(self.client.get_campaigns)
            except PatreonError as error:
                raise CampaignUnavailable(f"could not list the creator's campaigns: {error}") from error
            if not campaigns:
                raise CampaignUnavailable("the creator token owns no campaign; set PATREON_CAMPAIGN_ID")
            self._campaign_id = campaigns[0].id
            await self.store.set_fact("campaign_id", self._campaign_id)
            log.info("discovered campaign %s from the creator token", self._campaign_id)
        await self._identify(self._campaign_id)
        return self._campaign_id

    async def refresh_tiers(self) -> dict[str, Tier]:
        """Fetch the campaign's tiers into the store; on failure keep the stored ones."""
        campaign_id = await self.campaign_id()
        campaign = await self.with_creator_token(lambda token: self.client.get_campaign(token, campaign_id))
        await self.store.save_tiers(campaign_id, campaign.tiers)
        return {tier.id: tier for tier in campaign.tiers}
