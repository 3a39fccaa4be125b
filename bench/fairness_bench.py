"""Benchmark the role queue's fairness on Discord's real member-role bucket (10 calls per window per server, fixed).

    python -m bench.fairness_bench [--window 10] [--refresh-calls 1000] [--webhooks 100] [--second-calls 500]

Two runs, each a whole loopback world in this process (fakes/world.py: the real bot, discord.py, fake Discord on
`RateLimits.real()`, fake Patreon), because the bench measures pacing, not CPU:

1. **A webhook during a refresh drain.** `--refresh-calls` linked Gold patrons lack their role, so the start-up
   refresh queues one PUT each; `--webhooks` other patrons hold Bronze (already right). While the drain runs, one
   of them moves to Gold about every window (at a random phase of it) and Patreon sends the signed webhook. Per
   webhook: from just before its POST to fake Discord's record of that member's first role call (p50/p99/max),
   and how many refresh calls went first.
2. **Two servers draining side by side.** `--second-calls` patrons in two servers, each needing one PUT in each.
   Per server: when its first call came, and its bucket use (calls per second from its first call to its last,
   as a share of 10 per window).

The real window is 10 s, so a 1,000-call drain takes about 17 minutes. `--window 1` scales the fake's window
(and, through ROLE_WINDOW_SECONDS, the bot's pacing) down tenfold; every figure in windows stays comparable.
Last line: `RESULT http_429=... webhook_first_call_p99_ms=... bucket_use_pct=...`.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench.bot_runner import add_log_option, setup_logging
from bench.webhook_bench import percentile
from bot.domain.guild_settings import GuildSettings
from bot.store import Store
from fakes.discord import RateLimits, RecordedCall, Window
from fakes.role_calls import role_call_member
from fakes.world import SEED, FakeWorld

MEMBER_BASE = 782000000000000000
WEBHOOK_BASE = 783000000000000000
SECOND_GUILD, SECOND_GOLD = 712000000000000001, 732000000000000001
LIMIT = 10


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=float, default=10.0, help="the member-role window in seconds (real: 10)")
    parser.add_argument("--refresh-calls", type=int, default=1000, help="role calls the refresh drain needs")
    parser.add_argument("--webhooks", type=int, default=100, help="webhooks sent during the drain, one per window")
    parser.add_argument("--second-calls", type=int, default=500, help="role calls per server in the two-server run")
    add_log_option(parser)
    return parser.parse_args(argv)


def bucket_use(calls: list[RecordedCall], window: float) -> float:
    """Calls per second over the drain (first call to last) as a share of the bucket's 10 per window."""
    if len(calls) < 2:
        return 0.0
    return (len(calls) - 1) / (calls[-1].at - calls[0].at) / (LIMIT / window)


async def seeded_world(db_path: Path, window: float, guilds: list[int]) -> FakeWorld:
    world = FakeWorld(db_path, rate_limits=replace(RateLimits.real(), member_role=Window(LIMIT, window, fixed=True)))
    world.wait_for_startup_refresh = False
    await world.start(start_bot=False)
    world.extra_environment["ALLOWED_GUILD_IDS"] = ",".join(str(g) for g in [SEED.guild_id, *guilds])
    world.extra_environment["REFRESH_INTERVAL_MINUTES"] = "1440"
    for guild_id in guilds:
        world.discord.add_guild(guild_id, name="Second Server", owner_id=SEED.owner_id).add_role(
            SECOND_GOLD, "Gold Patron", position=10
        )
    await world.seed_store()
    return world


async def add_patrons(
    world: FakeWorld, base: int, count: int, guilds: list[int], *, bronze_held: bool = False
) -> list[int]:
    """Linked patrons: Gold lacking the role, or (`bronze_held`) Bronze already holding theirs."""
    store = await Store.open(world.db_path)
    ids = [base + n for n in range(count)]
    try:
        for guild_id in guilds:
            if guild_id != SEED.guild_id:
                await store.save_settings(GuildSettings(guild_id=guild_id, enabled=True))
                await store.map_tier_role(guild_id, SEED.gold_tier, SECOND_GOLD)
        for discord_id in ids:
            patreon_id = f"p-{discord_id}"
            roles = [SEED.bronze_role] if bronze_held else []
            for guild_id in guilds:
                world.discord.guilds[guild_id].add_member(discord_id, username=f"u{discord_id}", roles=roles)
            world.patreon.add_user(patreon_id, f"Patron {discord_id}")
            world.patreon.set_membership(
                patreon_id, "active_patron", tier_ids=[SEED.bronze_tier if bronze_held else SEED.gold_tier]
            )
            await store.save_link(discord_id, patreon_id, None, "oauth")
            if bronze_held:
                await store.record_grants(SEED.guild_id, discord_id, [SEED.bronze_role], "bench seed")
    finally:
        await store.close()
    return ids


async def webhook_during_drain(args: argparse.Namespace, tmp: Path) -> dict[str, float]:
    world = await seeded_world(tmp / "drain.sqlite3", args.window, [])
    try:
        await add_patrons(world, MEMBER_BASE, args.refresh_calls, [SEED.guild_id])
        hooked = await add_patrons(world, WEBHOOK_BASE, args.webhooks, [SEED.guild_id], bronze_held=True)
        print(f"run 1: {args.refresh_calls:,} refresh role calls queued at start-up, {args.webhooks} webhooks during")
        await world.start_bot()
        assert world.bot is not None
        sent: dict[int, float] = {}
        rng = random.Random(9)
        for discord_id in hooked:
            if len(world.accepted_role_calls(SEED.guild_id)) >= args.refresh_calls:
                print("  (the drain ended before every webhook was sent: raise --refresh-calls)")
                break
            world.patreon.set_membership(f"p-{discord_id}", "active_patron", tier_ids=[SEED.gold_tier])
            sent[discord_id] = time.monotonic()
            await world.send_webhook("members:pledge:update", f"p-{discord_id}")
            await asyncio.sleep(args.window * (0.5 + rng.random()))  # any phase of the window, one per window
        await world.bot.services.scheduler.first_run_done.wait()
        await world.settle(timeout=args.window * (args.refresh_calls + 3 * args.webhooks) / LIMIT + 120)
        calls = world.accepted_role_calls(SEED.guild_id)
        latencies, ahead = [], []
        for discord_id, at in sent.items():
            later = [call for call in calls if call.at >= at]
            first = next((n for n, call in enumerate(later) if role_call_member(call) == discord_id), None)
            if first is not None:
                latencies.append(later[first].at - at)
                ahead.append(sum(1 for call in later[:first] if role_call_member(call) not in sent))
        latencies.sort()
        wrong = sum(1 for d in hooked if world.roles_of(d) & {SEED.gold_role, SEED.bronze_role} != {SEED.gold_role})
        wrong += sum(1 for n in range(args.refresh_calls) if SEED.gold_role not in world.roles_of(MEMBER_BASE + n))
        figures = {
            "http_429": float(len(world.discord.rate_limited_calls())),
            "p50": percentile(latencies, 0.5),
            "p99": percentile(latencies, 0.99),
            "max": percentile(latencies, 1.0),
            "ahead_max": float(max(ahead, default=0)),
            "use": bucket_use(calls, args.window),
            "role_calls": float(len(calls)),
            "expected": float(args.refresh_calls + 2 * len(sent)),
            "wrong": float(wrong),
            "measured": float(len(latencies)),
        }
    finally:
        await world.close()
    print(f"  webhooks measured: {figures['measured']:.0f} of {len(sent)}")
    for label in ("p50", "p99", "max"):
        windows = figures[label] / args.window
        print(f"  webhook→first role call {label}: {figures[label] * 1000:8.0f} ms  ({windows:.2f} windows)")
    print(f"  refresh calls ahead of a webhook's first call: at most {figures['ahead_max']:.0f} (one window: {LIMIT})")
    print(f"  bucket use over the drain: {figures['use'] * 100:.1f}%  ({figures['role_calls']:.0f} role calls)")
    print(f"  429 answers: {figures['http_429']:.0f}; roles wrong afterwards: {figures['wrong']:.0f}")
    return figures


async def two_servers(args: argparse.Namespace, tmp: Path) -> dict[str, float]:
    world = await seeded_world(tmp / "two.sqlite3", args.window, [SECOND_GUILD])
    try:
        await add_patrons(world, MEMBER_BASE, args.second_calls, [SEED.guild_id, SECOND_GUILD])
        print(f"\nrun 2: two servers, {args.second_calls:,} role calls each, queued at start-up")
        started = time.monotonic()
        await world.start_bot()
        assert world.bot is not None
        await world.bot.services.scheduler.first_run_done.wait()
        await world.settle(timeout=args.window * args.second_calls / LIMIT + 120)
        first, second = world.accepted_role_calls(SEED.guild_id), world.accepted_role_calls(SECOND_GUILD)
        figures = {
            "http_429": float(len(world.discord.rate_limited_calls())),
            "use_first": bucket_use(first, args.window),
            "use_second": bucket_use(second, args.window),
            "calls": float(len(first) + len(second)),
        }
    finally:
        await world.close()
    for name, calls, key in (("first", first, "use_first"), ("second", second, "use_second")):
        print(
            f"  {name} server: first call {calls[0].at - started:.1f}s after the bot started, last "
            f"{calls[-1].at - started:.1f}s; {len(calls):,} calls; bucket use {figures[key] * 100:.1f}%"
        )
    print(f"  429 answers: {figures['http_429']:.0f}")
    return figures


async def run(args: argparse.Namespace) -> int:
    print(f"member-role bucket: {LIMIT} per {args.window:g} s per server (fixed window; Discord's is 10 s)\n")
    with tempfile.TemporaryDirectory(prefix="fairness-bench-") as tmp:
        drain = await webhook_during_drain(args, Path(tmp))
        pair = await two_servers(args, Path(tmp))
    use = min(drain["use"], pair["use_first"], pair["use_second"])
    http_429 = drain["http_429"] + pair["http_429"]
    print(
        f"RESULT http_429={http_429:.0f} webhook_first_call_p99_ms={drain['p99'] * 1000:.0f} "
        f"bucket_use_pct={use * 100:.1f} window_s={args.window:g} role_calls={drain['role_calls'] + pair['calls']:.0f} "
        f"role_calls_expected={drain['expected'] + 2 * args.second_calls:.0f} wrong={drain['wrong']:.0f}"
    )
    return 0 if http_429 == 0 and drain["wrong"] == 0 else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_level)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
