"""The creator's side of Patreon: which campaign, its tiers, and a creator token that stays fresh.

Refresh tokens are single-use, so every refreshed pair is stored before it is used.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from bot.models import Tier, TokenPair
from bot.patreon.client import PatreonClient
from bot.patreon.errors import PatreonError
from bot.store import CREATOR_SUBJECT, Store

log = logging.getLogger(__name__)

#: Refresh this long before expiry: real tokens have died well before their advertised lifetime.
REFRESH_MARGIN = timedelta(days=7)


class CampaignUnavailable(Exception):
    """The campaign could not be determined (no campaign on the creator token, or Patreon failed)."""


class CampaignService:
    def __init__(
        self,
        client: PatreonClient,
        store: Store,
        seed_tokens: TokenPair,
        clock: Callable[[], datetime],
        campaign_id: str | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self._seed_tokens = seed_tokens
        self._clock = clock
        self._campaign_id = campaign_id
        self._token_lock = asyncio.Lock()

    async def creator_access_token(self) -> str:
        """The creator token, refreshed first when it is close to expiry."""
        async with self._token_lock:
            tokens = await self.store.get_tokens(CREATOR_SUBJECT)
            if tokens is None:
                tokens = self._seed_tokens
                await self.store.save_tokens(CREATOR_SUBJECT, tokens)
            if tokens.expires_at - self._clock() < REFRESH_MARGIN:
                log.info("creator token expires %s; refreshing", tokens.expires_at.isoformat())
                tokens = await self.client.refresh(tokens.refresh_token)
                await self.store.save_tokens(CREATOR_SUBJECT, tokens)
            return tokens.access_token

    async def campaign_id(self) -> str:
        if self._campaign_id is None:
            stored = await self.store.get_fact("campaign_id")
            if isinstance(stored, str):
                self._campaign_id = stored
        if self._campaign_id is None:
            try:
                campaigns = await self.client.get_campaigns(await self.creator_access_token())
            except PatreonError as error:
                raise CampaignUnavailable(f"could not list the creator's campaigns: {error}") from error
            if not campaigns:
                raise CampaignUnavailable("the creator token owns no campaign; set PATREON_CAMPAIGN_ID")
            self._campaign_id = campaigns[0].id
            await self.store.set_fact("campaign_id", self._campaign_id)
            log.info("discovered campaign %s from the creator token", self._campaign_id)
        return self._campaign_id

    async def refresh_tiers(self) -> dict[str, Tier]:
        """Fetch the campaign's tiers into the store; on failure keep the stored ones."""
        campaign_id = await self.campaign_id()
        campaign = await self.client.get_campaign(await self.creator_access_token(), campaign_id)
        await self.store.save_tiers(campaign_id, campaign.tiers)
        return {tier.id: tier for tier in campaign.tiers}
