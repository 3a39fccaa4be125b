"""Contract: a patron's own `/patreon refresh` in one process and the refresh's patron-token pass in another use one
single-use Patreon refresh token; on both engines the one that comes second reads the pair the first stored, so
neither spends a rotated token and the pass never drops the pair the command just saved."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from bot.accounts.self_refresh import SelfRefresh
from bot.domain.models import TokenPair
from bot.services import Services
from bot.store import patron_subject
from bot.sync.campaign import CampaignService
from tests.e2e.polling import wait_for
from tests.store_contract.test_refresh_exclusive import ANN, GUILD
from tests.store_contract.test_refresh_exclusive import world as world  # the two processes

TOKEN = "/api/oauth2/token"


def self_refresh(services: Services) -> SelfRefresh:
    async def campaign_of(guild_id: int) -> CampaignService | None:
        return await services.reconcile.campaign_for(guild_id)

    return SelfRefresh(
        services.patreon, services.store, campaign_of, services.reconcile, services.gateway.role_name, services.clock
    )


async def test_the_patrons_own_refresh_and_the_token_pass_never_drop_her_token(world):
    patreon, _gateway, (one, other) = world
    issued = patreon.issue_tokens("p-ann")
    subject = patron_subject("p-ann")
    expired = TokenPair(issued.access_token, issued.refresh_token, datetime.now(UTC) - timedelta(minutes=1))
    await one.store.save_tokens(subject, expired)
    await one.campaign.creator_access_token()
    before = patreon.count(TOKEN)
    patreon.delay_next(TOKEN, 0.5)  # the pass's refresh of her token is slow to arrive at Patreon
    refresh = asyncio.create_task(one.refresh.run("scheduled"))
    await wait_for(lambda: patreon.count(TOKEN) > before)  # the pass is refreshing her token now
    answer = await self_refresh(other).refresh(GUILD, ANN)  # she runs /patreon refresh meanwhile
    assert (await refresh).ok
    assert "Read your membership" in answer
    assert patreon.count(TOKEN) == before + 1, "one refresh of her single-use token, whose pair both use"
    for services in (one, other):
        stored = await services.store.get_tokens(subject)
        assert stored is not None, "the pass didn't drop the pair the command saved"
        assert stored.expires_at > datetime.now(UTC)
