"""The fake gateway shards as Discord does (fakes/discord/gateway.py): IDENTIFY's `shard: [id, count]` decides
which servers and events a session gets, a bad shard is closed with 4010, a session past 2,500 servers with 4011,
and GET /gateway/bot recommends a shard count.

A raw websocket client speaks the protocol, so discord.py's own shard handling can't hide what the fake sends.
"""

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from fakes.discord import FakeDiscord
from fakes.discord.gateway import MAX_GUILDS_PER_SESSION

TOKEN = "shard-token"
INTENTS = (1 << 0) | (1 << 1)  # GUILDS | GUILD_MEMBERS
BASE = (810000000000000000 >> 22) << 22


def guild_on(shard: int, n: int, count: int = 2) -> int:
    """The n-th server id that Discord's formula puts on `shard` of `count`."""
    first = BASE + ((shard - (BASE >> 22)) % count << 22)
    return first + (n * count << 22) + 7


@pytest.fixture
async def fake():
    discord = FakeDiscord(bot_token=TOKEN)
    await discord.start()
    try:
        yield discord
    finally:
        await discord.close()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


class Session:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def next(self) -> dict[str, Any]:
        message = await asyncio.wait_for(self.ws.receive(), timeout=5)
        assert message.type is aiohttp.WSMsgType.TEXT, f"closed: {message}"
        return json.loads(message.data)

    async def send(self, op: int, data: Any) -> None:
        await self.ws.send_str(json.dumps({"op": op, "d": data}))

    async def until_ack(self) -> list[dict[str, Any]]:
        """Every frame sent before the answer to a heartbeat sent now (nothing later can sneak in)."""
        await self.send(1, None)
        frames = []
        while (frame := await self.next())["op"] != 11:
            frames.append(frame)
        return frames


async def identify(fake: FakeDiscord, http: aiohttp.ClientSession, shard: object) -> Session:
    session = Session(await http.ws_connect(fake.gateway_url))
    assert (await session.next())["op"] == 10
    payload: dict[str, Any] = {"token": TOKEN, "intents": INTENTS, "properties": {}}
    if shard is not None:
        payload["shard"] = shard
    await session.send(2, payload)
    return session


def created(frames: list[dict[str, Any]]) -> list[int]:
    return [int(f["d"]["id"]) for f in frames if f.get("t") == "GUILD_CREATE"]


async def test_each_shard_gets_only_its_servers_and_their_events(fake, http):
    zero = [guild_on(0, n) for n in range(3)]
    one = [guild_on(1, n) for n in range(2)]
    for guild_id in zero + one:
        fake.add_guild(guild_id)
    assert all((g >> 22) % 2 == 0 for g in zero) and all((g >> 22) % 2 == 1 for g in one)
    first, second = await identify(fake, http, [0, 2]), await identify(fake, http, [1, 2])
    first_frames, second_frames = await first.until_ack(), await second.until_ack()
    ready = first_frames[0]
    assert ready["t"] == "READY" and ready["d"]["shard"] == [0, 2]
    assert sorted(int(g["id"]) for g in ready["d"]["guilds"]) == sorted(zero)
    assert sorted(created(first_frames)) == sorted(zero)
    assert sorted(int(g["id"]) for g in second_frames[0]["d"]["guilds"]) == sorted(one)
    assert sorted(created(second_frames)) == sorted(one)

    fake.guild(one[0]).add_member(830000000000000001, username="newcomer")
    late = guild_on(0, 9)
    fake.add_guild(late)  # joined while connected: GUILD_CREATE to its shard only
    fake.dispatch("USER_UPDATE", fake.bot_user_payload())  # an event of no server
    first_events, second_events = await first.until_ack(), await second.until_ack()
    assert [f["t"] for f in second_events] == ["GUILD_MEMBER_ADD"]
    assert int(second_events[0]["d"]["guild_id"]) == one[0]
    # Events without a guild_id (DMs, the bot's own user) only to shard 0, as Discord documents.
    assert [f["t"] for f in first_events] == ["GUILD_CREATE", "USER_UPDATE"]
    assert created(first_events) == [late]
    assert fake._gateway.identified_shards == [(0, 2), (1, 2)]


async def test_member_requests_for_another_shards_server_get_nothing(fake, http):
    theirs = guild_on(1, 0)
    fake.add_guild(theirs).add_member(830000000000000002, username="someone")
    session = await identify(fake, http, [0, 2])
    await session.until_ack()
    await session.send(8, {"guild_id": str(theirs), "user_ids": ["830000000000000002"], "limit": 0})
    assert await session.until_ack() == []


async def test_an_interaction_goes_to_its_servers_shard(fake, http):
    ours, theirs = guild_on(0, 0), guild_on(1, 0)
    for guild_id in (ours, theirs):
        fake.add_guild(guild_id).add_member(830000000000000003, username="clicker")
    first, second = await identify(fake, http, [0, 2]), await identify(fake, http, [1, 2])
    await first.until_ack()
    await second.until_ack()
    fake._gateway.dispatch_interaction({"id": "5", "guild_id": str(theirs), "type": 2})
    assert [f["t"] for f in await second.until_ack()] == ["INTERACTION_CREATE"]
    assert await first.until_ack() == []
    fake._gateway.dispatch_interaction({"id": "6", "guild_id": str(ours), "type": 2})
    assert [f["t"] for f in await first.until_ack()] == ["INTERACTION_CREATE"]
    assert await second.until_ack() == []


@pytest.mark.parametrize("shard", [[2, 2], [5, 3], [0, 0], [-1, 2], [0], "0,2", [0.0, 2]])
async def test_an_invalid_shard_is_closed_with_4010(fake, http, shard):
    fake.add_guild(guild_on(0, 0))
    session = await identify(fake, http, shard)
    message = await asyncio.wait_for(session.ws.receive(), timeout=5)
    assert message.type is aiohttp.WSMsgType.CLOSE
    assert (message.data, message.extra) == (4010, "Invalid shard.")
    assert fake.identify_count == 0


async def test_more_than_2500_servers_need_sharding(fake, http):
    for n in range(MAX_GUILDS_PER_SESSION + 1):
        fake.add_guild(guild_on(n % 2, n // 2))
    unsharded = await identify(fake, http, None)
    message = await asyncio.wait_for(unsharded.ws.receive(), timeout=5)
    assert (message.type, message.data, message.extra) == (aiohttp.WSMsgType.CLOSE, 4011, "Sharding required.")
    assert fake.identify_count == 0
    one_of_two = await identify(fake, http, [1, 2])  # 1,250 servers: allowed
    ready = await one_of_two.next()
    assert ready["t"] == "READY" and len(ready["d"]["guilds"]) == (MAX_GUILDS_PER_SESSION + 1) // 2


@pytest.mark.parametrize(("servers", "shards"), [(0, 1), (1, 1), (1000, 1), (1001, 2), (2501, 3)])
async def test_gateway_bot_recommends_a_shard_per_thousand_servers(fake, http, servers, shards):
    for n in range(servers):
        fake.add_guild(guild_on(0, n, count=1))
    headers = {"Authorization": f"Bot {TOKEN}"}
    async with http.get(f"{fake.base_url}/api/v10/gateway/bot", headers=headers) as response:
        body = await response.json()
    assert body["shards"] == shards and body["url"] == fake.gateway_url
