"""Discord's real role bucket (10 calls per window per server, fixed) against the running bot: no 429 by design,
servers drained side by side, and a patron's webhook ahead of a refresh drain.

The fake enforces the real limits with a short window for speed (0.5 s instead of 10 s); the world tells the bot
the same window through its settings (ROLE_CALLS_PER_GUILD / ROLE_WINDOW_SECONDS), as a deployment would.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from bot.domain.guild_settings import GuildSettings
from bot.store import Store
from fakes.discord import RateLimits, RecordedCall, Window
from fakes.role_calls import role_call_member
from fakes.world import SEED, FakeWorld
from tests.e2e.polling import wait_for

WINDOW = 0.5
FAST_REAL_LIMITS = replace(RateLimits.real(), member_role=Window(10, WINDOW, fixed=True))
MEMBER_BASE = 781000000000000000
OTHER_GUILDS = [711000000000000001 + n for n in range(8)]
OTHER_GOLD = {guild_id: 731000000000000001 + n for n, guild_id in enumerate(OTHER_GUILDS)}


async def paced_world(
    tmp_path, *, patrons: int, guilds: int = 0, mapped_guilds: int | None = None, link_bob: bool = False
) -> FakeWorld:
    """A world on the real limits (short window) with `patrons` linked Gold patrons in the seeded server and in
    `guilds` more servers (of which the first `mapped_guilds` map Gold to a role), not started yet."""
    world = FakeWorld(tmp_path / "bot.sqlite3", rate_limits=FAST_REAL_LIMITS)
    await world.start(start_bot=False)
    extra = OTHER_GUILDS[:guilds]
    world.extra_environment["ALLOWED_GUILD_IDS"] = ",".join(str(g) for g in [SEED.guild_id, *extra])
    for guild_id in extra:
        guild = world.discord.add_guild(guild_id, name=f"Server {guild_id}", owner_id=SEED.owner_id)
        guild.add_role(OTHER_GOLD[guild_id], "Gold Patron", position=10)
    await world.seed_store()
    store = await Store.open(world.db_path)
    try:
        for n, guild_id in enumerate(extra):
            await store.save_settings(GuildSettings(guild_id=guild_id, enabled=True))
            if mapped_guilds is None or n < mapped_guilds:
                await store.map_tier_role(guild_id, SEED.gold_tier, OTHER_GOLD[guild_id])
        for n in range(patrons):
            discord_id, patreon_id = MEMBER_BASE + n, f"p-fan{n}"
            for guild_id in [SEED.guild_id, *extra]:
                world.discord.guilds[guild_id].add_member(discord_id, username=f"fan{n}")
            world.patreon.add_user(patreon_id, f"Fan {n}")
            world.patreon.set_membership(patreon_id, "active_patron", tier_ids=[SEED.gold_tier])
            await store.save_link(discord_id, patreon_id, None, "oauth")
        if link_bob:  # the seeded Bronze patron
            await store.save_link(SEED.bob, "p-bob", None, "oauth")
    finally:
        await store.close()
    return world


@pytest.fixture
async def worlds() -> AsyncIterator[list[FakeWorld]]:
    made: list[FakeWorld] = []
    yield made
    for world in made:
        await world.close()


async def test_a_drain_of_fifty_role_changes_in_one_server_earns_no_429(tmp_path, worlds):
    world = await paced_world(tmp_path, patrons=50)
    worlds.append(world)
    world.wait_for_startup_refresh = False
    await world.start_bot()
    await wait_for(lambda: len(world.accepted_role_calls(SEED.guild_id)) >= 50, timeout=60)
    await world.settle(timeout=30)
    assert world.discord.rate_limited_calls() == []
    assert all(SEED.gold_role in world.roles_of(MEMBER_BASE + n) for n in range(50))
    calls = world.accepted_role_calls(SEED.guild_id)
    spread = calls[-1].at - calls[0].at
    assert spread >= 4 * WINDOW, "50 calls at 10 per window take at least four more windows after the first"


async def test_two_servers_drain_side_by_side(tmp_path, worlds):
    """The second server's jobs arrive while the first has 100 queued: its calls start within about a window,
    not after the first server's jobs have left the in-flight slots (head-of-line blocking)."""
    world = await paced_world(tmp_path, patrons=100, guilds=1, mapped_guilds=0)
    worlds.append(world)
    world.wait_for_startup_refresh = False
    await world.start_bot()
    assert world.bot is not None and world.store is not None
    await wait_for(lambda: len(world.accepted_role_calls(SEED.guild_id)) >= 1, timeout=30)
    second = OTHER_GUILDS[0]
    await world.store.map_tier_role(second, SEED.gold_tier, OTHER_GOLD[second])
    queued_at = time.monotonic()
    await world.bot.services.jobs.enqueue_many([(second, MEMBER_BASE + n) for n in range(20)], "refresh")
    await wait_for(lambda: len(world.accepted_role_calls(second)) >= 20, timeout=60)
    await world.settle(timeout=60)
    first_calls, second_calls = world.accepted_role_calls(SEED.guild_id), world.accepted_role_calls(second)
    assert len(first_calls) == 100 and len(second_calls) == 20
    assert second_calls[0].at < first_calls[-1].at, "the second server did not wait for the first one's drain"
    ahead = [call for call in first_calls if queued_at <= call.at < second_calls[0].at]
    assert len(ahead) <= 10, f"{len(ahead)} calls of the first server went before the second's first"
    assert world.discord.rate_limited_calls() == []


async def test_a_webhook_during_a_refresh_drain_is_behind_at_most_one_window_of_calls(tmp_path, worlds):
    # 400 changes take 20 s at 10 per 0.5 s: long enough that even a loaded machine's webhook lands mid-drain.
    world = await paced_world(tmp_path, patrons=400, link_bob=True)
    worlds.append(world)
    world.wait_for_startup_refresh = False
    await world.start_bot()
    await wait_for(lambda: len(world.accepted_role_calls(SEED.guild_id)) >= 20, timeout=60)
    world.patreon.set_membership("p-bob", "active_patron", tier_ids=[SEED.gold_tier])
    sent_at = time.monotonic()
    status, _ = await world.send_webhook("members:pledge:update", "p-bob")
    assert 200 <= status < 300
    def bob_called_since_the_webhook() -> bool:
        return any(role_call_member(c) == SEED.bob and c.at > sent_at for c in world.accepted_role_calls(SEED.guild_id))

    await wait_for(bob_called_since_the_webhook)
    calls = [call for call in world.accepted_role_calls(SEED.guild_id) if call.at > sent_at]
    first_bob = next(n for n, call in enumerate(calls) if role_call_member(call) == SEED.bob)
    assert first_bob <= 10, f"the webhook's first call came after {first_bob} refresh calls"

    def refresh_calls_after_bobs() -> list[RecordedCall]:
        later = [call for call in world.accepted_role_calls(SEED.guild_id) if call.at > calls[first_bob].at]
        return [call for call in later if role_call_member(call) != SEED.bob]

    # The drain goes on after Bob's call (so the webhook really jumped a queue, not an empty one).
    await wait_for(refresh_calls_after_bobs, timeout=10)
    bob = SEED.bob
    await wait_for(lambda: SEED.gold_role in world.roles_of(bob) and SEED.bronze_role not in world.roles_of(bob))
    assert world.discord.rate_limited_calls() == []


async def test_many_servers_together_stay_under_the_global_limit(tmp_path, worlds):
    """Eight servers of 20 changes each may go at 20 per second each (160/s): the bot's global bucket holds all
    of them under Discord's 50 per second."""
    world = await paced_world(tmp_path, patrons=20, guilds=8)
    worlds.append(world)
    world.wait_for_startup_refresh = False
    await world.start_bot()
    every = [SEED.guild_id, *OTHER_GUILDS]
    await wait_for(lambda: sum(len(world.accepted_role_calls(g)) for g in every) >= 9 * 20, timeout=60)
    await world.settle(timeout=30)
    assert world.discord.rate_limited_calls() == []
    times = sorted(call.at for g in every for call in world.accepted_role_calls(g))
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert busiest <= 50


async def test_check_and_the_log_channel_say_how_long_a_large_change_takes(tmp_path, worlds):
    world = await paced_world(tmp_path, patrons=150)
    worlds.append(world)
    world.wait_for_startup_refresh = False
    await world.start_bot()
    await wait_for(lambda: len(world.accepted_role_calls(SEED.guild_id)) >= 1, timeout=30)
    interaction = await world.discord.invoke_slash(SEED.guild_id, SEED.owner_id, "patreon-admin", ["check"])
    await interaction.wait_response(timeout=10)

    def text() -> str:
        return "\n".join(r.get("content") or (r.get("data") or {}).get("content") or "" for r in interaction.responses)

    await wait_for(lambda: "rate-limited" in text(), timeout=10)
    assert "member(s) queued for role changes" in text() and "role per second per server" in text()
    assert "No call was rate-limited by Discord since the bot started." in text()

    def log_lines() -> list[str]:
        return [line for m in world.discord.messages(SEED.log_channel) for line in m["content"].split("\n")]

    def progress() -> list[str]:
        return [line for line in log_lines() if line.startswith("Role queue: ") and " of " in line]

    await wait_for(lambda: progress(), timeout=30)
    (start,) = progress()
    assert re.match(r"Role queue: \d of 1[45]\d member\(s\) done; .* to go at Discord's pace of about", start)
    await world.settle(timeout=60)
    await wait_for(lambda: "Role queue: all 150 member(s) done." in log_lines(), timeout=30)


async def test_a_429_that_happens_anyway_is_retried_and_counted_for_check(world):
    """Pacing can't see another bot process on the same token: a 429 still gets through, discord.py retries it,
    the role arrives, and `check` says how many there were."""
    world.discord.inject_rate_limit("PUT", rf"/members/{SEED.alice}/roles/\d+$", retry_after=0.05)
    await world.link(SEED.alice)
    await wait_for(lambda: SEED.gold_role in world.roles_of(SEED.alice))
    assert len(world.discord.rate_limited_calls()) == 1
    interaction = await world.discord.invoke_slash(SEED.guild_id, SEED.owner_id, "patreon-admin", ["check"])
    await interaction.wait_response(timeout=10)

    def text() -> str:
        return "\n".join(r.get("content") or (r.get("data") or {}).get("content") or "" for r in interaction.responses)

    await wait_for(lambda: "rate-limited" in text(), timeout=10)
    assert "⚠️ Discord rate-limited 1 call(s) since the bot started" in text()
