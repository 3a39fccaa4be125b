"""A decision someone waits for never waits out the log channel (the demo's comp step, which stalled behind it).

Discord lets a bot post about five messages per five seconds to one channel, and a slow Discord can hold one post
for seconds. The comp, the link page and the other commands post their log lines inline; before, they awaited each
post, so a full log-channel bucket held the admin's answer and the role itself (the demo's comp waited out 5 s and
the demo gave up). The fake holds the log channel's posts here; the decision lands meanwhile, and every line is
posted once Discord lets it through, in order.
"""

from __future__ import annotations

import asyncio

from bot.sync.channel_log import ChannelLog
from fakes.world import SEED
from tests.e2e.polling import wait_for

LOG_POSTS = rf"^/channels/{SEED.log_channel}/messages$"


def log_lines(world) -> list[str]:
    return [message["content"] for message in world.discord.messages(SEED.log_channel)]


async def test_a_comp_is_answered_and_given_while_the_log_channel_is_held(world):
    held = world.discord.hold_next("POST", LOG_POSTS, seconds=60, count=10)
    options = {"member": SEED.dave, "role": SEED.bronze_role, "days": 30, "reason": "stream moderator"}
    comp = await world.discord.invoke_slash(SEED.guild_id, SEED.owner_id, "patreon-admin", ["comp"], options=options)
    await wait_for(lambda: "Comped @Bronze Patron" in (comp.content or ""), timeout=15)
    assert SEED.bronze_role in world.roles_of(SEED.dave)
    assert held.held >= 1 and not any("a comp of" in line for line in log_lines(world)), "the line is still held"
    held.release()
    await wait_for(lambda: any("Gave @Bronze Patron" in line for line in log_lines(world)), timeout=15)
    lines = log_lines(world)
    comp_line = next(i for i, line in enumerate(lines) if "gave a comp of @Bronze Patron" in line)
    gave_line = next(i for i, line in enumerate(lines) if "Gave @Bronze Patron" in line)
    assert comp_line < gave_line, "the lines keep the order of the decisions"
    assert sum("gave a comp of" in line for line in lines) == 1


async def test_a_link_page_comes_back_while_the_log_channel_is_held(world):
    held = world.discord.hold_next("POST", LOG_POSTS, seconds=60, count=10)
    async with asyncio.timeout(15):  # before: the page waited for the held posts (60 s)
        status, _html = await world.link(SEED.alice)
    assert status == 200 and SEED.gold_role in world.roles_of(SEED.alice)
    held.release()
    await wait_for(lambda: any("linked Patreon account Alice" in line for line in log_lines(world)), timeout=15)


async def test_inline_lines_are_posted_in_order_and_close_waits_for_them():
    posted: list[str] = []
    gate = asyncio.Event()

    async def post(_channel: int, text: str) -> None:
        await gate.wait()
        posted.append(text)

    channel_log = ChannelLog(post, inline_wait=0.0)
    for number in range(3):
        await channel_log.post_soon(1, f"line {number}")
    assert posted == []
    gate.set()
    await channel_log.close()
    assert posted == ["line 0", "line 1", "line 2"]
