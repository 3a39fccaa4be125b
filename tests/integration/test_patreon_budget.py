"""The client-wide Patreon budget over loopback, against the fake Patreon's real limit (100 requests per 2 s).

Every campaign's listing and every look-up share one client, so: a webhook's look-up during 50 campaigns'
listings goes first; no campaign's listing waits more than a round of the others; a 429 pauses every caller for
its Retry-After; and nothing ever reaches the fake past its limit (counted at the fake).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bot.patreon import PatreonClient
from bot.patreon.budget import Priority, RequestBudget
from fakes.patreon import CREATOR_SCOPES, CampaignState, FakePatreon
from fakes.patreon.rate_limit import ClientRateLimit
from tests.e2e.polling import wait_for

REDIRECT = "http://127.0.0.1:8080/patreon/callback"
USER_AGENT = "patreon-role-sync-tests/1.0 (+https://example.test)"
MEMBERS = "/api/oauth2/v2/campaigns/{}/members"


@pytest.fixture
async def fake() -> AsyncIterator[FakePatreon]:
    server = FakePatreon(client_id="fake-client", client_secret="fake-secret", redirect_uris=(REDIRECT,))
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


def make_client(session: aiohttp.ClientSession, fake: FakePatreon, **overrides: Any) -> PatreonClient:
    options: dict[str, Any] = {
        "base_url": fake.base_url,
        "client_id": "fake-client",
        "client_secret": "fake-secret",
        "redirect_uri": REDIRECT,
        "user_agent": USER_AGENT,
        "retry_base_delay": 0.01,
    }
    options.update(overrides)
    return PatreonClient(session, **options)


def add_campaigns(fake: FakePatreon, count: int, members: int) -> list[tuple[CampaignState, str]]:
    """`count` creators with a campaign of `members` patrons each; (campaign, its creator's access token)."""
    made = []
    for index in range(count):
        state = fake.add_creator(f"creator{index}", f"Creator {index}", str(8_000_000 + index))
        state.add_tier(f"t{index}", "Gold", 500)
        state.seed_members(members, [f"t{index}"], rng_seed=index + 1)  # member ids differ across campaigns
        made.append((state, fake.issue_tokens(state.creator.id, CREATOR_SCOPES).access_token))
    return made


async def walk(client: PatreonClient, token: str, campaign_id: str, page_size: int) -> int:
    return sum([len(page.members) async for page in client.iter_member_pages(token, campaign_id, page_size)])


def a_member_id(state: CampaignState) -> str:
    """One live member of this campaign (what a webhook for it names)."""
    return next(m.id for m in state.members.values() if not m.deleted)


def listing_calls(fake: FakePatreon) -> list[str]:
    """The campaign id of every members-listing request the fake received, in arrival order."""
    return [path.split("/")[5] for _m, path, _q in fake.calls if path.endswith("/members")]


async def test_the_fake_refuses_the_101st_request_in_two_seconds_as_patreon_does(fake, session) -> None:
    # The client's window alone: the token's minute would refuse the 101st of one token too, with its own (longer)
    # Retry-After (tests/integration/test_fake_patreon_token_limit.py).
    fake.rate_limit = ClientRateLimit(per_token=None)
    url = f"{fake.api_base}/campaigns"
    headers = {"Authorization": f"Bearer {fake.creator_access_token}", "User-Agent": USER_AGENT}

    async def one() -> tuple[int, str | None, Any]:
        async with session.get(url, headers=headers) as response:
            return response.status, response.headers.get("Retry-After"), await response.json()

    answers = await asyncio.gather(*(one() for _ in range(101)))
    refused = [answer for answer in answers if answer[0] == 429]
    assert len(refused) == 1 and fake.http_429 == 1 and fake.rate_limit is not None
    _status, retry_after, body = refused[0]
    assert retry_after in ("1", "2")
    error = body["errors"][0]
    assert (error["code_name"], error["status"], error["retry_after_seconds"]) == ("RequestThrottled", "429", 2)
    assert fake.rate_limit.refused == 1


async def test_a_webhook_lookup_during_fifty_campaigns_listings_goes_first(fake, session) -> None:
    campaigns = add_campaigns(fake, 50, 6)
    client = make_client(session, fake)
    listings = [
        asyncio.create_task(walk(client, token, state.campaign_id, page_size=2)) for state, token in campaigns
    ]  # 150 pages: more than the budget lets through in one window
    await wait_for(lambda: client.budget.waiting(Priority.REFRESH) > 0, timeout=10)
    state, token = campaigns[37]
    member_id = a_member_id(state)
    started = time.monotonic()
    snapshot = await client.get_member(token, member_id)
    took = time.monotonic() - started
    still_waiting = client.budget.waiting(Priority.REFRESH)
    assert snapshot.member_id == member_id
    assert still_waiting > 0  # it went before pages that were asked for earlier
    assert took < 0.5 and client.budget.figures.longest_wait[Priority.LOOKUP] < 0.1
    assert await asyncio.gather(*listings) == [6] * 50
    assert fake.http_429 == 0
    assert fake.rate_limit is not None and fake.rate_limit.peak <= 100
    assert client.budget.figures.peak_in_window <= 100


async def test_no_campaign_starves_behind_a_long_listing(fake, session) -> None:
    campaigns = add_campaigns(fake, 10, 4)
    big = fake.add_creator("big", "Big", "8999999")
    big.add_tier("tb", "Gold", 500)
    big.seed_members(60, ["tb"], rng_seed=99)
    big_token = fake.issue_tokens("big", CREATOR_SCOPES).access_token
    client = make_client(session, fake, budget=RequestBudget(limit=4, window_seconds=0.2))
    first = asyncio.create_task(walk(client, big_token, big.campaign_id, page_size=2))  # 30 pages, asked first
    await wait_for(lambda: len(listing_calls(fake)) >= 2)
    start = len(listing_calls(fake))
    others = [asyncio.create_task(walk(client, t, s.campaign_id, page_size=2)) for s, t in campaigns]
    assert await asyncio.gather(first, *others) == [60] + [4] * 10
    order = listing_calls(fake)
    turns = len(campaigns) + 1
    for state, _token in campaigns:
        pages = [index for index, campaign_id in enumerate(order) if campaign_id == state.campaign_id]
        assert len(pages) == 2
        gaps = [pages[0] - start] + [b - a for a, b in itertools.pairwise(pages)]
        assert max(gaps) <= turns, (state.campaign_id, pages)
    small_done = max(index for index, c in enumerate(order) if c != big.campaign_id)
    assert small_done < len(order) - 10  # the small campaigns finished long before the big one
    assert fake.http_429 == 0


async def test_a_429_makes_every_caller_wait_for_its_retry_after(fake, session) -> None:
    campaigns = add_campaigns(fake, 3, 4)
    client = make_client(session, fake)
    (first, first_token), (second, second_token), (third, third_token) = campaigns
    fake.rate_limit_next(rf"/campaigns/{first.campaign_id}/members$", retry_after=1)
    listing = asyncio.create_task(walk(client, first_token, first.campaign_id, page_size=2))
    await wait_for(lambda: client.budget.paused_for > 0)
    paused_at, pause = time.monotonic(), client.budget.paused_for
    calls_before = len(fake.calls)

    async def lookup(state: CampaignState, token: str) -> float:
        await client.get_member(token, a_member_id(state))
        return time.monotonic() - paused_at

    waits = await asyncio.gather(lookup(second, second_token), lookup(third, third_token))
    assert min(waits) >= pause - 0.05  # another campaign's look-up, too, waited out the pause
    assert await listing == 4
    assert fake.http_429 == 1 and client.budget.figures.pauses == 1
    assert len(fake.calls) - calls_before >= 2  # nothing was sent while paused; everything after


async def test_a_pause_longer_than_the_client_waits_fails_a_lookup_at_once(fake, session) -> None:
    client = make_client(session, fake, max_retry_wait=5.0)
    client.budget.pause(30)
    before = len(fake.calls)
    with pytest.raises(Exception) as failure:
        await client.get_campaigns(fake.creator_access_token)
    assert getattr(failure.value, "status", None) == 429
    assert len(fake.calls) == before  # nothing sent into Patreon's refusal


async def test_each_token_keeps_to_its_own_window_and_never_holds_another_tokens_lookups(fake, session) -> None:
    # Patreon's 100 a minute per token, scaled to 5 a second for speed; the fake refuses the 6th like Patreon would.
    fake.rate_limit = ClientRateLimit(per_token=(5, 1.0))
    budget = RequestBudget(token_limit=5, token_window_seconds=1.0)
    (a, a_token), (b, b_token) = add_campaigns(fake, 2, 3)
    done: dict[str, list[float]] = {"a": [], "b": []}

    async def lookup(name: str, state: CampaignState, token: str) -> int:
        headers = {"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT}
        async with (
            budget.slot(Priority.LOOKUP, token=token),
            session.get(f"{fake.api_base}/members/{a_member_id(state)}", headers=headers) as response,
        ):
            status = response.status
        done[name].append(time.monotonic())
        return status

    started = time.monotonic()
    a_calls = [asyncio.create_task(lookup("a", a, a_token)) for _ in range(12)]  # three of A's windows
    await asyncio.sleep(0)  # A's twelve are queued first
    b_calls = [asyncio.create_task(lookup("b", b, b_token)) for _ in range(3)]
    assert await asyncio.gather(*a_calls, *b_calls) == [200] * 15
    assert fake.http_429 == 0, "no token went past its own window"
    assert max(done["b"]) - started < 0.5, "B's token had room: its look-ups went past A's spent window"
    assert max(done["a"]) - started >= 2.0, "A's twelfth waited for A's third window"
    assert budget.figures.peak_per_token == 5 and budget.figures.token_waits == 7
    assert a_token not in repr(budget) and a_token not in repr(budget.__dict__), "only a hash of a token is kept"


async def test_a_campaign_whose_token_is_spent_lets_the_other_campaigns_pages_go() -> None:
    budget = RequestBudget(token_limit=4, token_window_seconds=0.3)  # refresh work may hold 3 of a token's 4
    order: list[str] = []

    async def page(campaign: str) -> None:
        async with budget.slot(Priority.REFRESH, campaign, token=f"token-{campaign}"):
            order.append(campaign)

    a_pages = [asyncio.create_task(page("a")) for _ in range(4)]
    await asyncio.sleep(0)  # A's four are asked for first; its token has room for three pages
    b_pages = [asyncio.create_task(page("b")) for _ in range(2)]
    await asyncio.gather(*a_pages, *b_pages)
    assert order == ["a", "a", "a", "b", "b", "a"], "B's pages went while A's token waited; then A's went on"


async def test_a_webhooks_lookup_finds_room_in_the_token_its_campaigns_listing_is_using() -> None:
    budget = RequestBudget(token_limit=5, token_window_seconds=30.0)  # refresh work may hold 4 of the token's 5
    pages_done: list[int] = []

    async def page(number: int) -> None:
        async with budget.slot(Priority.REFRESH, "a", token="token-a"):
            pages_done.append(number)

    pages = [asyncio.create_task(page(n)) for n in range(10)]
    await wait_for(lambda: len(pages_done) == 4)
    started = time.monotonic()
    async with budget.slot(Priority.LOOKUP, token="token-a"):
        waited = time.monotonic() - started
    assert waited < 0.1, "the listing left the token's last slot to its look-ups"
    assert len(pages_done) == 4 and budget.waiting(Priority.REFRESH) == 6, "the pages wait for the token's window"
    for task in pages:
        task.cancel()
    await asyncio.gather(*pages, return_exceptions=True)


async def test_without_a_token_limit_only_the_clients_window_counts() -> None:
    budget = RequestBudget(limit=10, token_limit=None)
    async with contextlib.AsyncExitStack() as held:
        for _ in range(8):  # the refresh lane's share of 10, all at once, on one token
            await held.enter_async_context(budget.slot(Priority.REFRESH, "a", token="token-a"))
        assert budget.figures.peak_per_token == 0 and "no limit" in repr(budget)


async def test_the_client_keeps_each_token_to_its_window_at_the_fake(fake, session) -> None:
    """The client names each request's bearer token to the budget, so a burst of look-ups with one creator token
    stays inside that token's window at a fake that enforces it (Patreon documents a per-token limit): none 429."""
    fake.rate_limit = ClientRateLimit(per_token=(5, 0.5))
    ((state, token),) = add_campaigns(fake, 1, 3)
    client = make_client(session, fake, budget=RequestBudget(token_limit=5, token_window_seconds=0.5))
    member_id = a_member_id(state)
    snapshots = await asyncio.gather(*(client.get_member(token, member_id) for _ in range(12)))
    assert len(snapshots) == 12 and fake.rate_limit.refused == 0
