"""Benchmark the bot in a server of 1,000,000 members of whom only the linked patrons matter (issue 9, item 6).

    python -m bench.big_guild_bench [--members 1000000] [--linked 100000] [--changed-percent 1]

The fakes run in a child process (`bench.fakes_process`). The guild holds `--linked` patrons, each linked and with
the roles the policy gives (as in refresh_bench), and a crowd of unlinked members up to `--members`, made lazily by
the fake (fakes/discord/crowd.py: an id range that becomes a stored member only when something touches it), so the
fake stays small. The real bot starts: it must not chunk the server, only ask for the linked members by id.

Printed: seconds to discord.py's ready and to the first slash command answered (`ready_s`), the bot's op 8
requests (by id, ids asked, whole-list ones: should be 0), seconds until every linked member was asked for, what
discord.py holds in memory, then one refresh after `--changed-percent` of memberships changed, its queue drained
on the fake's real rate limits, and the roles wrong afterwards. Peak RSS is the bot process's own.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from bench.bot_runner import BenchBot, Span, add_log_option, free_port, peak_rss_mb, ratio, rss_mb, setup_logging
from bench.fakes_process import FakesProcess
from bench.seeding import GUILD_ID, OWNER_ID, role_call_user

RSS_GOAL_MB, READY_GOAL_S = 250, 60


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1_000_000, help="members of the server, linked or not")
    parser.add_argument("--linked", type=int, default=100_000, help="linked patrons among them")
    parser.add_argument("--changed-percent", type=float, default=1.0, help="memberships changed before the refresh")
    parser.add_argument("--seed", type=int, default=1, help="random seed for which memberships change")
    parser.add_argument("--timeout", type=float, default=3600, help="give up waiting after this many seconds")
    add_log_option(parser)
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> int:
    fakes = FakesProcess().start()
    with tempfile.TemporaryDirectory(prefix="big-guild-bench-") as tmp:
        try:
            return await measure(args, fakes, Path(tmp) / "bot.sqlite3")
        finally:
            fakes.stop()


async def measure(args: argparse.Namespace, fakes: FakesProcess, db_path: Path) -> int:
    linked, crowd = args.linked, max(0, args.members - args.linked - 2)  # the owner and the bot are members too
    print(f"seeding {linked:,} linked patrons and {crowd:,} unlinked members (lazy) in one server ...", flush=True)
    seed = await fakes.call("seed", members=linked, web_port=free_port(), db_path=str(db_path))
    info = await fakes.call("add_crowd", count=crowd)
    print(f"  seeded in {seed['seconds']:.1f}s; the server has {info['member_count']:,} members")
    print(f"  bot RSS before start: {rss_mb():.0f} MB")

    bot = BenchBot(seed["env"], db_path)
    started = time.perf_counter()
    await bot.connect(ready_timeout=args.timeout)
    discord_ready_s = time.perf_counter() - started
    answer = await fakes.call("ask_status", discord_id=OWNER_ID, timeout=READY_GOAL_S)
    ready_s = time.perf_counter() - started if answer["seconds"] is not None else float("inf")
    print(f"  discord.py ready in {discord_ready_s:.1f}s; first slash command answered at {ready_s:.1f}s")
    try:
        gateway = bot.services.reconcile.gateway
        deadline = time.monotonic() + args.timeout
        while not gateway.knows_all_members(GUILD_ID) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        known_s = time.perf_counter() - started
        requests = await fakes.call("member_requests")
        cached, _chunked = bot.cached_members(GUILD_ID)
        print(
            f"  every linked member asked for at {known_s:.1f}s: {requests['by_id']:,} op-8 request(s) by id for "
            f"{requests['ids']:,} id(s), {requests['whole_list']} for the whole list, {requests['other']} other"
        )
        print(f"  discord.py holds {cached:,} of {info['member_count']:,} members; bot RSS {rss_mb():.0f} MB")

        await asyncio.wait_for(bot.services.scheduler.first_run_done.wait(), timeout=args.timeout)
        await bot.settle(args.timeout)
        warm = bot.services.refresh.last_report
        assert warm is not None
        print(
            f"  start-up refresh: ok={warm.ok}, {warm.members_listed:,} listed, {warm.roles_differ} differ "
            f"(0: the seed is in sync), done at {time.perf_counter() - started:.1f}s"
        )

        change = await fakes.call("change", percent=args.changed_percent, rng_seed=args.seed)
        print(f"changed {change['changed']:,} memberships; {change['differ']:,} member(s) now need a role change")
        await fakes.call("mark")
        span, measured = time.perf_counter(), Span.start()
        report = await bot.services.refresh.run("bench")
        refreshed = measured.stop()
        print(
            f"  refresh: ok={report.ok}, {report.roles_differ} differ, {report.jobs_queued} job(s) queued in "
            f"{refreshed.wall:.1f}s ({refreshed.cpu:.2f}s CPU); draining on Discord's real role-call limits ...",
            flush=True,
        )
        await bot.settle(args.timeout)
        drain_s = time.perf_counter() - span
        verdict = await fakes.call("verify")
        wrong = verdict["mismatches"]
        calls = (await fakes.call("calls_since_mark"))["discord"]
        role_calls = [status for method, path, status in calls if role_call_user(method, path) is not None]
        http_429 = sum(1 for _method, _path, status in calls if status == 429)
        print(f"  drained in {drain_s:.1f}s; roles wrong afterwards: {wrong} of {verdict['checked']:,}")
        print(
            f"  Discord role calls: {ratio(len(role_calls), change['role_changes'])} (roles to change); "
            f"429 answers: {http_429}"
        )
    finally:
        await bot.close()

    peak = peak_rss_mb()
    print(f"bot peak RSS {peak:.0f} MB (goal < {RSS_GOAL_MB}); ready {ready_s:.1f}s (goal < {READY_GOAL_S})")
    print(
        f"RESULT peak_rss_mb={peak:.0f} ready_s={ready_s:.1f} wrong={wrong} members={args.members} "
        f"linked={linked} members_known_s={known_s:.1f} member_requests={requests['requests']} "
        f"whole_list_requests={requests['whole_list']} cached_members={cached} drain_s={drain_s:.1f} "
        f"role_calls={len(role_calls)} role_calls_expected={change['role_changes']} http_429={http_429} "
        f"plan_cpu_s={refreshed.cpu:.2f}"
    )
    return 0 if wrong == 0 and requests["whole_list"] == 0 else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_level)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
