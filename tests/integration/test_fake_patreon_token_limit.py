"""The fake Patreon enforces Patreon's per-token limit by default (100 requests per minute per token), as it does the
client's (fakes/patreon/rate_limit.py): a fake kinder than Patreon would hide the bot's floods of look-ups.

The limit's clock is moved by hand (no waiting); requests are real HTTP to the fake.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from fakes.patreon import FakePatreon

USER_AGENT = "patreon-role-sync-tests/1.0 (+https://example.test)"
REDIRECT = "http://127.0.0.1:8080/patreon/callback"


class ManualClock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def fake() -> AsyncIterator[FakePatreon]:
    server = FakePatreon(client_id="fake-client", client_secret="fake-secret", redirect_uris=(REDIRECT,))
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def get(
    http: aiohttp.ClientSession, fake: FakePatreon, token: str, path: str = "/campaigns"
) -> tuple[int, dict[str, str], Any]:
    headers = {"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT}
    async with http.get(f"{fake.api_base}{path}", headers=headers) as response:
        return response.status, dict(response.headers), await response.json()


async def test_the_101st_request_of_one_token_within_a_minute_gets_patreons_429(fake, http) -> None:
    assert fake.rate_limit is not None and fake.rate_limit.per_token == (100, 60.0), "on by default"
    clock = ManualClock()
    fake.rate_limit.monotonic = clock
    token = fake.creator_access_token
    for n in range(100):
        clock.now += 0.5  # 2 a second: the client's 100 per 2 s never binds, only the token's minute
        status, _headers, _body = await get(http, fake, token)
        assert status == 200, f"request {n + 1} of the token's 100 is served"
    clock.now += 0.5  # 50.5 s after the first
    status, headers, body = await get(http, fake, token)
    assert status == 429
    assert headers["Retry-After"] == "10", "whole seconds until the first of the 100 leaves the minute"
    (error,) = body["errors"]
    assert error["code"] is None and error["code_name"] == "RequestThrottled" and error["status"] == "429"
    assert error["retry_after_seconds"] == 10
    assert fake.http_429 == 1 and fake.rate_limit.refused_per_token == 1


async def test_the_token_window_is_the_grants_and_counts_refused_requests(fake, http) -> None:
    clock = ManualClock()
    assert fake.rate_limit is not None
    fake.rate_limit.monotonic = clock
    creator = fake.creator_access_token
    for _ in range(100):
        clock.now += 0.5
        assert (await get(http, fake, creator))[0] == 200
    clock.now += 0.5
    assert (await get(http, fake, creator))[0] == 429
    # Another user's token has a window of its own.
    patron = fake.issue_tokens(fake.add_user(user_id="p-other", full_name="Other").id).access_token
    assert (await get(http, fake, patron, "/identity"))[0] == 200
    # Patreon: refreshing a token doesn't reset its limit. The refreshed pair counts in the creator's window.
    async with http.post(
        f"{fake.base_url}/api/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": fake.creator_refresh_token,
            "client_id": "fake-client",
            "client_secret": "fake-secret",
        },
        headers={"User-Agent": USER_AGENT},
    ) as response:
        assert response.status == 200, "the token endpoint carries no bearer: no token's window"
        fresh = (await response.json())["access_token"]
    assert (await get(http, fake, fresh))[0] == 429, "a refreshed token goes on counting in its grant's window"
    # The refused requests counted too: 102 in the window, so it frees at the second one's minute, not the first's.
    clock.now = 5000.0 + 0.5 + 60.0  # the first request left the window; the refused ones are still in it
    assert (await get(http, fake, creator))[0] == 429
    clock.now = 5000.0 + 60.0 * 2
    assert (await get(http, fake, creator))[0] == 200
