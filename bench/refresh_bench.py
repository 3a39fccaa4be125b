"""Benchmark one full periodic refresh of a big campaign through the bot's real code path.

    python -m bench.refresh_bench [--members 100000] [--changed-percent 1]

The fakes (Patreon and Discord) run in a child process (`bench.fakes_process`), the real bot in this one:
PatronBot with its cogs and services, the real discord.py client on the fake gateway and REST API. N patrons are
seeded, each linked to a member of one guild, tiers mapped to roles, and every member's roles and the bot's grant
ledger set to what the policy gives, so the bot's start-up refresh finds nothing to do. Then `--changed-percent`
of the memberships change on fake Patreon and one refresh runs: `services.refresh.run()` (list every member in
pages of 1000, store, plan, enqueue) and the durable role-job queue drains through discord.py to fake Discord.

Printed: Patreon calls (the fake's log and the client's request_count) against ceil(N/1000); Discord role calls
(PATCH/PUT/DELETE on members, from the fake's log) against the members whose roles differ (the policy over a
fresh listing vs the roles fake Discord holds); wall and CPU seconds and RSS of this process, the bot alone.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from bench.bot_runner import (
    GcTimer,
    LoopStalls,
    PhaseTimer,
    Span,
    add_log_option,
    disk_written_mb,
    peak_rss_mb,
    ratio,
    rss_mb,
    setup_logging,
    start_world,
)
from bench.fakes_process import FakesProcess
from bench.seeding import role_call_user
from bot.patreon import client as patreon_client
from bot.patreon.budget import TOKEN_WINDOW_SECONDS
from bot.sync.batch_plan import RefreshPlanner

MEMBERS_PATH = "/api/oauth2/v2/campaigns/"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=100_000, help="patrons and guild members to seed (N)")
    parser.add_argument("--changed-percent", type=float, default=1.0, help="memberships changed before the refresh")
    parser.add_argument("--seed", type=int, default=1, help="random seed for which memberships change")
    parser.add_argument(
        "--full", action="store_true", help="measure a full re-plan (as on sync, daily) instead of a scheduled one"
    )
    parser.add_argument(
        "--profile", metavar="PATH", help="write a pyinstrument profile of the measured refresh to PATH"
    )
    parser.add_argument(
        "--no-drain", action="store_true", help="stop after the refresh (its CPU split only; no role calls checked)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="refreshes to measure, each after its own changes (with --no-drain; the median is the RESULT)",
    )
    parser.add_argument(
        "--right-after-start-up",
        action="store_true",
        help="measure at once, while the start-up refresh's pages still fill Patreon's per-token window (every page "
        "then waits its turn), instead of when a scheduled refresh comes: the window clear",
    )
    add_log_option(parser)
    args = parser.parse_args(argv)
    if args.repeat > 1 and not args.no_drain:
        parser.error("--repeat needs --no-drain: the drain checks one refresh's role calls")
    return args


async def run(args: argparse.Namespace) -> int:
    fakes = FakesProcess().start()
    with tempfile.TemporaryDirectory(prefix="refresh-bench-") as tmp:
        try:
            return await measure(args, fakes, Path(tmp) / "bot.sqlite3")
        finally:
            fakes.stop()


async def measure(args: argparse.Namespace, fakes: FakesProcess, db_path: Path) -> int:
    n = args.members
    print(f"seeding {n:,} patrons, each linked to a member of one guild (fakes in a child process) ...", flush=True)
    bot, seed, startup_seconds = await start_world(fakes, n, db_path)
    try:
        guild_id = seed["guild_id"]
        cached, chunked = bot.cached_members(guild_id)
        warm = bot.services.refresh.last_report
        assert warm is not None
        print(f"  seeded in {seed['seconds']:.1f}s; bot ready in {startup_seconds:.1f}s")
        print(
            f"  discord.py cache: {cached:,} members, chunked={chunked} (GUILD_CREATE without members, then op-8 "
            "REQUEST_GUILD_MEMBERS answered in chunks of 1000, as Discord does for large guilds)"
        )
        print(
            f"  warm-up (start-up) refresh: ok={warm.ok}, {warm.members_listed:,} listed, "
            f"{warm.roles_differ} member(s) differ, {warm.jobs_queued} job(s) (0 and 0: the seed is in sync)"
        )

        client, phases = bot.services.patreon, PhaseTimer()
        phases.wrap(client, "_request", "fetch pages (HTTP, budget)")
        phases.wrap_sync(patreon_client, "_listing_page", "read pages (decode, hash)")
        for name in ("listing_hashes", "listing_looks", "save_membership_page", "delete_memberships_except"):
            phases.wrap(bot.services.store, name)
        phases.wrap(bot.services.jobs, "enqueue_many")
        phases.wrap(RefreshPlanner, "plan_page", "plan (pages)")
        phases.wrap(RefreshPlanner, "plan_members", "plan (not on a page)")
        # The listing takes over a minute under Patreon's 100 requests a minute per token (80 for refresh work): the
        # role-job worker waits until the last measured refresh is done, so the CPU printed is the refreshes' own.
        await bot.services.jobs.stop()
        cpu_figures: list[float] = []
        for round_ in range(1, args.repeat + 1):
            if args.repeat > 1:
                print(f"\nround {round_} of {args.repeat}")
            if not args.right_after_start_up:
                # A scheduled refresh comes REFRESH_INTERVAL_MINUTES (15) after the last, when the last one's pages
                # have left Patreon's per-token window; measured at once, each of the 100 pages would wait its turn.
                print(f"  waiting {TOKEN_WINDOW_SECONDS + 1:.0f}s for Patreon's per-token window to clear, as a "
                      "scheduled refresh finds it", flush=True)  # fmt: skip
                idle = Span.start()
                await asyncio.sleep(TOKEN_WINDOW_SECONDS + 1)
                waited = idle.stop()
                print(f"  the bot over the wait: CPU {waited.cpu:.2f}s (the event loop's {waited.loop_cpu:.2f}s; "
                      "after start-up, the daily patron count most of it)", flush=True)  # fmt: skip
            change = await fakes.call("change", percent=args.changed_percent, rng_seed=args.seed + round_ - 1)
            kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(change["kinds"].items()))
            print(f"changed {change['changed']:,} memberships on fake Patreon ({kinds})")
            differ = change["differ"]
            print(f"  members whose roles now differ (policy over a fresh listing vs fake Discord): {differ:,}")

            await fakes.call("mark")
            phases.spans.clear()
            if args.full:
                bot.services.refresh.request_full_plan(guild_id)
            requests_before, rss_before, written_before = client.request_count, rss_mb(), disk_written_mb()
            stalls = LoopStalls().start()
            profiler = _profiler(args.profile)
            collector = GcTimer().start()
            span = Span.start()
            report = await bot.services.refresh.run("bench")
            listed = span.stop()
            collector.stop()
            if profiler is not None:
                profiler.stop()
                _write_profile(args.profile, profiler)
            cpu_figures.append(listed.cpu)
            print(
                f"  refresh done: CPU {listed.cpu:.2f}s, wall {listed.wall:.2f}s, {report.members_planned:,} planned, "
                f"{report.jobs_queued:,} job(s); RSS {rss_mb():.0f} MB, peak so far {peak_rss_mb():.0f} MB; the "
                f"garbage collector {collector.cpu:.2f}s CPU in {collector.collections} collections; disk writes "
                f"{disk_written_mb() - written_before:.0f} MB",
                flush=True,
            )
            print(
                f"      CPU by thread: the event loop's {listed.loop_cpu:.2f}s, the others' (aiosqlite) "
                f"{listed.cpu - listed.loop_cpu:.2f}s"
            )
            if args.no_drain or round_ < args.repeat:
                _print_split(listed, phases)
        bot.services.jobs.start()
        if args.no_drain:
            figures = ", ".join(f"{cpu:.2f}" for cpu in cpu_figures)
            if args.repeat > 1:
                print(f"\nCPU of the {args.repeat} refreshes: {figures} s; median {statistics.median(cpu_figures):.2f}")
            print(
                f"RESULT plan_cpu_s={statistics.median(cpu_figures):.2f} plan_cpu_min_s={min(cpu_figures):.2f} "
                f"plan_cpu_max_s={max(cpu_figures):.2f} gc_cpu_s={collector.cpu:.2f} "
                f"peak_rss_mb={peak_rss_mb():.0f} members_planned={report.members_planned} drained=0"
            )
            return 0 if report.ok else 1
        await bot.settle(timeout=3600)
        total = span.stop()
        stalls.stop()
        rss_after, written = rss_mb(), disk_written_mb() - written_before

        calls = await fakes.call("calls_since_mark")
        verify = await fakes.call("verify")
        requests = client.request_count - requests_before
    finally:
        await bot.close()
    fakes_usage = await fakes.call("rusage")

    patreon_paths = Counter(_kind(path) for _method, path, _status in calls["patreon"])
    role_calls = [(m, p, s) for m, p, s in calls["discord"] if role_call_user(m, p) is not None]
    role_members = {role_call_user(m, p) for m, p, _s in role_calls}
    other_discord = Counter(f"{m} {p}" for m, p, _s in calls["discord"] if role_call_user(m, p) is None)
    failed = [c for c in role_calls if c[2] >= 400]
    live = n - change["kinds"].get("deleted", 0)
    pages = math.ceil(live / 1000)

    print(f"\nmeasured refresh ({'full re-plan' if args.full else 'scheduled'}): ok={report.ok}; {report.detail}")
    print(f"  members planned: {report.members_planned:,} (in {report.full_replan_guilds} server(s) every member)")
    expected_pages = f"expected ceil(N/1000), N = {live:,} members left"
    print(f"  Patreon calls (fake's log):        {ratio(len(calls['patreon']), pages)}  ({expected_pages})")
    print(f"  Patreon calls (client count):      {ratio(requests, pages)}")
    for kind, count in sorted(patreon_paths.items()):
        print(f"      {count:>6} {kind}")
    print("      fixed calls expected: none (campaign id configured, tiers stored, creator token fresh,")
    print("      no patron tokens to refresh)")
    differ = change["differ"]
    changes = change["role_changes"]
    print(f"  Discord role calls:                {ratio(len(role_calls), changes)}  (roles to change: one atomic")
    print("      PUT/DELETE per changed role, so a hand-given role is never overwritten from a stale cache)")
    print(f"  members called:                    {ratio(len(role_members), differ)}  (members whose roles differ)")
    print(f"      refused/failed calls: {len(failed)}")
    print(f"      bot's own count: roles_differ={report.roles_differ}, jobs_queued={report.jobs_queued}")
    for call, count in sorted(other_discord.items()):
        print(f"      other Discord call: {count} x {call}")
    print(f"  roles wrong afterwards: {verify['mismatches']} of {verify['checked']:,} members")
    print(f"  wall seconds: {total.wall:.2f}  (listing+store+plan+enqueue {listed.wall:.2f}, queue drain "
          f"{total.wall - listed.wall:.2f})")  # fmt: skip
    print(f"  CPU seconds (bot process): {total.cpu:.2f}  (listing+store+plan+enqueue {listed.cpu:.2f})")
    _print_split(listed, phases)
    print(f"      of it the garbage collector      CPU {collector.cpu:6.2f}  ({collector.collections} collections)")
    print(f"  event loop: longest stall {stalls.longest:.2f}s; {stalls.over_100ms:.1f}s in stalls over 0.1s")
    print(f"  disk writes by the bot process: {written:.0f} MB ({report.snapshots_saved:,} snapshots rewritten)")
    print(f"  RSS of the bot process: {rss_before:.0f} MB before, {rss_after:.0f} MB after; peak (whole run, "
          f"incl. start-up and chunking) {peak_rss_mb():.0f} MB")  # fmt: skip
    print(f"  fakes process (not the bot): CPU {fakes_usage['cpu']:.1f}s for the whole run, "
          f"peak RSS {fakes_usage['maxrss_mb']:.0f} MB")  # fmt: skip
    print(
        "  note: the fake Discord enforces Discord's member-role bucket (10 per 10 s per server by default), so "
        "the drain takes about a second per role call whatever the machine; the refresh's figures come first"
    )
    http_429 = sum(1 for _m, _p, status in calls["discord"] if status == 429)
    print(
        f"RESULT patreon_calls={len(calls['patreon'])} patreon_calls_expected={pages} role_calls={len(role_calls)} "
        f"role_calls_expected={changes} http_429={http_429} wrong={verify['mismatches']} "
        f"plan_cpu_s={listed.cpu:.2f} gc_cpu_s={collector.cpu:.2f} peak_rss_mb={peak_rss_mb():.0f} "
        f"members_planned={report.members_planned}"
    )
    good = report.ok and verify["mismatches"] == 0 and not failed
    return 0 if good else 1


def _print_split(listed: Span, phases: PhaseTimer) -> None:
    """The refresh's wall and CPU by phase; what no phase claims is the listing (HTTP fetch, JSON decode, parse)."""
    rest = Span(listed.wall, listed.cpu, listed.loop_cpu)
    for name, spent in phases.spans.items():
        print(f"      {name:<32} wall {spent.wall:6.2f}  CPU {spent.cpu:6.2f} (loop {spent.loop_cpu:5.2f})")
        rest = Span(rest.wall - spent.wall, rest.cpu - spent.cpu, rest.loop_cpu - spent.loop_cpu)
    print(
        f"      {'the rest (the listing walk)':<32} wall {rest.wall:6.2f}  CPU {rest.cpu:6.2f} "
        f"(loop {rest.loop_cpu:5.2f})"
    )


def _profiler(path: str | None) -> Any:
    """A started pyinstrument profiler when `--profile` asks for one (a bench-only tool, not a bot requirement)."""
    if path is None:
        return None
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.001, async_mode="disabled")
    profiler.start()
    return profiler


def _write_profile(path: str, profiler: Any) -> None:
    """The call tree, then the functions by their own time. The listing waits out Patreon's per-token window for
    most of its wall time, so pyinstrument's default threshold (1% of the duration) would hide every frame."""
    options = {"filter_threshold": 0.0002}
    with open(path, "w") as out:
        out.write(profiler.output_text(unicode=True, processor_options=options))
        out.write(profiler.output_text(unicode=True, flat=True, processor_options=options))


def _kind(path: str) -> str:
    if path.startswith(MEMBERS_PATH) and path.endswith("/members"):
        return "GET campaign members (one page each)"
    return path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_level)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
