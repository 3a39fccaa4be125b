"""Benchmark the webhook path: signed deliveries in, role changes out, through the running bot.

    python -m bench.webhook_bench [--webhooks 1000] [--concurrency 50] [--rate 0] [--members 10000]

The bot runs here for real (PatronBot, its web server, the webhook receiver and applier, the durable role-job
queue, discord.py), the fakes in a child process (`bench.fakes_process`). For each of M linked active patrons the
fakes process moves the pledge to another tier on fake Patreon, then POSTs one `members:pledge:update` delivery
with the body fake Patreon renders and a real `X-Patreon-Signature` (HMAC-MD5 of the raw body) to
POST /patreon/webhook, C at a time (and at most `--rate` per second when given). It notes when each delivery was
sent and when fake Discord recorded the first role call for that member (both on the machine's monotonic clock).

Printed: accepted/s (2xx answers per second of sending), webhook→role-call latency p50/p90/p99/max, how many
Patreon calls and Discord role calls the burst cost, and this process's (the bot's) wall and CPU seconds. A burst of
one campaign's deliveries faster than its creator token's 100 requests a minute is a flood: it is answered by
listings of the campaign rather than one re-fetch each (bot/sync/webhook_flood.py), so `patreon_calls_expected` is
the most it may cost (one per delivery), not what it must.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench.bot_runner import LoopStalls, Span, add_log_option, peak_rss_mb, ratio, setup_logging, start_world
from bench.fakes_process import FakesProcess
from bench.seeding import role_call_user


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--webhooks", type=int, default=1000, help="deliveries to send (M), one per member")
    parser.add_argument("--concurrency", type=int, default=50, help="deliveries in flight at once (C)")
    parser.add_argument("--rate", type=float, default=0.0, help="at most this many deliveries per second (0: no cap)")
    parser.add_argument("--members", type=int, default=10_000, help="patrons and guild members to seed")
    add_log_option(parser)
    return parser.parse_args(argv)


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else float("nan")


async def run(args: argparse.Namespace) -> int:
    fakes = FakesProcess().start()
    with tempfile.TemporaryDirectory(prefix="webhook-bench-") as tmp:
        try:
            return await measure(args, fakes, Path(tmp) / "bot.sqlite3")
        finally:
            fakes.stop()


async def measure(args: argparse.Namespace, fakes: FakesProcess, db_path: Path) -> int:
    print(f"seeding {args.members:,} linked patrons (fakes in a child process), starting the bot ...", flush=True)
    bot, _seed, startup_seconds = await start_world(fakes, args.members, db_path)
    try:
        assert bot.bot is not None
        url = f"http://127.0.0.1:{bot.bot.web_port}/patreon/webhook"
        print(f"  bot ready in {startup_seconds:.1f}s; webhooks go to {url}")
        cap = f", at most {args.rate:g}/s" if args.rate > 0 else ""
        print(
            f"firing {args.webhooks:,} signed members:pledge:update deliveries, {args.concurrency} at a time{cap} ..."
        )
        await fakes.call("mark")
        jobs_before = bot.services.jobs.applied
        stalls = LoopStalls().start()
        span = Span.start()
        fired = await fakes.call(
            "fire_webhooks", url=url, count=args.webhooks, concurrency=args.concurrency, rate=args.rate
        )
        drain = await fakes.call("drain_estimate", role_calls=2 * args.webhooks)
        await bot.settle(timeout=max(600.0, drain["seconds"]))
        spent = span.stop()
        stalls.stop()
        jobs_applied = bot.services.jobs.applied - jobs_before
        calls = await fakes.call("calls_since_mark")
    finally:
        await bot.close()

    sent, latencies = fired["sent"], fired["latencies"]
    accepted = sum(count for status, count in fired["statuses"].items() if 200 <= int(status) < 300)
    role_calls = [(m, p) for m, p, _s in calls["discord"] if role_call_user(m, p) is not None]
    refetches = Counter(path.rsplit("/", 1)[0] for _m, path, _s in calls["patreon"])
    statuses = ", ".join(f"{count} x {status}" for status, count in sorted(fired["statuses"].items()))

    print(f"\nanswers: {statuses}")
    print(
        f"  accepted/s: {accepted / fired['send_seconds']:.0f}  ({accepted:,} accepted in {fired['send_seconds']:.2f}s)"
    )
    missing = sent - len(latencies)
    print(f"  webhook→role-call latency over {len(latencies):,} of {sent:,} members (no role call: {missing})")
    for label, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)):
        print(f"      {label}: {percentile(latencies, q) * 1000:8.0f} ms")
    print(f"  all role calls done {fired['settle_seconds']:.1f}s after the first delivery was sent")
    expected = 2 * sent  # each delivery moves a member to another tier: PUT the new role, DELETE the old
    print(f"  Discord role calls: {ratio(len(role_calls), expected)}  (a tier change is one PUT and one DELETE)")
    print(f"  role jobs applied: {jobs_applied:,}")
    for path, count in sorted(refetches.items()):
        print(f"  Patreon calls: {ratio(count, sent)}  {path}/…  (at most one re-fetch a delivery; a flood lists)")
    print(f"  bot process: wall {spent.wall:.2f}s, CPU {spent.cpu:.2f}s for the burst; peak RSS {peak_rss_mb():.0f} MB")
    print(f"  event loop: longest stall {stalls.longest * 1000:.0f} ms")
    print(
        "  note: role calls are paced under Discord's member-role bucket (10 per 10 s per server, about 1/s) and "
        "40/s across servers; a burst faster than that queues, and its latency is mostly that queue "
        "(bench/fairness_bench.py measures a webhook arriving during a refresh's drain)"
    )
    http_429 = sum(1 for _m, _p, status in calls["discord"] if status == 429)
    print(f"  429 answers from fake Discord: {http_429}")
    print(
        f"RESULT patreon_calls={sum(refetches.values())} patreon_calls_expected={sent} role_calls={len(role_calls)} "
        f"role_calls_expected={expected} http_429={http_429} webhook_first_call_p50_ms="
        f"{percentile(latencies, 0.5) * 1000:.0f} webhook_first_call_p99_ms={percentile(latencies, 0.99) * 1000:.0f} "
        f"accepted_per_s={accepted / fired['send_seconds']:.0f} no_role_call={missing} peak_rss_mb={peak_rss_mb():.0f}"
    )
    return 0 if accepted == sent and len(latencies) == sent else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_level)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
