"""Contract: two bot processes' Linked Roles pushers over one database (two stores on PostgreSQL, one on SQLite) and
one fake Discord, whose refresh tokens work once (as Discord's do). A user's expired Discord token is refreshed once,
never twice with the same refresh token: the loser's `invalid_grant` would read as her revocation, delete the
winner's new pair and stop her pushes for good (so a role gated on her metadata would outlive her pledge)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from yarl import URL

from bot.domain.models import TokenPair
from bot.store import Store
from bot.store.role_connections import discord_subject
from bot.sync.role_connection_push import RoleConnectionPusher, WantedConnection
from bot.web.discord_bearer import DiscordBearerClient
from fakes.discord import FakeDiscord
from fakes.discord.oauth import SESSION_COOKIE

APP = 900000000000000001
BOT_TOKEN = "fake-bot-token"
REDIRECT = "http://127.0.0.1:1/discord/linked-role/callback"
SECRET = "s3cret"
ALICE = 750_000_000_000_000_001
RECORDS: list[dict[str, Any]] = [{"type": 2, "key": "tier_rank", "name": "Tier rank", "description": "Tier by price"}]


def now() -> datetime:
    return datetime.now(UTC)


async def view(_user: int, _pushed: dict[str, str] | None) -> WantedConnection:
    return WantedConnection({"tier_rank": "2"}, "alice")


@pytest.fixture
async def world(backend, open_store) -> AsyncIterator[tuple[FakeDiscord, list[Store], list[RoleConnectionPusher]]]:
    """Two processes' pushers and stores, one fake Discord; Alice connected with a token that has expired."""
    first = await open_store()
    stores = [first, await open_store() if backend == "postgres" else first]
    fake = FakeDiscord(application_id=APP, bot_token=BOT_TOKEN)
    await fake.start()
    fake.oauth.register(SECRET, (REDIRECT,))
    fake.add_guild(1, owner_id=2).add_member(ALICE, username="alice")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        url = f"{fake.base_url}/api/v10/applications/{APP}/role-connections/metadata"
        async with http.put(url, json=RECORDS, headers={"Authorization": f"Bot {BOT_TOKEN}"}) as response:
            assert response.status == 200
        http.cookie_jar.update_cookies({SESSION_COOKIE: fake.oauth.sign_in(ALICE)}, URL(fake.base_url))
        query = {
            "client_id": str(APP),
            "redirect_uri": REDIRECT,
            "response_type": "code",
            "scope": "role_connections.write",
        }
        async with http.post(
            f"{fake.base_url}/oauth2/authorize", data={**query, "decision": "authorize"}, allow_redirects=False
        ) as response:
            code = URL(response.headers["Location"]).query["code"]
        session = aiohttp.ClientSession()
        try:
            bearer = [
                DiscordBearerClient(
                    session,
                    base_url=fake.base_url,
                    client_id=str(APP),
                    client_secret=SECRET,
                    redirect_uri=REDIRECT,
                    clock=now,
                )
                for _ in stores
            ]
            tokens = await bearer[0].exchange(code)
            fake.oauth.expire_access_tokens(ALICE)
            expired = TokenPair(tokens.access_token, tokens.refresh_token, now() - timedelta(hours=1), tokens.scope)
            await first.connect_role_connection(ALICE, expired, now())
            pushers = [
                RoleConnectionPusher(store, client, view, now, platform_name="Patreon", per_second=1000.0)
                for store, client in zip(stores, bearer, strict=True)
            ]
            yield fake, stores, pushers
        finally:
            await session.close()
            await fake.close()


async def assert_still_connected(fake: FakeDiscord, stores: list[Store]) -> None:
    assert fake.oauth.grants.count("refresh_token") == 1, "one refresh, whose pair both processes use"
    for store in stores:
        connection = await store.role_connection(ALICE)
        assert connection is not None and not connection.revoked, "not read as her revocation"
        assert await store.get_tokens(discord_subject(ALICE)) is not None, "the new pair is kept"
    assert fake.role_connections.pushes(ALICE), "Discord got her metadata"


async def test_two_processes_pushing_together_refresh_her_token_once_and_never_revoke_her(world):
    fake, stores, pushers = world
    await asyncio.gather(*(pusher.work() for pusher in pushers))  # both scan: her metadata is queued
    await asyncio.gather(*(pusher.work() for pusher in pushers))  # both find her due
    await assert_still_connected(fake, stores)
    assert len(fake.role_connections.pushes(ALICE)) == 1, "one process pushes at a time: she is pushed once"


async def test_the_verification_page_and_another_process_refresh_her_token_once(world):
    """The page's `push_now` doesn't go through the queue's lock: the per-user token lock alone keeps it apart."""
    fake, stores, (page, other) = world
    assert await page.note(ALICE)
    results = await asyncio.gather(page.push_now(ALICE), other.work())
    assert results[0].ok, results
    await assert_still_connected(fake, stores)
