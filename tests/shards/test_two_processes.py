"""Two bot processes, one shard each, on one PostgreSQL database (issue 11, item 6).

What it shows: each process holds only its shard's servers; pledges that change (webhooks delivered to either
process, a refresh, a link whose OAuth callbacks land on the other shard's process, a member the refresh of the
other process forgets) get every role changed exactly once in every server (each accepted PUT/DELETE counted per
server, member and role); the link's log line reaches its server from the process that took the callback, and its
welcome DM goes out once, from the process holding the server; and when one process is
killed with SIGKILL, the work goes on as a sharded bot can: the survivor keeps serving its shard and the web
endpoints (webhooks included), the dead shard's role jobs wait in the database, and a replacement with the same
SHARD_IDS takes them over (the one the dead process had claimed once its lease ran out), with Patreon down, so
only the durable queue can have done it, not the replacement's start-up refresh. discord.py doesn't move a dead
process's shards to another process, and neither does the bot: a shard is one gateway session.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

from fakes.world import PATREON_IDS, SEED, free_port
from tests.convergence.trouble import PATREON_API
from tests.shards.sharded_world import ERIN, ERIN_PATREON, MEMBERS, BotChild, ShardedWorld

ALICE, BOB, CAROL, DAVE = (PATREON_IDS[MEMBERS[name]] for name in ("alice", "bob", "carol", "dave"))


def expect_roles(world: ShardedWorld, wanted: dict[int, set[str]], servers=None) -> None:
    for server in servers or world.servers:
        for discord_id, roles in wanted.items():
            assert world.roles(server, discord_id) == roles, (server, discord_id, world.roles(server, discord_id))


def expect_once(world: ShardedWorld) -> None:
    twice = {key: count for key, count in world.role_calls().items() if count > 1}
    assert twice == {}, f"role calls Discord accepted more than once: {twice}"


async def test_two_shards_change_every_role_once_and_survive_a_kill(tmp_path, postgres_server):
    started = time.monotonic()
    world = ShardedWorld(tmp_path, postgres_server)
    try:
        await world.start()
        first, second = world.bots
        held = [(await bot.call("GET", "/guilds"))["guilds"] for bot in world.bots]
        for shard, guilds in enumerate(held):
            assert guilds == sorted(str(s.guild_id) for s in world.servers if s.shard == shard), "only its shard's"

        # Both start-up refreshes ran (the campaign's lock lets one at a time), then each refresh again: nothing
        # more to do. Alice pays Gold and Bob Bronze, in all four servers.
        for bot in world.bots:
            await bot.refresh()
        for bot in world.bots:
            await bot.settle()
        alice, bob, carol, dave = (MEMBERS[name] for name in ("alice", "bob", "carol", "dave"))
        expect_roles(world, {alice: {"gold"}, bob: {"bronze"}, carol: set(), dave: set()})
        expect_once(world)

        # Webhooks, each to another process: Bob upgrades, Alice downgrades.
        world.pledge(BOB, SEED.gold_tier)
        await world.webhook_to(first, BOB)
        world.pledge(ALICE, SEED.bronze_tier)
        await world.webhook_to(second, ALICE)
        for bot in (first, second, first):
            await bot.settle()
        expect_roles(world, {alice: {"bronze"}, bob: {"gold"}})
        expect_once(world)

        # A link whose interaction process 1 answers and whose OAuth callbacks process 0 takes: the link is stored
        # by process 0, the role job goes through the database to process 1, which owns Erin's server.
        world.pledge(ERIN_PATREON, SEED.gold_tier)
        status, page = await world.link_erin()
        assert status == 200, page[:500]
        await second.settle()
        assert world.roles(world.erins_server, ERIN) == {"gold"}
        expect_once(world)
        # Process 0 posted the link's line to Erin's server's log channel, a server it doesn't hold (before: dropped).
        assert any(f"<@{ERIN}> linked Patreon account" in line for line in world.log_lines(world.erins_server)), (
            world.log_lines(world.erins_server)
        )
        # Her welcome DM (queued by process 1's reconcile of the handed-over job) went out once, from the process
        # holding her server: it names the server and her role (process 0 knows neither).
        await wait_until(lambda: world.dm_posts(ERIN), "Erin's welcome DM")
        assert await world.dm_states(ERIN) == [("welcome", "sent")]
        for bot in world.bots:
            await bot.settle()
        [welcome] = world.dm_posts(ERIN)
        assert "Server " in welcome and "Gold Patron" in welcome, welcome

        # A change no webhook told: each process's refresh plans its own servers.
        world.pledge(CAROL, SEED.bronze_tier)
        for bot in world.bots:
            await bot.refresh()
        for bot in world.bots:
            await bot.settle()
        expect_roles(world, {carol: {"bronze"}})
        expect_once(world)

        # Alice leaves the campaign. Only process 0 refreshes: its complete listing forgets her, and her roles in
        # process 1's servers go to process 1 as role jobs (process 1's own refresh has nothing stored to forget).
        world.fake.patreon.remove_membership(ALICE)
        assert (await first.refresh())["ok"]
        for bot in (first, second):
            await bot.settle()
        expect_roles(world, {alice: set(), bob: {"gold"}, carol: {"bronze"}})
        expect_once(world)

        # Process 1 dies holding a claim: Dave's role call in its server is in Discord's hands when it is killed.
        theirs = [s for s in world.servers if s.shard == 1]
        hold = world.fake.discord.hold_next("PUT", rf"^/guilds/{theirs[0].guild_id}/members/{dave}/roles/", seconds=60)
        world.pledge(DAVE, SEED.gold_tier)
        await world.webhook_to(first, DAVE)
        await wait_until(lambda: hold.arrived >= 1, "process 1's role call for Dave reaching Discord")
        await second.kill()
        hold.release()

        # The survivor serves its shard and the web endpoints; the dead shard's work waits in the database.
        world.pledge(CAROL, SEED.gold_tier)
        await world.webhook_to(first, CAROL)
        counts = await first.settle()
        ours = [s for s in world.servers if s.shard == 0]
        expect_roles(world, {carol: {"gold"}, dave: {"gold"}}, servers=ours)
        expect_roles(world, {carol: {"bronze"}}, servers=theirs)
        assert counts["pending_jobs"] == 0 and counts["pending_jobs_elsewhere"] >= len(theirs), counts
        store = await world.fake.open_store()
        try:
            waiting = {job.key: job for job in await store.pending_role_jobs()}
        finally:
            await store.close()
        assert all((server.guild_id, carol) in waiting for server in theirs), waiting
        held_by_the_dead = waiting[(theirs[0].guild_id, dave)].claimed_by
        assert held_by_the_dead is not None, "the killed process's claim holds until its lease runs out"
        async with aiohttp.ClientSession() as http, http.get(f"{first.url}/healthz") as response:
            assert response.status == 200

        # A replacement for shard 1, with Patreon down: its start-up refresh can't list anyone, so only the queue
        # left in the database (and the claim the dead process held, free once its lease ran out) can finish it.
        world.fake.patreon.fail_next(PATREON_API, status=503, count=10**9)
        await second.start()
        assert second.startup_refresh is not None and second.startup_refresh["ok"] is False
        counts = await second.settle()
        assert counts["pending_jobs"] == 0 and counts["failed_jobs"] == 0, counts
        expect_roles(world, {alice: set(), bob: {"gold"}, carol: {"gold"}, dave: {"gold"}})
        assert world.roles(world.erins_server, ERIN) == {"gold"}
        expect_once(world)
    finally:
        await world.close()
        print(f"two-process test: {time.monotonic() - started:.1f} s")


async def wait_until(condition, what: str, timeout: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"{what} did not happen in {timeout:.0f} s")
        await asyncio.sleep(0.02)


async def test_a_process_for_a_running_shard_or_another_shard_count_refuses_to_start(tmp_path, postgres_server):
    """Two processes on one shard would both answer its servers' commands and events, and two shard counts would
    give some servers two owners: the process started second stops, the running ones go on."""
    world = ShardedWorld(tmp_path, postgres_server)
    try:
        await world.start()
        second = world.bots[1]
        intruder = BotChild(tmp_path, "intruder", second.environment | {
            "PORT": str(free_port()), "BOT_SHARD_LOCK_WAIT": "1",
        }, 0)
        try:
            assert await intruder.run_until_exit() == 2
            assert "SHARD_IDS 1: another process runs that shard of SHARD_COUNT 2" in intruder.log_tail()
        finally:
            await intruder.close()
        other_layout = BotChild(tmp_path, "other-layout", second.environment | {
            "PORT": str(free_port()), "SHARD_COUNT": "3", "SHARD_IDS": "2",
        }, 0)
        try:  # shard 2 of 3 is nobody's, but 3 shards split the servers otherwise than the running 2 do
            assert await other_layout.run_until_exit() == 2
            assert "SHARD_COUNT 3: another process on this database runs with SHARD_COUNT 2" in other_layout.log_tail()
        finally:
            await other_layout.close()
        assert (await second.call("GET", "/guilds"))["shard_ids"] == [1], "the running one goes on"
    finally:
        await world.close()
