"""The fake Discord's OAuth2 is as strict as Discord's: what the bot's sign-in step relies on, checked on the fake."""

import aiohttp
import pytest
from yarl import URL

from fakes.discord import FakeDiscord
from fakes.discord.oauth import SESSION_COOKIE

REDIRECT = "http://127.0.0.1:1/discord/callback"
SECRET = "s3cret"


@pytest.fixture
async def discord():
    fake = FakeDiscord(application_id=900000000000000001)
    await fake.start()
    fake.oauth.register(SECRET, (REDIRECT,))
    guild = fake.add_guild(1, owner_id=2)
    guild.add_member(5, username="bob")
    try:
        yield fake
    finally:
        await fake.close()


def authorize_query(**overrides: str) -> dict[str, str]:
    query = {"client_id": "900000000000000001", "redirect_uri": REDIRECT, "response_type": "code", "scope": "identify"}
    return {**query, "state": "st", **overrides}


async def code_for(fake: FakeDiscord, session: aiohttp.ClientSession) -> str:
    session.cookie_jar.update_cookies({SESSION_COOKIE: fake.oauth.sign_in(5)}, URL(fake.base_url))
    fake.oauth.authorised.add((5, "identify"))
    url = f"{fake.base_url}/oauth2/authorize"
    async with session.get(url, params=authorize_query(prompt="none"), allow_redirects=False) as response:
        assert response.status == 302
        location = URL(response.headers["Location"])
    assert location.query["state"] == "st"
    return location.query["code"]


async def token(fake: FakeDiscord, session: aiohttp.ClientSession, code: str, **form: str) -> tuple[int, dict]:
    body = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, **form}
    auth = aiohttp.encode_basic_auth("900000000000000001", SECRET)
    async with session.post(f"{fake.base_url}/api/v10/oauth2/token", data=body, headers={"Authorization": auth}) as r:
        return r.status, await r.json()


async def test_a_code_works_once_then_invalid_grant(discord):
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        code = await code_for(discord, session)
        status, body = await token(discord, session, code)
        assert status == 200 and body["token_type"] == "Bearer" and body["scope"] == "identify"
        async with session.get(
            f"{discord.base_url}/api/v10/users/@me", headers={"Authorization": f"Bearer {body['access_token']}"}
        ) as response:
            assert response.status == 200 and (await response.json())["id"] == "5"
        assert await token(discord, session, code) == (
            400,
            {"error": "invalid_grant", "error_description": 'Invalid "code" in request.'},
        )


async def test_the_redirect_uri_must_match_and_the_client_must_authenticate(discord):
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        status, body = await token(discord, session, await code_for(discord, session), redirect_uri="http://x/cb")
        assert (status, body["error"]) == (400, "invalid_grant")
        code = await code_for(discord, session)
        async with session.post(
            f"{discord.base_url}/api/v10/oauth2/token",
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
            headers={"Authorization": aiohttp.encode_basic_auth("900000000000000001", "wrong")},
        ) as response:
            assert (response.status, await response.json()) == (401, {"error": "invalid_client"})
        async with session.post(f"{discord.base_url}/api/v10/oauth2/token", json={"code": code}) as response:
            assert response.status == 400, "JSON is not permitted"


async def test_users_me_without_a_valid_bearer_is_401(discord):
    async with aiohttp.ClientSession() as session:
        for headers in ({}, {"Authorization": "Bearer nope"}):
            async with session.get(f"{discord.base_url}/api/v10/users/@me", headers=headers) as response:
                assert response.status == 401
                assert await response.json() == {"message": "401: Unauthorized", "code": 0}


async def test_authorize_refuses_an_unregistered_redirect_and_sends_the_signed_out_to_sign_in(discord):
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        url = f"{discord.base_url}/oauth2/authorize"
        async with session.get(url, params=authorize_query(redirect_uri="http://evil/cb"), allow_redirects=False) as r:
            assert r.status == 400 and "Location" not in r.headers
        async with session.get(url, params=authorize_query(), allow_redirects=False) as response:
            assert response.status == 302 and response.headers["Location"].startswith("/login?redirect_to=")
        session.cookie_jar.update_cookies({SESSION_COOKIE: discord.oauth.sign_in(5)}, URL(discord.base_url))
        async with session.get(url, params=authorize_query(prompt="none"), allow_redirects=False) as response:
            assert response.status == 200 and "Authorize" in await response.text(), "never authorised: consent"
