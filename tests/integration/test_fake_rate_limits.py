"""The fake Discord enforces Discord's real rate limits, on by default (fakes/discord/rate_limits.py).

Why: the bot's pacing is only proven against a Discord that says 429 where the real one would: 10 member-role
edits per guild per fixed window, sliding windows elsewhere, 50 requests a second per bot token, and a ban after
too many invalid requests. Most tests here move the limits' clock by hand (no waiting); the discord.py ones use a
short real window so the client's own sleeping on `retry_after` is what is tested.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from typing import Any

import aiohttp
import discord
import pytest
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

from fakes.discord import FakeDiscord, FakeGuild, RateLimits, Window

APP_ID = 900000000000000001
TOKEN = "fake-bot-token"
GUILD_A = 100000000000000001
GUILD_B = 100000000000000002
OWNER_ID = 100000000000000099
ROLE = 300000000000000001
HIGH_ROLE = 300000000000000003
CHANNEL = 400000000000000001
USERS = [200000000000000001 + i for i in range(30)]
HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "X-RateLimit-Reset-After")


class ManualClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def seed(fake: FakeDiscord, guild_id: int) -> FakeGuild:
    guild = fake.add_guild(guild_id, owner_id=OWNER_ID)
    guild.add_role(ROLE, "Bronze", position=5)
    guild.add_role(HIGH_ROLE, "Moderator", position=60)
    guild.add_text_channel(CHANNEL + guild_id % 10, name="general")
    for user in USERS:
        guild.add_member(user, username=f"user{user % 100}")
    return guild


class Api:
    """A plain aiohttp client speaking to the fake as a bot would, without discord.py's own limiter."""

    def __init__(self, fake: FakeDiscord, session: aiohttp.ClientSession) -> None:
        self.base = fake.base_url + "/api/v10"
        self.session = session

    async def call(
        self, method: str, path: str, *, token: str | None = TOKEN, json: Any = None
    ) -> tuple[int, dict[str, str], Any]:
        headers = {"Authorization": f"Bot {token}"} if token else {}
        async with self.session.request(method, self.base + path, headers=headers, json=json) as response:
            text = await response.text()
            body: Any = None
            if response.content_type == "application/json" and text:
                body = await response.json()
            return response.status, dict(response.headers), body if body is not None else text

    async def role(self, method: str, guild_id: int, user: int, role: int = ROLE) -> tuple[int, dict[str, str], Any]:
        return await self.call(method, f"/guilds/{guild_id}/members/{user}/roles/{role}")


async def started(limits: RateLimits, clock: Callable[[], float]) -> FakeDiscord:
    fake = FakeDiscord(
        application_id=APP_ID, bot_user_id=APP_ID, bot_token=TOKEN, rate_limits=limits, rate_limit_clock=clock
    )
    await fake.start()
    seed(fake, GUILD_A)
    seed(fake, GUILD_B)
    return fake


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def fake(clock: ManualClock) -> AsyncIterator[FakeDiscord]:
    fake = await started(RateLimits.real(), clock)
    try:
        yield fake
    finally:
        await fake.close()


@pytest.fixture
def api(fake: FakeDiscord, session: aiohttp.ClientSession) -> Api:
    return Api(fake, session)


def test_real_limits_are_the_default() -> None:
    assert FakeDiscord().rate_limits == RateLimits.real()
    real = RateLimits.real()
    assert real.member_role == Window(10, 10.0, fixed=True)
    assert real.member_role_shared
    assert real.global_limit == Window(50, 1.0, fixed=True)
    assert real.invalid_limit == Window(10_000, 600.0)
    assert real.ban_seconds == 3600.0


async def test_relaxed_limits_keep_the_headers_but_never_refuse(
    clock: ManualClock, session: aiohttp.ClientSession
) -> None:
    fake = await started(RateLimits.relaxed(), clock)
    try:
        api = Api(fake, session)
        answers = [await api.role("PUT", GUILD_A, user) for user in USERS[:20]]
        assert {status for status, _, _ in answers} == {204}
        assert all("X-RateLimit-Bucket" in headers for _, headers, _ in answers)
        assert fake.rate_limits.invalid_limit == RateLimits.real().invalid_limit  # the ban stays real
    finally:
        await fake.close()


async def test_every_answer_carries_its_route_s_bucket_headers(fake: FakeDiscord, api: Api) -> None:
    answers = [
        await api.call("GET", "/users/@me"),
        await api.role("PUT", GUILD_A, USERS[0]),
        await api.role("PUT", GUILD_A, USERS[0], HIGH_ROLE),  # 403 50013: above the bot
        await api.call("GET", "/guilds/999/roles"),  # 404 Unknown Guild
        await api.call("GET", "/users/@me", token="stolen"),  # 401
        await api.call("GET", "/no/such/route"),
    ]
    assert [status for status, _, _ in answers] == [200, 204, 403, 404, 401, 404]
    for _, headers, _ in answers:
        assert all(name in headers for name in HEADERS), headers
        assert headers["X-RateLimit-Bucket"]
        assert "X-RateLimit-Scope" not in headers  # only on a 429
    role_put = answers[1][1]
    assert (role_put["X-RateLimit-Limit"], role_put["X-RateLimit-Remaining"]) == ("10", "9")
    assert float(role_put["X-RateLimit-Reset-After"]) == pytest.approx(10.0)
    # The refused PUT counted in the same bucket: Discord counts every request.
    assert answers[2][1]["X-RateLimit-Remaining"] == "8"


async def test_member_roles_allow_ten_per_guild_in_a_fixed_window_then_a_real_429(
    fake: FakeDiscord, api: Api, clock: ManualClock
) -> None:
    remaining = []
    for i, user in enumerate(USERS[:10]):
        status, headers, _ = await api.role("PUT", GUILD_A, user)
        assert status == 204
        remaining.append(int(headers["X-RateLimit-Remaining"]))
        if i == 4:
            clock.advance(3.0)
            # Fixed: the reset doesn't move with each request (a sliding window's would).
    assert remaining == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    assert float(headers["X-RateLimit-Reset-After"]) == pytest.approx(7.0)

    status, headers, body = await api.role("PUT", GUILD_A, USERS[10])
    assert status == 429
    assert body == {"message": "You are being rate limited.", "retry_after": 7.0, "global": False}
    assert headers["Retry-After"] == "7"
    assert headers["X-RateLimit-Scope"] == "user"
    assert headers["Via"] == "1.1 google"
    assert "X-RateLimit-Global" not in headers
    assert (headers["X-RateLimit-Limit"], headers["X-RateLimit-Remaining"]) == ("10", "0")
    assert headers["Content-Type"] == "application/json"
    assert ROLE not in fake.guild(GUILD_A).member(USERS[10]).role_ids  # a 429 changes nothing
    assert [c.scope for c in fake.rate_limited_calls()] == ["user"]

    clock.advance(6.9)
    assert (await api.role("PUT", GUILD_A, USERS[10]))[0] == 429
    clock.advance(0.1)
    status, headers, _ = await api.role("PUT", GUILD_A, USERS[10])
    assert (status, headers["X-RateLimit-Remaining"]) == (204, "9")
    assert ROLE in fake.guild(GUILD_A).member(USERS[10]).role_ids


@pytest.mark.parametrize("shared", [True, False])
async def test_put_and_delete_share_the_member_role_bucket_unless_switched_apart(
    shared: bool, clock: ManualClock, session: aiohttp.ClientSession
) -> None:
    fake = await started(replace(RateLimits.real(), member_role_shared=shared), clock)
    try:
        api = Api(fake, session)
        for user in USERS[:10]:
            put = await api.role("PUT", GUILD_A, user)
        status, delete_headers, _ = await api.role("DELETE", GUILD_A, USERS[0])
        assert status == (429 if shared else 204)
        same_hash = put[1]["X-RateLimit-Bucket"] == delete_headers["X-RateLimit-Bucket"]
        assert same_hash is shared  # the hash is how discord.py can learn the sharing
        assert (ROLE in fake.guild(GUILD_A).member(USERS[0]).role_ids) is shared
    finally:
        await fake.close()


async def test_one_guild_s_full_bucket_does_not_limit_another(fake: FakeDiscord, api: Api) -> None:
    for user in USERS[:10]:
        await api.role("PUT", GUILD_A, user)
    assert (await api.role("DELETE", GUILD_A, USERS[0]))[0] == 429
    status, headers_b, _ = await api.role("PUT", GUILD_B, USERS[0])
    assert (status, headers_b["X-RateLimit-Remaining"]) == (204, "9")
    # Same route, so the same bucket hash: the guild id splits the count, not the name.
    _, headers_a, _ = await api.role("PUT", GUILD_A, USERS[1])
    assert headers_a["X-RateLimit-Bucket"] == headers_b["X-RateLimit-Bucket"]


async def test_other_routes_slide_one_request_free_at_a_time(api: Api, clock: ManualClock) -> None:
    path = f"/channels/{CHANNEL + GUILD_A % 10}/messages"
    for _ in range(5):  # 5 per 5 s, one a second
        status, headers, _ = await api.call("POST", path, json={"content": "hi"})
        assert status == 200
        assert float(headers["X-RateLimit-Reset-After"]) == pytest.approx(5.0)  # moves with each request
        clock.advance(1.0)
    clock.advance(-1.0)  # now = 4 s after the first
    status, headers, body = await api.call("POST", path, json={"content": "too many"})
    assert (status, body["retry_after"], headers["Retry-After"]) == (429, 1.0, "1")  # when the first frees up
    clock.advance(1.0)
    status, headers, _ = await api.call("POST", path, json={"content": "one freed"})
    assert (status, headers["X-RateLimit-Remaining"]) == (200, "0")
    other_channel = f"/channels/{CHANNEL + GUILD_B % 10}/messages"
    assert (await api.call("POST", other_channel, json={"content": "elsewhere"}))[0] == 200


async def test_the_51st_request_in_a_second_is_a_global_429(fake: FakeDiscord, api: Api, clock: ManualClock) -> None:
    for i in range(50):
        assert (await api.call("GET", f"/guilds/{GUILD_A if i % 2 else GUILD_B}/roles"))[0] == 200
        if i == 24:
            clock.advance(0.5)
    status, headers, body = await api.role("PUT", GUILD_A, USERS[0])
    assert status == 429
    assert body == {"message": "You are being rate limited.", "retry_after": 0.5, "global": True}
    assert headers["X-RateLimit-Global"] == "true"
    assert headers["X-RateLimit-Scope"] == "global"
    assert headers["Retry-After"] == "1"
    assert headers["Via"] == "1.1 google"
    assert "X-RateLimit-Bucket" not in headers  # as in Discord's example of a global 429
    assert ROLE not in fake.guild(GUILD_A).member(USERS[0]).role_ids
    clock.advance(0.5)
    status, headers, _ = await api.role("PUT", GUILD_A, USERS[0])
    assert (status, headers["X-RateLimit-Remaining"]) == (204, "9")  # the global 429 used up no route request
    assert [c.scope for c in fake.rate_limited_calls()] == ["global"]


async def test_interaction_endpoints_are_exempt_from_the_global_limit(
    fake: FakeDiscord, api: Api, clock: ManualClock, point_discord_at: Callable[[str], None]
) -> None:
    commands = [{"name": "ping", "description": "Ping", "type": 1}]
    assert (await api.call("PUT", f"/applications/{APP_ID}/commands", json=commands))[0] == 200
    point_discord_at(fake.base_url)
    # A plain Client holds the gateway (interactions need a bot to go to) and answers nothing itself.
    client = discord.Client(intents=discord.Intents.default(), guild_ready_timeout=0.05)
    running = asyncio.create_task(client.start(TOKEN))
    try:
        await fake.wait_for_ready_bots(1)
        record = await fake.invoke_slash(GUILD_A, USERS[0], "ping")
        clock.advance(1.0)  # a fresh global window after the client's start-up calls
        await exhaust_global_then_answer(fake, api, record.id, record.token)
    finally:
        await client.close()
        await running


async def exhaust_global_then_answer(fake: FakeDiscord, api: Api, interaction_id: int, token: str) -> None:
    for _ in range(50):
        await api.call("GET", "/users/@me")
    assert (await api.call("GET", "/users/@me"))[0] == 429
    callback = f"/interactions/{interaction_id}/{token}/callback"
    status, headers, _ = await api.call("POST", callback, token=None, json={"type": 4, "data": {"content": "pong"}})
    assert status == 204
    assert "X-RateLimit-Bucket" in headers
    followup = f"/webhooks/{APP_ID}/{token}"
    assert (await api.call("POST", followup, token=None, json={"content": "more"}))[0] == 204  # no ?wait: no body
    assert (await api.call("GET", f"/guilds/{GUILD_A}/roles"))[0] == 429  # the bot's own calls still wait
    assert [c.scope for c in fake.rate_limited_calls()] == ["global", "global"]


async def test_a_stranger_s_bad_token_spends_no_global_budget_but_counts_as_invalid(
    fake: FakeDiscord, api: Api
) -> None:
    for _ in range(60):
        assert (await api.call("GET", "/users/@me", token="guessed"))[0] == 401
    for _ in range(50):
        assert (await api.call("GET", f"/guilds/{GUILD_A}/roles"))[0] == 200
    assert fake.rate_limiter.invalid_requests == 60


async def test_401_403_and_429_count_toward_the_invalid_request_limit(
    fake: FakeDiscord, api: Api, clock: ManualClock
) -> None:
    await api.call("GET", "/users/@me", token="wrong")  # 401
    await api.role("PUT", GUILD_A, USERS[0], HIGH_ROLE)  # 403 (it also uses a request of the bucket)
    await api.call("GET", "/guilds/999/roles")  # 404: not invalid in this sense
    for user in USERS[:9]:
        await api.role("PUT", GUILD_A, user)  # 2xx
    await api.role("PUT", GUILD_A, USERS[9])  # 429
    fake.inject_rate_limit("GET", "/users/@me$")
    await api.call("GET", "/users/@me")  # an injected 429 counts too
    assert fake.rate_limiter.invalid_requests == 4
    clock.advance(600.0)
    assert fake.rate_limiter.invalid_requests == 0  # a sliding 10 minutes
    assert fake.rate_limiter.invalid_total == 4


def test_a_shared_scope_429_is_not_held_against_the_bot() -> None:
    limiter = FakeDiscord(rate_limit_clock=ManualClock()).rate_limiter
    limiter.record(429, "shared")
    limiter.record(429, "user")
    limiter.record(403, None)
    limiter.record(404, None)
    assert limiter.invalid_requests == 2


async def test_too_many_invalid_requests_earn_a_cloudflare_ban(
    clock: ManualClock, session: aiohttp.ClientSession
) -> None:
    limits = replace(RateLimits.real(), invalid_limit=Window(5, 600.0), ban_seconds=3600.0)
    fake = await started(limits, clock)
    try:
        api = Api(fake, session)
        for _ in range(5):
            await api.role("PUT", GUILD_A, USERS[0], HIGH_ROLE)
        assert fake.rate_limiter.banned_for() == pytest.approx(3600.0)
        status, headers, _ = await api.role("PUT", GUILD_A, USERS[1])
        assert status == 429
        assert "Via" not in headers and headers["Content-Type"].startswith("text/html")  # not Discord's JSON
        assert ROLE not in fake.guild(GUILD_A).member(USERS[1]).role_ids
        assert (await api.call("GET", "/users/@me"))[0] == 429  # every route, even a valid call
        clock.advance(3600.0)
        assert (await api.role("PUT", GUILD_A, USERS[1]))[0] == 204
    finally:
        await fake.close()


# ---- the real discord.py HTTP client -------------------------------------------------------------------------


@pytest.fixture
def point_discord_at() -> Iterator[Callable[[str], None]]:
    """Redirect discord.py to a base URL the way bot/discord_endpoint.py does; restore afterwards."""
    old_base, old_gateway = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY

    def point(base_url: str) -> None:
        Route.BASE = f"{base_url}/api/v10"
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(base_url.replace("http://", "ws://", 1) + "/gateway")

    yield point
    Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = old_base, old_gateway


async def test_discord_py_sees_the_429_and_retries_after_retry_after(
    point_discord_at: Callable[[str], None],
) -> None:
    """discord.py learns that PUT and DELETE share a bucket only from the answers, so a fan-out of both overshoots;
    it sleeps `retry_after` and retries, and every edit lands in the end."""
    window = 0.4
    limits = replace(RateLimits.real(), member_role=Window(10, window, fixed=True))
    fake = FakeDiscord(application_id=APP_ID, bot_user_id=APP_ID, bot_token=TOKEN, rate_limits=limits)
    await fake.start()
    guild = seed(fake, GUILD_A)
    for user in USERS[10:20]:
        guild.member(user).role_ids.add(ROLE)
    point_discord_at(fake.base_url)
    http = discord.http.HTTPClient(asyncio.get_running_loop())
    try:
        await http.static_login(TOKEN)
        adds = [http.add_role(GUILD_A, user, ROLE) for user in USERS[:10]]
        removes = [http.remove_role(GUILD_A, user, ROLE) for user in USERS[10:20]]
        await asyncio.wait_for(asyncio.gather(*adds, *removes), timeout=30)
    finally:
        await http.close()
        await fake.close()
    assert all(ROLE in guild.member(user).role_ids for user in USERS[:10])
    assert not any(ROLE in guild.member(user).role_ids for user in USERS[10:20])
    limited = fake.rate_limited_calls("user")
    assert limited, "both routes fanned out into one bucket of 10: some must have been refused"
    role_calls = [c for c in fake.calls if "/roles/" in c.path]
    assert len(role_calls) == 20 + len(limited)
    for refused in limited:
        assert refused.retry_after is not None and 0 < refused.retry_after <= window
        retry = next(
            c for c in role_calls if (c.method, c.path) == (refused.method, refused.path) and c.at > refused.at
        )
        # discord.py slept retry_after before sending it again (the 429 was recorded just before it was sent).
        assert retry.at - refused.at >= refused.retry_after - 0.01
    assert sum(c.status == 204 for c in role_calls) == 20
