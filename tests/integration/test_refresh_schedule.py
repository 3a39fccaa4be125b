"""Refreshing many campaigns on one budget (issue 10, item 6): which goes first, side by side, and a webhook's
look-up during the listings. Real SQLite, real HTTP to the fake Patreon on its real limit, real signatures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.guild_settings import GuildSettings
from bot.domain.models import TokenPair
from bot.patreon.budget import Priority
from bot.store import LAST_REFRESH
from fakes.patreon import CREATOR_SCOPES, CampaignState
from fakes.sync_harness import GUILD, SyncHarness
from tests.e2e.polling import wait_for

CAMPAIGN_A = "7654321"
TIER_A, ROLE_A = "2001", 701
CONNECTED = ("8100001", "8100002", "8100003")
GUILD_BASE = 610000000000000100
ROLE_BASE = 800
DISCORD_BASE = 5000


def guild_of(index: int) -> int:
    return GUILD_BASE + index


@pytest.fixture
async def many(tmp_path) -> AsyncIterator[tuple[SyncHarness, list[CampaignState]]]:
    """The `.env` campaign A (one patron, GUILD) and three connected campaigns, each followed by its own server
    with one linked patron whose tier role is mapped there."""
    h = await SyncHarness(tmp_path / "bot.sqlite3", CAMPAIGN_A).start()
    try:
        store, services = h.store, h.services
        assert store is not None and services is not None
        h.patreon.add_tier(TIER_A, "Gold", 500)
        h.patreon.add_user("p-ann", "Ann")
        h.patreon.set_membership("p-ann", "active_patron", tier_ids=[TIER_A])
        await store.map_tier_role(GUILD, TIER_A, ROLE_A)
        h.link_member(DISCORD_BASE)
        await store.save_link(DISCORD_BASE, "p-ann", None, "oauth")
        states = []
        for index, campaign_id in enumerate(CONNECTED, start=1):
            state = h.patreon.add_creator(f"creator-{index}", f"Creator {index}", campaign_id)
            tier = f"t{index}"
            state.add_tier(tier, "Gold", 500)
            state.add_user(f"p-{index}", f"Patron {index}", None)
            state.set_membership(f"p-{index}", patron_status="active_patron", tier_ids=[tier])
            token = h.patreon.issue_tokens(state.creator.id, CREATOR_SCOPES)
            pair = TokenPair(token.access_token, token.refresh_token, datetime.now(UTC) + timedelta(days=30))
            h.gateway.add_guild(guild_of(index))
            await store.save_settings(GuildSettings(guild_id=guild_of(index), enabled=True))
            await services.campaigns.add(campaign_id, pair, f"secret-{index}")
            await services.campaigns.bind_guild(guild_of(index), campaign_id, by=4242)
            await store.map_tier_role(guild_of(index), tier, ROLE_BASE + index)
            h.gateway.guilds[guild_of(index)].members[DISCORD_BASE + index] = set()
            await store.save_link(DISCORD_BASE + index, f"p-{index}", None, "oauth")
            states.append(state)
        yield h, states
    finally:
        await h.close()


def listing_order(h: SyncHarness, since: int = 0) -> list[str]:
    """The campaign of each first listing page the fake received after call `since`, in arrival order."""
    return [
        path.split("/")[5]
        for _m, path, query in h.patreon.calls[since:]
        if path.endswith("/members") and "page[cursor]" not in query
    ]


def every_role_given(h: SyncHarness) -> bool:
    return h.guild.members[DISCORD_BASE] == {ROLE_A} and all(
        h.gateway.guilds[guild_of(i)].members[DISCORD_BASE + i] == {ROLE_BASE + i} for i in range(1, 4)
    )


async def test_a_campaign_whose_refresh_failed_goes_first_at_the_next_one(many) -> None:
    h, _states = many
    assert h.services is not None
    failing = CONNECTED[2]
    h.patreon.fail_next(rf"/campaigns/{failing}/members$", status=503, count=4)  # past the client's 3 retries
    first = await h.services.refresh.run("scheduled")
    assert not first.ok and listing_order(h)[-1] == failing
    mark = len(h.patreon.calls)
    second = await h.services.refresh.run("scheduled")
    assert second.ok, second.detail
    assert listing_order(h, mark)[0] == failing  # it waited longest for a complete refresh
    third_mark = len(h.patreon.calls)
    assert (await h.services.refresh.run("scheduled")).ok
    assert listing_order(h, third_mark) == listing_order(h, mark)[:4]  # all completed: the order now stays


async def test_campaigns_refreshed_side_by_side_each_complete_on_their_own_token(many) -> None:
    h, _states = many
    services = h.services
    assert services is not None and h.store is not None
    services.refresh.campaign_concurrency = 4  # what a larger install would choose (bench/campaigns_bench.py)
    report = await services.refresh.run("scheduled")
    assert report.ok, report.detail
    await services.jobs.wait_idle(5)
    assert every_role_given(h)
    for campaign_id in CONNECTED:
        service = services.campaigns.get(campaign_id)
        assert service is not None
        fact = await h.store.get_fact(service.fact_key(LAST_REFRESH))
        assert isinstance(fact, dict) and fact["ok"] and fact["members_listed"] == 1
    assert sorted(listing_order(h)) == sorted((CAMPAIGN_A, *CONNECTED))
    assert h.patreon.http_429 == 0
    assert services.patreon.budget.figures.granted[Priority.REFRESH] >= 4


async def test_a_webhook_during_the_listings_is_applied_before_they_end(many) -> None:
    h, states = many
    services = h.services
    assert services is not None
    services.refresh.campaign_concurrency = 4
    for state in states:  # long listings: each 2,000 members in pages of 1,000
        state.seed_members(2000, [next(iter(state.tiers))], rng_seed=int(state.campaign_id))
    report = await services.refresh.run("start-up")  # the store now knows everyone
    assert report.ok, report.detail
    await services.jobs.wait_idle(10)
    h.patreon.set_membership("p-ann", "declined_patron", tier_ids=[TIER_A])
    h.patreon.delay_next(r"/members$", 0.3, count=8)  # a slow Patreon: the listings take a while
    figures = services.patreon.budget.figures
    pages_before = figures.granted[Priority.REFRESH]
    refresh = asyncio.create_task(services.refresh.run("scheduled"))
    await wait_for(lambda: figures.granted[Priority.REFRESH] >= pages_before + 4, timeout=10)  # 4 listings going
    status, _text = await h.deliver("members:pledge:update", "p-ann")
    assert 200 <= status < 300
    assert await services.webhook_applier.apply_due() == 1  # re-fetched with A's creator token, and stored
    assert h.patreon.count("/api/oauth2/v2/members/") == 1
    assert not refresh.done(), "the look-up went while the listings were still running"
    snapshot = await h.store.get_membership("p-ann", CAMPAIGN_A) if h.store else None
    assert snapshot is not None and snapshot.patron_status is not None
    assert snapshot.patron_status.value == "declined_patron"
    assert (await refresh).ok
    assert h.patreon.http_429 == 0
