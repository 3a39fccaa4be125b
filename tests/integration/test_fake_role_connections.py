"""The fake Discord's Linked Roles as strict as Discord's: metadata records, the per-user role connection with its
Bearer token and scope, token refresh and revocation, and the roles Discord grants from a role's requirements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from yarl import URL

from fakes.discord import FakeDiscord
from fakes.discord.oauth import SESSION_COOKIE

APP = 900000000000000001
BOT_TOKEN = "fake-bot-token"
REDIRECT = "http://127.0.0.1:1/discord/linked-role/callback"
SECRET = "s3cret"
GUILD, GOLD_ROLE, BOB = 1, 30, 5
RECORDS: list[dict[str, Any]] = [
    {"type": 7, "key": "patron", "name": "Patron", "description": "Pledging now"},
    {"type": 2, "key": "tier_rank", "name": "Tier rank", "description": "Tier by price"},
    {"type": 6, "key": "patron_since", "name": "Patron for (days)", "description": "First pledge"},
]


@pytest.fixture
async def discord() -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord(application_id=APP, bot_token=BOT_TOKEN)
    await fake.start()
    fake.oauth.register(SECRET, (REDIRECT,))
    guild = fake.add_guild(GUILD, owner_id=2)
    guild.add_role(GOLD_ROLE, "Gold (linked)", position=3)
    guild.add_member(BOB, username="bob")
    try:
        yield fake
    finally:
        await fake.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def put_records(fake: FakeDiscord, http: aiohttp.ClientSession, body: Any) -> tuple[int, Any]:
    url = f"{fake.base_url}/api/v10/applications/{APP}/role-connections/metadata"
    async with http.put(url, json=body, headers={"Authorization": f"Bot {BOT_TOKEN}"}) as response:
        return response.status, await response.json()


async def tokens_for(fake: FakeDiscord, http: aiohttp.ClientSession, scope: str) -> dict[str, Any]:
    http.cookie_jar.update_cookies({SESSION_COOKIE: fake.oauth.sign_in(BOB)}, URL(fake.base_url))
    query = {"client_id": str(APP), "redirect_uri": REDIRECT, "response_type": "code", "scope": scope}
    async with http.post(
        f"{fake.base_url}/oauth2/authorize", data={**query, "decision": "authorize"}, allow_redirects=False
    ) as response:
        code = URL(response.headers["Location"]).query["code"]
    return await token_call(fake, http, {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT})


async def token_call(fake: FakeDiscord, http: aiohttp.ClientSession, form: dict[str, str]) -> dict[str, Any]:
    auth = aiohttp.encode_basic_auth(str(APP), SECRET)
    async with http.post(f"{fake.base_url}/api/v10/oauth2/token", data=form, headers={"Authorization": auth}) as r:
        return {"status": r.status, **(await r.json())}


async def put_connection(fake: FakeDiscord, http: aiohttp.ClientSession, auth: str, body: Any) -> tuple[int, Any]:
    url = f"{fake.base_url}/api/v10/users/@me/applications/{APP}/role-connection"
    async with http.put(url, json=body, headers={"Authorization": auth}) as response:
        return response.status, await response.json()


async def test_metadata_records_are_validated_like_discord(discord, http):
    assert await put_records(discord, http, RECORDS) == (200, RECORDS)
    status, body = await put_records(discord, http, [*RECORDS, *RECORDS[:3]])
    assert status == 400 and body["code"] == 50035 and body["errors"]["_errors"][0]["code"] == "BASE_TYPE_MAX_LENGTH"
    status, body = await put_records(discord, http, [{**RECORDS[0], "key": "Tier-Rank"}])
    assert status == 400 and body["errors"]["0"]["key"]["_errors"][0]["code"] == "STRING_TYPE_REGEX"
    status, body = await put_records(discord, http, [{**RECORDS[0], "type": 9}])
    assert status == 400 and "type" in body["errors"]["0"]
    status, body = await put_records(discord, http, [{**RECORDS[0], "key": "k" * 51}])
    assert status == 400 and "key" in body["errors"]["0"]
    status, body = await put_records(discord, http, [{**RECORDS[0], "description": ""}])
    assert status == 400 and "description" in body["errors"]["0"]
    assert discord.role_connections.metadata == RECORDS  # refused bodies changed nothing
    url = f"{discord.base_url}/api/v10/applications/{APP}/role-connections/metadata"
    async with http.put(url, json=RECORDS) as response:
        assert response.status == 401  # the records take the bot token


async def test_the_per_user_endpoint_refuses_the_bot_token_and_a_token_without_the_scope(discord, http):
    await put_records(discord, http, RECORDS)
    body = {"platform_name": "Patreon", "metadata": {"patron": "1"}}
    assert await put_connection(discord, http, f"Bot {BOT_TOKEN}", body) == (
        401,
        {"message": "401: Unauthorized", "code": 0},
    )
    identify_only = await tokens_for(discord, http, "identify")
    assert (await put_connection(discord, http, f"Bearer {identify_only['access_token']}", body))[0] == 401
    assert (await put_connection(discord, http, "Bearer not-a-token", body))[0] == 401
    assert BOB not in discord.role_connections.connections
    granted = await tokens_for(discord, http, "identify role_connections.write")
    assert granted["scope"] == "identify role_connections.write"
    status, answer = await put_connection(discord, http, f"Bearer {granted['access_token']}", body)
    assert status == 200 and answer["metadata"] == {"patron": "1"} and answer["platform_name"] == "Patreon"


async def test_values_must_fit_their_record(discord, http):
    await put_records(discord, http, RECORDS)
    auth = f"Bearer {(await tokens_for(discord, http, 'role_connections.write'))['access_token']}"
    for metadata in ({"tier_rank": "gold"}, {"patron": "2"}, {"patron_since": "yesterday"}, {"unknown": "1"}):
        status, body = await put_connection(discord, http, auth, {"metadata": metadata})
        assert status == 400 and body["code"] == 50035, metadata
    status, body = await put_connection(discord, http, auth, {"platform_username": "x" * 101})
    assert status == 400 and "platform_username" in body["errors"]
    assert BOB not in discord.role_connections.connections


async def test_a_linked_role_follows_the_metadata(discord, http):
    await put_records(discord, http, RECORDS)
    discord.role_connections.set_role_requirements(GUILD, GOLD_ROLE, {"tier_rank": 2})
    auth = f"Bearer {(await tokens_for(discord, http, 'role_connections.write'))['access_token']}"
    member = discord.guild(GUILD).member(BOB)
    await put_connection(discord, http, auth, {"metadata": {"tier_rank": "1", "patron": "1"}})
    assert GOLD_ROLE not in member.role_ids
    await put_connection(discord, http, auth, {"metadata": {"tier_rank": "2", "patron": "1"}})
    assert GOLD_ROLE in member.role_ids
    discord.role_connections.set_role_requirements(GUILD, GOLD_ROLE, {"tier_rank": 2, "patron": 1})
    assert GOLD_ROLE in member.role_ids
    await put_connection(discord, http, auth, {"metadata": {"tier_rank": "0", "patron": "0"}})
    assert GOLD_ROLE not in member.role_ids
    with pytest.raises(ValueError):
        discord.role_connections.set_role_requirements(GUILD, GOLD_ROLE, {"lifetime_support": 1})


async def test_refresh_rotates_and_revocation_ends_every_token(discord, http):
    await put_records(discord, http, RECORDS)
    first = await tokens_for(discord, http, "role_connections.write")
    refresh = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    refreshed = await token_call(discord, http, refresh)
    assert refreshed["status"] == 200 and refreshed["refresh_token"] != first["refresh_token"]
    again = await token_call(discord, http, refresh)
    assert again["status"] == 400 and again["error"] == "invalid_grant"  # a refresh token works once
    assert (await put_connection(discord, http, f"Bearer {first['access_token']}", {}))[0] == 401
    assert (await put_connection(discord, http, f"Bearer {refreshed['access_token']}", {}))[0] == 200
    discord.oauth.expire_access_tokens(BOB)
    assert (await put_connection(discord, http, f"Bearer {refreshed['access_token']}", {}))[0] == 401
    discord.oauth.deauthorize(BOB)
    gone = await token_call(discord, http, {"grant_type": "refresh_token", "refresh_token": refreshed["refresh_token"]})
    assert gone["status"] == 400 and gone["error"] == "invalid_grant"
