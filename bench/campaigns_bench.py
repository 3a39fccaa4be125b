"""Benchmark many campaigns on one Patreon client: a refresh of all of them within Patreon's client limit, and
webhooks applied while it runs.

    python -m bench.campaigns_bench [--campaigns 50] [--members 2000] [--linked 10] [--webhooks 50]
                                    [--interval 0.25] [--concurrency 1] [--changed-percent 1]

The bot runs here for real (PatronBot, its web server, webhook receiver and applier, the role-job queue,
discord.py), the fakes in a child process (bench/campaigns_world.py): one fake Patreon on its real limit (100
requests per 2 s per client; a request past it gets Patreon's 429) with K creators of N patrons each, connected
as `/patreon-admin connect` leaves them, and one fake Discord server per campaign with L linked patrons in sync.

After the start-up refresh, P% of the linked patrons change tier; then one refresh of every campaign runs while
the child POSTs W signed `members:pledge:update` deliveries, one every `--interval` s, each for a random campaign's
linked patron moved to another tier, to that campaign's URL with its own secret. A webhook counts as applied when
the bot has re-read the member from Patreon, stored it and queued its urgent role job (timed in this process on
the machine's monotonic clock, against the child's send time); the first role call fake Discord then records is
printed too. Last line: `RESULT patreon_calls=… patreon_calls_expected=… http_429=… webhook_apply_p99_ms=…
wrong=…`.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from bench.bot_runner import BenchBot, LoopStalls, Span, add_log_option, free_port, peak_rss_mb, setup_logging
from bench.campaigns_world import campaigns_fakes
from bench.fakes_process import FakesProcess
from bot.patreon.budget import Priority


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--campaigns", type=int, default=50, help="connected campaigns, one server each (K)")
    parser.add_argument("--members", type=int, default=2000, help="patrons per campaign (N)")
    parser.add_argument(
        "--linked", type=int, default=10, help="linked patrons per campaign, the server's members (L, <= 249)"
    )
    parser.add_argument("--webhooks", type=int, default=50, help="deliveries during the refresh (W)")
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between deliveries")
    parser.add_argument("--concurrency", type=int, default=1, help="campaigns refreshed side by side")
    parser.add_argument("--changed-percent", type=float, default=1.0, help="linked patrons changed before (P)")
    add_log_option(parser)
    return parser.parse_args(argv)


def percentile(ordered: list[float], q: float) -> float:
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else float("nan")


class WebhookJobs:
    """When the bot queued each webhook's role job: `jobs.enqueue_many` wrapped on the instance (as bench/
    bot_runner.py's PhaseTimer does), same behaviour."""

    def __init__(self, jobs: Any) -> None:
        self.queued: dict[tuple[int, int], float] = {}
        original: Callable[..., Awaitable[Any]] = jobs.enqueue_many

        async def enqueue_many(keys: Iterable[tuple[int, int]], cause: str, *args: Any, **kwargs: Any) -> Any:
            keys = list(keys)
            result = await original(keys, cause, *args, **kwargs)
            if cause.startswith("webhook"):
                at = time.monotonic()
                for key in keys:
                    self.queued.setdefault(key, at)
            return result

        jobs.enqueue_many = enqueue_many


async def run(args: argparse.Namespace) -> int:
    fakes = campaigns_fakes().start()
    with tempfile.TemporaryDirectory(prefix="campaigns-bench-") as tmp:
        try:
            return await measure(args, fakes, Path(tmp) / "bot.sqlite3")
        finally:
            fakes.stop()


async def measure(args: argparse.Namespace, fakes: FakesProcess, db_path: Path) -> int:
    print(
        f"seeding {args.campaigns} campaigns x {args.members:,} patrons ({args.linked} linked each; fakes in a child"
        " process), starting the bot ...",
        flush=True,
    )
    seed = await fakes.call(
        "seed",
        campaigns=args.campaigns,
        members=args.members,
        linked=args.linked,
        web_port=free_port(),
        db_path=str(db_path),
    )
    bot = BenchBot(seed["env"], db_path)
    started = time.perf_counter()
    await bot.start()
    try:
        services = bot.services
        assert bot.bot is not None
        startup = services.refresh.last_report
        print(f"  seeded in {seed['seconds']:.1f}s; bot ready and start-up refresh done in "
              f"{time.perf_counter() - started:.1f}s (ok={startup.ok if startup else None})")  # fmt: skip
        services.refresh.campaign_concurrency = args.concurrency  # the bench's knob: campaigns side by side
        changed = await fakes.call("change", percent=args.changed_percent)
        await fakes.call("mark")
        watch = WebhookJobs(services.jobs)
        budget = services.patreon.budget
        granted_before = dict(budget.figures.granted)
        url = f"http://127.0.0.1:{bot.bot.web_port}/patreon/webhook"
        print(f"refreshing {args.campaigns} campaigns ({args.concurrency} side by side) while {args.webhooks} "
              f"webhooks arrive, one every {args.interval:g}s; {changed['changed']} patrons changed tier ...",
              flush=True)  # fmt: skip
        stalls = LoopStalls().start()
        span = Span.start()
        refresh_task = asyncio.create_task(services.refresh.run("scheduled"))
        fired = await fakes.call("fire_webhooks", base_url=url, count=args.webhooks, interval=args.interval)
        report = await refresh_task
        refresh_span = span.stop()
        await bot.settle(timeout=600)
        stalls.stop()
        observed = await fakes.call("observed")
        verify = await fakes.call("verify")
    finally:
        await bot.close()

    sent = fired["sent"]
    applied = sorted(watch.queued[(g, u)] - at for g, u, at in sent if (g, u) in watch.queued)
    first_call: dict[int, float] = {}
    for path, at, _status in observed["role_calls"]:
        user = int(path.split("/")[4])
        first_call.setdefault(user, at)
    role_latency = sorted(first_call[u] - at for _g, u, at in sent if u in first_call and first_call[u] >= at)
    during = sum(1 for _g, _u, at in sent if at <= span.wall + refresh_span.wall)  # sent before the refresh ended
    pages = args.campaigns * math.ceil(args.members / 1000)
    lookups = observed["patreon"].get("member look-up", 0)
    expected = pages + len(sent)
    granted = {p: budget.figures.granted[p] - granted_before[p] for p in Priority}
    print(f"  refresh: ok={report.ok} wall {refresh_span.wall:.2f}s CPU {refresh_span.cpu:.2f}s; {report.pages} pages, "
          f"{report.members_listed:,} members listed, {report.roles_differ} members' roles differ")  # fmt: skip
    print(f"  webhooks: {len(sent)} sent ({during} before the refresh ended), answers {fired['statuses']}, "
          f"{len(applied)} applied")  # fmt: skip
    print(f"  webhook -> applied (re-read, stored, role job queued): p50 {percentile(applied, 0.5) * 1000:.0f} ms, "
          f"p99 {percentile(applied, 0.99) * 1000:.0f} ms, max {percentile(applied, 1.0) * 1000:.0f} ms")  # fmt: skip
    print(f"  webhook -> first role call at fake Discord: p50 {percentile(role_latency, 0.5) * 1000:.0f} ms, "
          f"p99 {percentile(role_latency, 0.99) * 1000:.0f} ms ({len(role_latency)} members)")  # fmt: skip
    print(f"  Patreon calls: {observed['patreon_total']} (expected {expected}: {pages} listing pages + {len(sent)} "
          f"look-ups); by kind {observed['patreon']}")  # fmt: skip
    print(f"  Patreon's limit: 429 answers {observed['http_429']}; the fake's busiest 2 s held "
          f"{observed['peak_window']} requests; the bot's budget: peak {budget.figures.peak_in_window} in a window, "
          f"granted {granted[Priority.LOOKUP]} look-ups / {granted[Priority.REFRESH]} refresh, longest wait "
          f"look-up {budget.figures.longest_wait[Priority.LOOKUP] * 1000:.0f} ms, refresh "
          f"{budget.figures.longest_wait[Priority.REFRESH] * 1000:.0f} ms, pauses {budget.figures.pauses}")  # fmt: skip
    print(f"  roles wrong afterwards: {verify['wrong']} of {verify['checked']}; event loop: longest stall "
          f"{stalls.longest * 1000:.0f} ms, {stalls.over_100ms:.2f} s in stalls over 100 ms (the machine is shared: "
          f"a stall is also another process's CPU); peak RSS {peak_rss_mb():.0f} MB")  # fmt: skip
    wrong = verify["wrong"] + (len(sent) - len(applied))
    print(
        f"RESULT patreon_calls={observed['patreon_total']} patreon_calls_expected={expected} "
        f"http_429={observed['http_429']} webhook_apply_p99_ms={percentile(applied, 0.99) * 1000:.0f} "
        f"wrong={wrong} refresh_wall_s={refresh_span.wall:.2f} webhooks_during_refresh={during} "
        f"lookups={lookups} webhook_role_call_p99_ms={percentile(role_latency, 0.99) * 1000:.0f} "
        f"concurrency={args.concurrency} refresh_cpu_s={refresh_span.cpu:.2f} "
        f"loop_stall_max_ms={stalls.longest * 1000:.0f} webhook_apply_p50_ms={percentile(applied, 0.5) * 1000:.0f}"
    )
    return 0 if wrong == 0 and observed["http_429"] == 0 and report.ok else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_level)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
