"""The fake gateway answers op 8 REQUEST_GUILD_MEMBERS as Discord does (fakes/discord/member_requests.py).

A raw websocket client speaks the protocol, so nothing of discord.py's own pacing or caching hides the answers.
"""

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from fakes.discord import FakeDiscord

TOKEN = "gw-token"
GUILD = 810000000000000001
MEMBER_BASE = 820000000000000000
INTENTS_WITH_MEMBERS = (1 << 0) | (1 << 1)
INTENTS_WITHOUT_MEMBERS = 1 << 0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def discord_world():
    clock = Clock()
    fake = FakeDiscord(bot_token=TOKEN, rate_limit_clock=clock)
    await fake.start()
    guild = fake.add_guild(GUILD, name="Big", owner_id=MEMBER_BASE)
    for n in range(300):
        guild.add_member(MEMBER_BASE + n, username=f"fan{n:03d}", nick="Alfred" if n == 7 else None)
    session = aiohttp.ClientSession()
    try:
        yield fake, session, clock
    finally:
        await session.close()
        await fake.close()


class Bot:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def next(self) -> dict[str, Any]:
        message = await asyncio.wait_for(self.ws.receive(), timeout=5)
        return json.loads(message.data)

    async def send(self, op: int, data: Any) -> None:
        await self.ws.send_str(json.dumps({"op": op, "d": data}))

    async def request(self, **data: Any) -> list[dict[str, Any]]:
        """Send op 8, then a heartbeat: everything Discord sent before the heartbeat's ACK is the answer."""
        await self.send(8, {"guild_id": str(GUILD), **data})
        await self.send(1, None)
        frames = []
        while (frame := await self.next())["op"] != 11:
            frames.append(frame)
        return frames


async def connect(fake: FakeDiscord, session: aiohttp.ClientSession, intents: int) -> Bot:
    ws = await session.ws_connect(fake.gateway_url)
    bot = Bot(ws)
    assert (await bot.next())["op"] == 10
    await bot.send(2, {"token": TOKEN, "intents": intents, "properties": {}, "large_threshold": 250})
    ready = await bot.next()
    assert ready["t"] == "READY"
    guild_create = await bot.next()
    assert guild_create["t"] == "GUILD_CREATE"
    assert guild_create["d"]["large"] is True and guild_create["d"]["member_count"] == 301
    assert [m["user"]["id"] for m in guild_create["d"]["members"]] == [str(fake.bot_user_id)], "a large guild: the bot"
    return bot


async def test_user_ids_answer_exactly_those_found_and_list_the_rest_as_not_found(discord_world):
    fake, session, _ = discord_world
    bot = await connect(fake, session, INTENTS_WITH_MEMBERS)
    wanted = [MEMBER_BASE + 3, MEMBER_BASE + 5, 999]
    frames = await bot.request(user_ids=[str(u) for u in wanted], limit=0, nonce="n-1")
    assert [f["t"] for f in frames] == ["GUILD_MEMBERS_CHUNK"]
    chunk = frames[0]["d"]
    assert sorted(int(m["user"]["id"]) for m in chunk["members"]) == wanted[:2]
    assert chunk["not_found"] == ["999"] and chunk["nonce"] == "n-1"
    assert (chunk["chunk_index"], chunk["chunk_count"]) == (0, 1)
    assert fake.member_requests[-1].user_ids == tuple(wanted)


async def test_user_ids_past_the_hundredth_are_not_answered(discord_world):
    fake, session, _ = discord_world
    bot = await connect(fake, session, INTENTS_WITH_MEMBERS)
    wanted = [MEMBER_BASE + n for n in range(150)]
    chunk = (await bot.request(user_ids=wanted, nonce="n-2"))[0]["d"]
    assert len(chunk["members"]) == 100 and chunk["not_found"] == []
    assert {int(m["user"]["id"]) for m in chunk["members"]} == set(wanted[:100])


async def test_a_query_matches_name_prefixes_up_to_the_limit(discord_world):
    fake, session, _ = discord_world
    bot = await connect(fake, session, INTENTS_WITHOUT_MEMBERS)
    chunk = (await bot.request(query="fan01", limit=5, nonce="q"))[0]["d"]
    assert [m["user"]["username"] for m in chunk["members"]] == [f"fan0{n}" for n in range(10, 15)]
    by_nick = (await bot.request(query="alf", limit=10))[0]["d"]
    assert [m["nick"] for m in by_nick["members"]] == ["Alfred"]
    capped = (await bot.request(query="fan", limit=500))[0]["d"]
    assert len(capped["members"]) == 100, "a prefix returns at most 100"


async def test_the_whole_list_once_per_30_s_then_rate_limited(discord_world):
    fake, session, clock = discord_world
    bot = await connect(fake, session, INTENTS_WITH_MEMBERS)
    frames = await bot.request(query="", limit=0, nonce="all-1")
    assert {f["t"] for f in frames} == {"GUILD_MEMBERS_CHUNK"}
    assert sum(len(f["d"]["members"]) for f in frames) == 301
    assert [f["d"]["chunk_index"] for f in frames] == [0] and frames[0]["d"]["nonce"] == "all-1"

    clock.now += 12.5
    again = await bot.request(query="", limit=0, nonce="all-2")
    assert [(f["op"], f["t"]) for f in again] == [(0, "RATE_LIMITED")]
    assert again[0]["d"] == {"opcode": 8, "retry_after": 17.5, "meta": {"guild_id": str(GUILD), "nonce": "all-2"}}
    # Requests by id aren't limited by the window.
    assert (await bot.request(user_ids=[MEMBER_BASE], nonce="id"))[0]["t"] == "GUILD_MEMBERS_CHUNK"

    clock.now += 17.5
    later = await bot.request(query="", limit=0, nonce="all-3")
    assert {f["t"] for f in later} == {"GUILD_MEMBERS_CHUNK"}
    assert [r.outcome for r in fake.member_requests if r.all_members] == ["chunks", "rate_limited", "chunks"]


async def test_the_whole_list_needs_the_members_intent(discord_world):
    fake, session, _ = discord_world
    bot = await connect(fake, session, INTENTS_WITHOUT_MEMBERS)
    assert await bot.request(query="", limit=0, nonce="x") == [], "Discord sends nothing at all"
    assert fake.member_requests[-1].outcome == "ignored"


async def test_the_window_is_per_guild_and_shared_by_sessions(discord_world):
    fake, session, _ = discord_world
    first = await connect(fake, session, INTENTS_WITH_MEMBERS)
    await first.request(query="", limit=0)
    second = await connect(fake, session, INTENTS_WITH_MEMBERS)
    assert [f["t"] for f in await second.request(query="", limit=0)] == ["RATE_LIMITED"]
