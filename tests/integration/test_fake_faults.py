"""The fakes' fault hooks, as the real clients meet them over loopback: what each one sends, and that it stops.

Tests elsewhere inject trouble through these instead of replacing the bot's internals, so each hook has to be
real HTTP: the Patreon client must see a 524 page, a body cut short, a 200 that isn't JSON, or no answer at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bot.patreon import PatreonBadResponse, PatreonClient, PatreonUnavailable
from fakes.discord import FakeDiscord
from fakes.patreon import FakePatreon
from tests.e2e.polling import wait_for

IDENTITY = "/api/oauth2/v2/identity"
GUILD, MEMBER, ROLE = 100000000000000001, 200000000000000001, 300000000000000001
TOKEN = "fake-bot-token"


@pytest.fixture
async def patreon() -> AsyncIterator[FakePatreon]:
    fake = await FakePatreon().start()
    fake.add_tier("1001", "Bronze", 500)
    fake.add_user("u1", "Ann")
    fake.set_membership("u1", tier_ids=["1001"])
    try:
        yield fake
    finally:
        await fake.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


def client(session: aiohttp.ClientSession, fake: FakePatreon, **overrides: Any) -> PatreonClient:
    settings: dict[str, Any] = {"max_retries": 2, "retry_base_delay": 0.01, **overrides}
    return PatreonClient(
        session,
        base_url=fake.base_url,
        client_id=fake.client_id,
        client_secret=fake.client_secret,
        redirect_uri=fake.redirect_uris[0],
        user_agent="fault-tests/1.0",
        **settings,
    )


# -- fake Patreon ----------------------------------------------------------------------------------------------


async def test_a_time_out_is_the_edge_s_524_page_after_the_wait(patreon, session) -> None:
    patreon.time_out_next(r"/identity$", seconds=0.05, count=1)
    async with session.get(f"{patreon.api_base}/identity", headers={"User-Agent": "t/1"}) as response:
        assert response.status == 524 and response.content_type == "text/html"
        assert "A timeout occurred" in await response.text()
    patreon.time_out_next(r"/identity$", seconds=0.01, count=3)
    with pytest.raises(PatreonUnavailable) as failure:
        await client(session, patreon).get_identity(patreon.creator_access_token)
    assert failure.value.status == 524
    assert patreon.count(IDENTITY) == 4, "retried like any 5xx, and answered normally once the faults are used up"
    assert (await client(session, patreon).get_identity(patreon.creator_access_token)).user.full_name


async def test_a_cut_connection_is_unavailable_and_retried(patreon, session) -> None:
    patreon.cut_next(r"/identity$", count=3)
    with pytest.raises(PatreonUnavailable, match="ClientPayloadError"):
        await client(session, patreon).get_identity(patreon.creator_access_token)
    assert patreon.count(IDENTITY) == 3
    assert (await client(session, patreon).get_identity(patreon.creator_access_token)).user.id


async def test_a_malformed_body_is_a_bad_response_and_not_retried(patreon, session) -> None:
    patreon.malformed_next(r"/identity$")
    with pytest.raises(PatreonBadResponse, match="not JSON"):
        await client(session, patreon).get_identity(patreon.creator_access_token)
    assert patreon.count(IDENTITY) == 1


async def test_a_hung_request_ends_only_with_the_client_s_timeout_or_the_fake_closing(patreon, session) -> None:
    patreon.hang_next(r"/identity$", count=2)
    with pytest.raises(PatreonUnavailable, match="Timeout"):
        await client(session, patreon, request_timeout=0.1, max_retries=1).get_identity(patreon.creator_access_token)
    assert patreon.count(IDENTITY) == 2
    patreon.hang_next(r"/identity$")
    hung = asyncio.create_task(session.get(f"{patreon.api_base}/identity", headers={"User-Agent": "t/1"}))
    await wait_for(lambda: patreon.count(IDENTITY) == 3)
    await patreon.close()
    response = await asyncio.wait_for(hung, timeout=5)
    assert response.status == 503, "closing the fake answers what it held"
    response.release()


async def test_rewrites_change_successful_answers_only_and_run_out(patreon, session) -> None:
    def renamed(document: Any, query: Any) -> Any:
        document["data"]["attributes"]["full_name"] = f"Rewritten ({query.get('include', '')[:11]})"
        return document

    patreon.rewrite_responses(r"/identity$", renamed, count=2)
    patreon.fail_next(r"/identity$", status=503, count=1)  # an error answer is not rewritten, and not counted
    api = client(session, patreon)
    assert (await api.get_identity(patreon.creator_access_token)).user.full_name == "Rewritten (memberships)"
    assert (await api.get_identity(patreon.creator_access_token)).user.full_name == "Rewritten (memberships)"
    assert (await api.get_identity(patreon.creator_access_token)).user.full_name == "Fake Creator"
    patreon.rewrite_responses(r"/identity$", renamed)  # no count: until cleared
    for _ in range(3):
        assert (await api.get_identity(patreon.creator_access_token)).user.full_name.startswith("Rewritten")
    patreon.faults.clear()
    assert (await api.get_identity(patreon.creator_access_token)).user.full_name == "Fake Creator"


# -- fake Discord ----------------------------------------------------------------------------------------------


@pytest.fixture
async def discord_fake() -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord(bot_token=TOKEN)
    await fake.start()
    guild = fake.add_guild(GUILD)
    guild.add_role(ROLE, "Bronze", position=5)
    guild.add_member(MEMBER, username="ann")
    try:
        yield fake
    finally:
        await fake.close()


def give_role(fake: FakeDiscord, session: aiohttp.ClientSession) -> Any:
    url = f"{fake.base_url}/api/v10/guilds/{GUILD}/members/{MEMBER}/roles/{ROLE}"
    return session.put(url, headers={"Authorization": f"Bot {TOKEN}"})


async def test_a_held_call_changes_nothing_until_released(discord_fake, session) -> None:
    hold = discord_fake.hold_next("PUT", rf"/members/{MEMBER}/roles/\d+$", seconds=30)
    call = asyncio.create_task(give_role(discord_fake, session))
    await wait_for(lambda: hold.held == 1)
    assert hold.arrived == 1 and set(discord_fake.guild(GUILD).member(MEMBER).role_ids) == set()
    assert discord_fake.calls == [], "a call is recorded when it is answered"
    hold.release()
    response = await asyncio.wait_for(call, timeout=5)
    assert response.status == 204 and hold.held == 0
    response.release()
    assert set(discord_fake.guild(GUILD).member(MEMBER).role_ids) == {ROLE}
    async with give_role(discord_fake, session) as again:  # the hold caught one call: the next is not held
        assert again.status == 204
    assert hold.arrived == 1


async def test_a_hold_lasts_at_most_its_seconds_and_closing_releases_it(discord_fake, session) -> None:
    slow = discord_fake.hold_next("PUT", r"/roles/\d+$", seconds=0.05)
    async with give_role(discord_fake, session) as response:  # a slow Discord: answered without any release
        assert response.status == 204
    assert slow.arrived == 1 and slow.held == 0
    stuck = discord_fake.hold_next("PUT", r"/roles/\d+$", seconds=3600)
    call = asyncio.create_task(give_role(discord_fake, session))
    await wait_for(lambda: stuck.held == 1)
    await asyncio.wait_for(discord_fake.close(), timeout=5)  # closing lets it through instead of waiting an hour
    (outcome,) = await asyncio.wait_for(asyncio.gather(call, return_exceptions=True), timeout=5)
    if isinstance(outcome, aiohttp.ClientResponse):
        outcome.release()
    assert stuck.held == 0
