"""Benchmark slow clients: a flood of connections trickling bodies while webhooks and /healthz must keep answering.

    python -m bench.slow_clients_bench [--connections 1100] [--seconds 20] [--nofile 1024] [--sources 40]

The bot runs here for real (PatronBot, its web server with its limits, the webhook receiver, discord.py), with this
process's open-files limit lowered to `--nofile` as on a small host; the fakes run in a child process
(`bench.fakes_process`). A second child holds `--connections` connections from `--sources` loopback addresses
(127.0.1.x), each sending a webhook's headers with `Content-Length: 1000000` and then one byte every
`--trickle` seconds; whenever the bot closes or refuses one, it reconnects (after 0.1 s), until `--seconds` pass. A
third child, from 127.0.0.2, is a health checker and Patreon at once: every `--probe-interval` seconds a new
connection for `GET /healthz`, then one for a signed `POST /patreon/webhook`, each with a 5 s timeout.

Printed: what the flood got (connections, 503s, cut off, peak open), each probe kind's answers and latency
p50/p99/max, and what the bot wrote to its log at INFO (bytes, lines per logger, "Too many open files" lines).
Everything is on 127.0.0.1-127.0.x.x and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import resource
import sys
import tempfile
import time
import uuid
from collections import Counter
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp

from bench.bot_runner import LoopStalls, peak_rss_mb, start_world
from bench.fakes_process import FakesProcess
from bench.webhook_bench import percentile
from bot.__main__ import keep_secrets_out_of_logs
from bot.web.webhook_receiver import sign

SLOW_HEADERS = (
    b"POST /patreon/webhook HTTP/1.1\r\nHost: bot\r\nContent-Type: application/json\r\n"
    b"X-Patreon-Event: members:pledge:update\r\nContent-Length: 1000000\r\n\r\n"
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=1100, help="slow connections held at once (N)")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the flood lasts")
    parser.add_argument("--nofile", type=int, default=1024, help="the bot process's open-files limit (soft)")
    parser.add_argument("--sources", type=int, default=40, help="loopback addresses the flood comes from")
    parser.add_argument("--trickle", type=float, default=1.0, help="seconds between the bytes of a slow body")
    parser.add_argument("--probe-interval", type=float, default=0.1, help="seconds between probe pairs")
    parser.add_argument("--members", type=int, default=20, help="patrons to seed (the bot's normal work)")
    parser.add_argument("--log-level", default="", help="also print the bot's log lines at this level")
    return parser.parse_args(argv)


# ------------------------------------------------------------------ the flood (a child process)


def flood_main(conn: Connection, port: int, connections: int, seconds: float, sources: int, trickle: float) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    conn.send(asyncio.run(_flood(port, connections, seconds, sources, trickle)))


async def _flood(port: int, connections: int, seconds: float, sources: int, trickle: float) -> dict[str, Any]:
    counts: Counter[str] = Counter()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds

    async def slot(index: int) -> None:
        await asyncio.sleep(index / connections)  # spread the first connects over a second (the listen backlog)
        source = f"127.0.1.{index % sources + 1}"
        while loop.time() < deadline:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0)), timeout=5
                )
            except (OSError, TimeoutError):
                counts["connect failed"] += 1
                await asyncio.sleep(0.1)
                continue
            counts["connections"] += 1
            try:
                writer.write(SLOW_HEADERS)
                while loop.time() < deadline:
                    try:
                        data = await asyncio.wait_for(reader.read(100), timeout=trickle)
                    except TimeoutError:
                        writer.write(b" ")
                        continue
                    counts["refused (503)" if data.startswith(b"HTTP/1.1 503") else
                           "answered" if data else "closed by the bot"] += 1
                    break
                else:
                    counts["still open at the end"] += 1
            except OSError:
                counts["reset by the bot"] += 1
            finally:
                writer.close()
            await asyncio.sleep(0.1)

    await asyncio.gather(*(slot(index) for index in range(connections)))
    return dict(counts)


# ------------------------------------------------------------------ the probes (a child process)


def probe_main(conn: Connection, port: int, seconds: float, interval: float, secret: str) -> None:
    conn.send(asyncio.run(_probe(port, seconds, interval, secret)))


async def _probe(port: int, seconds: float, interval: float, secret: str) -> dict[str, Any]:
    base = f"http://127.0.0.1:{port}"
    kinds = ("healthz", "webhook")
    results: dict[str, dict[str, Any]] = {kind: {"latencies": [], "errors": Counter()} for kind in kinds}
    connector = aiohttp.TCPConnector(force_close=True, local_addr=("127.0.0.2", 0))
    timeout = aiohttp.ClientTimeout(total=5)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def once(kind: str) -> None:
            started = time.perf_counter()
            try:
                if kind == "healthz":
                    request = http.get(base + "/healthz")
                else:
                    body = json.dumps({"data": {"type": "member", "id": str(uuid.uuid4()), "attributes": {},
                                                "relationships": {"user": {"data": {"type": "user",
                                                                                    "id": "bench-probe"}}}}}).encode()
                    headers = {"X-Patreon-Event": "members:pledge:update", "X-Patreon-Signature": sign(body, secret),
                               "Content-Type": "application/json"}
                    request = http.post(base + "/patreon/webhook", data=body, headers=headers)
                async with request as response:
                    await response.read()
                    if response.status >= 300:
                        results[kind]["errors"][f"HTTP {response.status}"] += 1
                        return
            except (aiohttp.ClientError, TimeoutError, OSError) as error:
                results[kind]["errors"][type(error).__name__] += 1
                return
            results[kind]["latencies"].append(time.perf_counter() - started)

        pending: set[asyncio.Task[None]] = set()
        while loop.time() < deadline:
            for kind in ("healthz", "webhook"):
                task = asyncio.create_task(once(kind))
                pending.add(task)
                task.add_done_callback(pending.discard)
            await asyncio.sleep(interval)
        await asyncio.gather(*pending)
    return {kind: {"latencies": r["latencies"], "errors": dict(r["errors"])} for kind, r in results.items()}


# ------------------------------------------------------------------ the bot (this process)


class LogBytes(logging.Handler):
    """What the bot would write to stderr: every formatted line, counted in bytes and per logger."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)-8s %(name)s %(message)s"))
        self.bytes = 0
        self.lines: Counter[str] = Counter()
        self.too_many_open_files = 0

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        self.bytes += len(line.encode()) + 1
        self.lines[record.name] += 1
        self.too_many_open_files += "Too many open files" in line


def child(target: Any, *args: Any) -> tuple[multiprocessing.Process, Connection]:
    context = multiprocessing.get_context("spawn")
    parent, child_end = context.Pipe()
    process = context.Process(target=target, args=(child_end, *args), daemon=True)
    process.start()
    return process, parent


async def receive(conn: Connection, timeout: float) -> Any:
    loop = asyncio.get_running_loop()
    if not await loop.run_in_executor(None, conn.poll, timeout):
        raise TimeoutError("a child process did not report in time")
    return conn.recv()


async def run(args: argparse.Namespace) -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(args.nofile, hard), hard))
    counter = LogBytes()
    logging.getLogger().addHandler(counter)
    logging.getLogger().setLevel(logging.INFO)
    fakes = FakesProcess().start()
    try:
        with tempfile.TemporaryDirectory(prefix="slow-clients-bench-") as tmp:
            return await measure(args, fakes, Path(tmp) / "bot.sqlite3", counter)
    finally:
        fakes.stop()


async def measure(args: argparse.Namespace, fakes: FakesProcess, db_path: Path, counter: LogBytes) -> int:
    print(f"starting the bot (open-files limit {resource.getrlimit(resource.RLIMIT_NOFILE)[0]}) ...", flush=True)
    bot, seed, _startup = await start_world(fakes, args.members, db_path)
    try:
        assert bot.bot is not None and bot.bot.web_port is not None
        server = bot.bot.get_cog("WebServer").server  # type: ignore[union-attr]
        gate, port = server.gate, bot.bot.web_port
        print(f"  web server on 127.0.0.1:{port}: cap {gate.cap} connections, {gate.per_address} per address; "
              f"{server.limits.header_timeout:g}s for headers, {server.limits.body_timeout:g}s for a body")
        print(f"flooding with {args.connections:,} slow connections from {args.sources} addresses for "
              f"{args.seconds:g}s, probing /healthz and webhooks from 127.0.0.2 every {args.probe_interval:g}s ...")
        log_before, lines_before = counter.bytes, Counter(counter.lines)
        stalls = LoopStalls().start()
        flood, flood_conn = child(flood_main, port, args.connections, args.seconds, args.sources, args.trickle)
        probes, probe_conn = child(probe_main, port, args.seconds, args.probe_interval,
                                   seed["env"]["PATREON_WEBHOOK_SECRET"])
        peak = 0
        started = time.monotonic()
        while flood.is_alive() or probes.is_alive():
            peak = max(peak, gate.open)
            await asyncio.sleep(0.05)
            if time.monotonic() - started > args.seconds + 60:
                break
        flood_counts = await receive(flood_conn, 10)
        probe_results = await receive(probe_conn, 10)
        stalls.stop()
        flood.join(5)
        probes.join(5)
        await bot.settle(timeout=60)
        refused, evicted = gate.refused, gate.evicted
    finally:
        await bot.close()

    log_bytes = counter.bytes - log_before
    lines = counter.lines - lines_before
    print("\nthe flood:")
    for what, count in sorted(flood_counts.items()):
        print(f"  {what}: {count:,}")
    print(f"  bot side: peak {peak:,} open (cap {gate.cap:,}), {refused:,} refused with 503, "
          f"{evicted:,} oldest slow ones closed to make room")
    failures = 0
    summary = []
    print("the probes (each a new connection from 127.0.0.1's neighbour 127.0.0.2):")
    for kind, result in probe_results.items():
        latencies = sorted(result["latencies"])
        errors = sum(result["errors"].values())
        failures += errors
        total = len(latencies) + errors
        p50, p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
        worst = (latencies[-1] * 1000) if latencies else float("nan")
        shown = ", ".join(f"{count} x {error}" for error, count in result["errors"].items()) or "none"
        print(f"  {kind}: {len(latencies)}/{total} answered 2xx; p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
              f"max {worst:.0f} ms; errors: {shown}")
        summary.append(f"{kind}_ok={len(latencies)}/{total} {kind}_p50_ms={p50:.1f} {kind}_p99_ms={p99:.1f}")
    print(f"the bot's log at INFO during the flood: {log_bytes:,} bytes, {sum(lines.values()):,} lines "
          f"({', '.join(f'{name} {count}' for name, count in lines.most_common(6))}); "
          f"'Too many open files' lines: {counter.too_many_open_files}")
    print(f"the bot's event loop: longest stall {stalls.longest * 1000:.0f} ms; peak RSS {peak_rss_mb():.0f} MB")
    print(f"RESULT slow_clients connections={args.connections} seconds={args.seconds:g} nofile={args.nofile} "
          f"{' '.join(summary)} errors={failures} refused={refused} evicted={evicted} log_bytes={log_bytes} "
          f"emfile_lines={counter.too_many_open_files}")
    return 0 if failures == 0 and counter.too_many_open_files == 0 else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    keep_secrets_out_of_logs()
    if args.log_level:
        console = logging.StreamHandler()
        console.setLevel(args.log_level.upper())
        logging.getLogger().addHandler(console)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
