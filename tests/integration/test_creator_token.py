"""The creator token: refreshed before expiry, and each new single-use pair stored before it is used."""

from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from bot.domain.models import TokenPair
from bot.patreon.client import PatreonClient
from bot.store import CREATOR_SUBJECT, Store
from bot.sync.campaign import CampaignService
from fakes.patreon import FakePatreon


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def setup(tmp_path):
    fake = FakePatreon(client_id="c", client_secret="s", redirect_uris=("http://127.0.0.1/patreon/callback",))
    await fake.start()
    store = await Store.open(tmp_path / "bot.sqlite3")
    session = aiohttp.ClientSession()
    client = PatreonClient(
        session, base_url=fake.base_url, client_id="c", client_secret="s",
        redirect_uri="http://127.0.0.1/patreon/callback", user_agent="test", retry_base_delay=0.01,
    )  # fmt: skip
    try:
        yield fake, store, client
    finally:
        await session.close()
        await store.close()
        await fake.close()


def service(fake, store, client, clock, expires_in: timedelta) -> CampaignService:
    seed = TokenPair(fake.creator_access_token, fake.creator_refresh_token, clock() + expires_in)
    return CampaignService(client, store, seed, clock, on_token_rejected=None)


def token_calls(fake) -> int:
    return fake.count("/api/oauth2/token")


async def test_a_token_near_expiry_is_refreshed_and_the_new_pair_stored(setup):
    fake, store, client = setup
    clock = Clock()
    campaign = service(fake, store, client, clock, expires_in=timedelta(days=1))
    token = await campaign.creator_access_token()
    assert token != fake.creator_access_token
    stored = await store.get_tokens(CREATOR_SUBJECT)
    assert stored is not None and stored.access_token == token
    assert stored.refresh_token != fake.creator_refresh_token, "the single-use refresh token was replaced"
    assert token_calls(fake) == 1
    assert await campaign.creator_access_token() == token
    assert token_calls(fake) == 1, "a fresh token is not refreshed again"
    assert await client.get_campaigns(token), "the new token works"


async def test_after_a_restart_the_stored_pair_is_used_and_refreshes_again(setup):
    fake, store, client = setup
    clock = Clock()
    first = await service(fake, store, client, clock, timedelta(days=1)).creator_access_token()
    restarted = service(fake, store, client, clock, timedelta(days=1))  # same configured (now used-up) pair
    assert await restarted.creator_access_token() == first
    clock.now += timedelta(days=40)  # the stored pair is now close to expiry
    second = await restarted.creator_access_token()
    assert second != first and token_calls(fake) == 2
    assert (await store.get_tokens(CREATOR_SUBJECT)).access_token == second


async def test_a_token_far_from_expiry_is_not_refreshed(setup):
    fake, store, client = setup
    clock = Clock()
    campaign = service(fake, store, client, clock, expires_in=timedelta(days=30))
    assert await campaign.creator_access_token() == fake.creator_access_token
    assert token_calls(fake) == 0
