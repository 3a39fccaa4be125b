"""The real bot on SQLite and on PostgreSQL, one after the other in one run: webhook → first role call latency and
the CPU of one refresh, per backend.

    python -m bench.backends_bench [--members 10000] [--webhooks 300] [--rate 20] [--changed-percent 1]

For each backend the fakes run in a child process (`bench.fakes_process`, the same seeded world as webhook_bench
and refresh_bench: N linked patrons in one server, every member's roles in sync), and the real bot here, started
as `python -m bot` starts it: the SQLite file, or `DATABASE_URL` and `TOKEN_ENCRYPTION_KEY` on a fresh database of
a PostgreSQL server. The server is BENCH_POSTGRES_DSN when given, else a throwaway cluster from Debian's binaries
(fakes/postgres.py) with fsync on, as a deployment runs it (SQLite runs as the bot does: WAL, synchronous=NORMAL,
which syncs at checkpoints, not at each commit; `--synchronous-commit off` puts `?synchronous_commit=off` on the bot's
DATABASE_URL, a promise like SQLite's: a crash may lose the last commits, up to 3 x wal_writer_delay (0.6 s), and never
leaves the database inconsistent; SQLite's lose them only when the machine, not the bot, goes down).

1. Webhooks: M active patrons move to another tier on fake Patreon, and one signed `members:pledge:update` each
   is POSTed at `--rate` per second, `--concurrency` at a time; each is timed from its send to the first role call
   fake Discord records for that member (receive, store, re-fetch from Patreon, plan, queue, call).
2. Refresh: `--changed-percent` of the memberships change on fake Patreon, then one scheduled refresh runs
   (`services.refresh.run`: list every member, store, plan, enqueue; `--full` plans every member); its wall and
   CPU seconds are this process's (the bot's, every thread), and on a cluster started here also the PostgreSQL
   server's own CPU over the same stretch (its processes, from /proc), since work SQLite does in the bot's process
   PostgreSQL does in its own.
   The role jobs then drain and every member's roles are checked against the policy (`wrong`).

Discord's member-role bucket (10 calls per 10 s per server) is raised on both runs, as in the e2e world, with the
bot's pacing told the same (`--discord-limits real` keeps Discord's): under the real bucket the latency is the
bucket's queue, the same on both backends (webhook_bench and fairness_bench measure that).
Last line: `RESULT sqlite_webhook_first_call_p99_ms=… postgres_webhook_first_call_p99_ms=… sqlite_refresh_cpu_s=…
postgres_refresh_cpu_s=… …`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.bot_runner import BenchBot, Span, add_log_option, free_port, setup_logging
from bench.fakes_process import FakesProcess
from bench.seeding import BOT_TOKEN, BOT_USER_ID, World
from bench.webhook_bench import percentile
from bot.store import Store
from bot.store.opening import open_configured
from bot.store.token_cipher import TokenCipher, new_key
from fakes.discord import FakeDiscord, RateLimits
from fakes.postgres import Cluster, drop_database, fresh_database, start_cluster


class BackendsWorld(World):
    """bench/seeding.py's world, seeding the bot's store on whichever backend the bot will use."""

    def __init__(self) -> None:
        super().__init__()
        self.database_url = ""
        self.token_key = ""

    async def seed(  # type: ignore[override]
        self, members: int, web_port: int, db_path: str, database_url: str, token_key: str, relaxed: bool
    ) -> dict[str, Any]:
        self.database_url, self.token_key = database_url, token_key
        limits = RateLimits.relaxed() if relaxed else RateLimits.real()
        self.discord = FakeDiscord(
            application_id=BOT_USER_ID, bot_user_id=BOT_USER_ID, bot_token=BOT_TOKEN, rate_limits=limits
        )
        seeded = await super().seed(members, web_port, db_path)
        env = seeded["env"]
        env["ROLE_CALLS_PER_GUILD"] = str(limits.member_role.limit)
        env["ROLE_WINDOW_SECONDS"] = repr(limits.member_role.seconds)
        if database_url:
            env |= {"DATABASE_URL": database_url, "TOKEN_ENCRYPTION_KEY": token_key}
        return seeded

    async def _sync_roles_and_store(self, db_path: str) -> None:
        """Also the memberships as the bot last stored them, as in an install that has run before: the start-up
        then asks Discord for the campaign's linked patrons in batches of 100 (bot/discord_io/linked_members.py);
        with links but no memberships it asks only for members holding grants, and the first refresh looks up
        the others one request each, at Discord's 120 gateway commands a minute (minutes at 10,000 patrons)."""
        await super()._sync_roles_and_store(db_path)
        assert self.patreon is not None
        listing = await self._listing()
        store = await self.open_store(db_path)
        try:
            await store.save_memberships(list(listing.values()), campaign_id=self.patreon.campaign.id)
        finally:
            await store.close()

    def _cipher(self) -> TokenCipher | None:
        return TokenCipher.from_setting(self.token_key) if self.token_key else None

    async def open_store(self, db_path: str) -> Store:
        return await open_configured(self.database_url, Path(db_path), self._cipher())

    async def store_grants(self, db_path: str, grants: list[tuple[int, int, int, str, str]]) -> None:
        if not self.database_url:
            await super().store_grants(db_path, grants)
            return
        by_member: dict[int, list[int]] = defaultdict(list)
        for _guild, member, role, _at, _reason in grants:
            by_member[member].append(role)
        guild_id = grants[0][0] if grants else 0
        store = await self.open_store(db_path)
        try:
            for member, roles in by_member.items():
                await store.record_grants(guild_id, member, roles, "bench seed")
        finally:
            await store.close()

    async def read_ledger(self, guild_id: int) -> dict[int, frozenset[int]]:
        if not self.database_url:
            return await super().read_ledger(guild_id)
        store = await self.open_store(self.db_path)
        try:
            return await store.grants_in_guild(guild_id)
        finally:
            await store.close()


def server_cpu(cluster: Cluster) -> Callable[[], float] | None:
    """CPU seconds of the cluster's postmaster and its live children (the bot's connection among them)."""
    try:
        postmaster = int((cluster.folder / "data" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    tick = os.sysconf("SC_CLK_TCK")

    def read() -> float:
        total = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid, ppid = int(entry), int(fields[1])
            if pid == postmaster or ppid == postmaster:
                total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
        return total / tick

    return read


async def measure(
    name: str, args: argparse.Namespace, database_url: str, server: Callable[[], float] | None
) -> dict[str, float]:
    fakes = FakesProcess(BackendsWorld, name=f"bench-fakes-{name}").start()
    try:
        with tempfile.TemporaryDirectory(prefix=f"backends-bench-{name}-") as tmp:
            return await _measure(name, args, fakes, Path(tmp) / "bot.sqlite3", database_url, server)
    finally:
        fakes.stop()


async def _measure(
    name: str,
    args: argparse.Namespace,
    fakes: FakesProcess,
    db_path: Path,
    database_url: str,
    server: Callable[[], float] | None,
) -> dict[str, float]:
    print(f"[{name}] seeding {args.members:,} linked patrons, starting the bot ...", flush=True)
    seed = await fakes.call(
        "seed", members=args.members, web_port=free_port(), db_path=str(db_path), database_url=database_url,
        token_key=new_key() if database_url else "", relaxed=args.discord_limits == "relaxed",
    )  # fmt: skip
    bot = BenchBot(seed["env"], db_path)
    started = Span.start()
    await bot.start()
    print(f"[{name}]   seeded in {seed['seconds']:.1f}s; bot ready in {started.stop().wall:.1f}s", flush=True)
    try:
        assert bot.bot is not None
        url = f"http://127.0.0.1:{bot.bot.web_port}/patreon/webhook"
        fired = await fakes.call(
            "fire_webhooks", url=url, count=args.webhooks, concurrency=args.concurrency, rate=args.rate
        )
        await bot.settle(timeout=600)
        latencies = fired["latencies"]
        accepted = sum(count for status, count in fired["statuses"].items() if 200 <= int(status) < 300)
        figures = {
            "webhook_first_call_p50_ms": percentile(latencies, 0.5) * 1000,
            "webhook_first_call_p99_ms": percentile(latencies, 0.99) * 1000,
        }
        print(
            f"[{name}]   webhooks: {accepted}/{fired['sent']} accepted, {len(latencies)} with a role call; first "
            f"call p50 {figures['webhook_first_call_p50_ms']:.0f} ms, p90 {percentile(latencies, 0.9) * 1000:.0f} "
            f"ms, p99 {figures['webhook_first_call_p99_ms']:.0f} ms, max {percentile(latencies, 1.0) * 1000:.0f} ms",
            flush=True,
        )
        change = await fakes.call("change", percent=args.changed_percent, rng_seed=1)
        if args.full:
            bot.services.refresh.request_full_plan(seed["guild_id"])
        server_before = server() if server is not None else 0.0
        span = Span.start()
        report = await bot.services.refresh.run("bench")
        refresh = span.stop()
        server_spent = server() - server_before if server is not None else float("nan")
        await bot.settle(timeout=600)
        verify = await fakes.call("verify")
    finally:
        await bot.close()
    figures |= {
        "refresh_cpu_s": refresh.cpu,
        "refresh_wall_s": refresh.wall,
        "server_refresh_cpu_s": server_spent,
        "wrong": verify["mismatches"],
        "no_role_call": fired["sent"] - len(latencies),
    }
    server_text = f"; PostgreSQL server CPU {server_spent:.2f}s" if server is not None else ""
    print(
        f"[{name}]   refresh (ok={report.ok}, {change['changed']} memberships changed, {report.members_planned:,} "
        f"planned, {report.jobs_queued} jobs): CPU {refresh.cpu:.2f}s, wall {refresh.wall:.2f}s{server_text}; "
        f"roles wrong afterwards: {verify['mismatches']} of {verify['checked']:,}",
        flush=True,
    )
    return figures


async def run(args: argparse.Namespace) -> int:
    results: dict[str, dict[str, float]] = {}
    for backend in args.order.split(","):
        if backend == "sqlite":
            results["sqlite"] = await measure("sqlite", args, "", None)
        elif backend == "postgres":
            results["postgres"] = await on_postgres(args)
    print()
    for backend, figures in results.items():
        print(f"{backend:>8}: " + "  ".join(f"{key}={value:.2f}" for key, value in figures.items()))
    sqlite, postgres = results["sqlite"], results["postgres"]
    print(
        f"RESULT sqlite_webhook_first_call_p99_ms={sqlite['webhook_first_call_p99_ms']:.0f} "
        f"postgres_webhook_first_call_p99_ms={postgres['webhook_first_call_p99_ms']:.0f} "
        f"sqlite_refresh_cpu_s={sqlite['refresh_cpu_s']:.2f} postgres_refresh_cpu_s={postgres['refresh_cpu_s']:.2f} "
        f"sqlite_webhook_first_call_p50_ms={sqlite['webhook_first_call_p50_ms']:.0f} "
        f"postgres_webhook_first_call_p50_ms={postgres['webhook_first_call_p50_ms']:.0f} "
        f"postgres_server_refresh_cpu_s={postgres['server_refresh_cpu_s']:.2f} "
        f"wrong={int(sqlite['wrong'] + postgres['wrong'])} members={args.members}"
    )
    good = all(figures["wrong"] == 0 and figures["no_role_call"] == 0 for figures in results.values())
    return 0 if good else 1


async def on_postgres(args: argparse.Namespace) -> dict[str, float]:
    given = os.environ.get("BENCH_POSTGRES_DSN")
    cluster = None if given else start_cluster(durable=True)
    server_dsn = given or (cluster.dsn if cluster is not None else "")
    try:
        database_url = await fresh_database(server_dsn, "bench")
        try:
            server = server_cpu(cluster) if cluster is not None else None
            options = "" if args.synchronous_commit == "on" else "?synchronous_commit=off"
            return await measure("postgres", args, database_url + options, server)
        finally:
            await drop_database(server_dsn, database_url)
    finally:
        if cluster is not None:
            cluster.stop()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=10_000, help="linked patrons and guild members to seed")
    parser.add_argument("--webhooks", type=int, default=300, help="deliveries, one per member")
    parser.add_argument("--rate", type=float, default=20.0, help="deliveries per second (0: as fast as possible)")
    parser.add_argument("--concurrency", type=int, default=10, help="deliveries in flight at once")
    parser.add_argument("--changed-percent", type=float, default=1.0, help="memberships changed before the refresh")
    parser.add_argument("--full", action="store_true", help="the refresh re-plans every member (as a sync does)")
    parser.add_argument("--discord-limits", choices=("relaxed", "real"), default="relaxed")
    parser.add_argument(
        "--order", choices=("sqlite,postgres", "postgres,sqlite"), default="sqlite,postgres",
        help="which backend runs first (the machine's load drifts; swap to see the order's share)",
    )  # fmt: skip
    parser.add_argument(
        "--synchronous-commit", choices=("on", "off"), default="on",
        help="PostgreSQL's commit waits for its WAL flush (on, the default) or not (off: SQLite's WAL/NORMAL promise)",
    )  # fmt: skip
    add_log_option(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_level)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
