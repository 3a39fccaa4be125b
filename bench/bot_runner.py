"""The real bot in this process, pointed at the fakes process: the same wiring as `python -m bot` and the e2e
world (`PatronBot`, its cogs, its services, the real discord.py client), plus the benchmarks' measuring tools.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import resource
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import discord

from bench.fakes_process import FakesProcess
from bot.__main__ import keep_secrets_out_of_logs
from bot.config import load_config
from bot.discord_io.client import PatronBot
from bot.discord_io.endpoint import point_discord_at
from bot.services import Services
from bot.store import Store
from bot.store.opening import open_configured
from bot.store.token_cipher import TokenCipher


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb() -> float:
    """The current resident set of this process, from /proc (MB)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def disk_written_mb() -> float:
    """Bytes this process has caused to be written to storage so far (/proc/self/io write_bytes), in MB."""
    with open("/proc/self/io") as io:
        for line in io:
            if line.startswith("write_bytes:"):
                return int(line.split()[1]) / 1e6
    return 0.0


def peak_rss_mb() -> float:
    """The high-water mark of this process's resident set since it started (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def add_log_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-level", default="WARNING", help="the bot's log level (default WARNING: quiet output)")


def setup_logging(level: str) -> None:
    discord.utils.setup_logging(level=getattr(logging, level.upper()), root=True)
    keep_secrets_out_of_logs()


@dataclass
class Span:
    """Wall and CPU seconds (this process, every thread: the event loop and aiosqlite's) over one stretch."""

    wall: float = 0.0
    cpu: float = 0.0
    #: CPU of the thread that started and stopped the span (the event loop's); the rest is aiosqlite's thread.
    loop_cpu: float = 0.0

    @classmethod
    def start(cls) -> Span:
        return cls(time.perf_counter(), time.process_time(), time.thread_time())

    def stop(self) -> Span:
        return Span(time.perf_counter() - self.wall, time.process_time() - self.cpu, time.thread_time() - self.loop_cpu)


class LoopStalls:
    """How long the event loop was kept from running other work (heartbeats, webhooks, slash commands): each
    tick's lateness, so a stall is measured whole whatever the tick. The tick is long because the watcher's own
    wake-ups are CPU of the process measured: at 50 a second it cost 12 ms a second, 0.7 s of a refresh that waits
    a minute for Patreon's per-token window."""

    def __init__(self, tick: float = 0.25) -> None:
        self.tick = tick
        self.longest = 0.0
        self.over_100ms = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> LoopStalls:
        self._task = asyncio.create_task(self._watch())
        return self

    async def _watch(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self.tick)
            late = time.perf_counter() - before - self.tick
            self.longest = max(self.longest, late)
            self.over_100ms += late if late > 0.1 else 0.0

    def stop(self) -> LoopStalls:
        if self._task is not None:
            self._task.cancel()
        return self


class GcTimer:
    """CPU seconds and collections the cyclic garbage collector spent while started (`gc.callbacks`)."""

    def __init__(self) -> None:
        self.cpu = 0.0
        self.collections = 0
        self._began = 0.0

    def _callback(self, phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.process_time()
        else:
            self.cpu += time.process_time() - self._began
            self.collections += 1

    def start(self) -> GcTimer:
        gc.callbacks.append(self._callback)
        return self

    def stop(self) -> GcTimer:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)
        return self


class PhaseTimer:
    """Wall and CPU seconds spent inside chosen functions (wrapped on the instance or module, same behaviour).

    Three clock reads a call and nothing else: each timed call's cost counts in the CPU the bench measures (reading
    /proc/self/io around every call, as this once did for the disk writes, was 0.05 s of a 100,000-member refresh)."""

    def __init__(self) -> None:
        self.spans: dict[str, Span] = {}

    def _add(self, key: str, done: Span) -> None:
        total = self.spans.setdefault(key, Span())
        total.wall, total.cpu = total.wall + done.wall, total.cpu + done.cpu
        total.loop_cpu += done.loop_cpu

    def wrap(self, owner: Any, name: str, label: str | None = None) -> None:
        """`owner.name`, a coroutine function."""
        original, key = getattr(owner, name), label or name

        async def timed(*args: Any, **kwargs: Any) -> Any:
            span = Span.start()
            try:
                return await original(*args, **kwargs)
            finally:
                self._add(key, span.stop())

        setattr(owner, name, timed)

    def wrap_sync(self, owner: Any, name: str, label: str | None = None) -> None:
        """`owner.name`, a plain function (a module's: its callers look the name up at each call)."""
        original, key = getattr(owner, name), label or name

        def timed(*args: Any, **kwargs: Any) -> Any:
            span = Span.start()
            try:
                return original(*args, **kwargs)
            finally:
                self._add(key, span.stop())

        setattr(owner, name, timed)


class BenchBot:
    def __init__(self, env: dict[str, str], db_path: Path) -> None:
        self.env = env
        self.db_path = db_path
        self.bot: PatronBot | None = None
        self.store: Store | None = None
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def services(self) -> Services:
        assert self.bot is not None
        return self.bot.services

    async def start(self, ready_timeout: float = 300) -> None:
        """Log in, connect, wait for discord.py's ready, then for the start-up refresh and its role jobs."""
        await self.connect(ready_timeout)
        await asyncio.wait_for(self.services.scheduler.first_run_done.wait(), timeout=ready_timeout)
        await self.settle(ready_timeout)

    async def connect(self, ready_timeout: float = 300) -> None:
        """Log in, connect and wait for discord.py's ready only (the start-up refresh may still be running)."""
        config = load_config(self.env, env_file=None)
        point_discord_at(config.discord_base_url)
        # As `python -m bot` opens it: the SQLite file, or PostgreSQL when the env has DATABASE_URL.
        key = TokenCipher.from_setting(config.token_encryption_key) if config.token_encryption_key else None
        self.store = await open_configured(config.database_url, self.db_path, key)
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        self.bot = PatronBot(config, self.store, self._session, guild_ready_timeout=0.5)
        await self.bot.login(config.discord_token)
        self._task = asyncio.create_task(self.bot.connect(reconnect=False))
        await asyncio.wait_for(self.bot.wait_until_ready(), timeout=ready_timeout)

    async def settle(self, timeout: float) -> None:
        """Until no webhook event or role job is due or running (the harness's own `wait_idle`s)."""
        for _ in range(3):
            await self.services.webhook_applier.wait_idle(timeout)
            await self.services.jobs.wait_idle(timeout)

    def cached_members(self, guild_id: int) -> tuple[int, bool]:
        assert self.bot is not None
        guild = self.bot.get_guild(guild_id)
        return (len(guild.members), guild.chunked) if guild is not None else (0, False)

    async def close(self) -> None:
        if self.bot is not None:
            await self.bot.close()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        if self.store is not None:
            await self.store.close()


async def start_world(fakes: FakesProcess, members: int, db_path: Path) -> tuple[BenchBot, dict, float]:
    """Seed the fakes process, then start the bot against it; (bot, seed info, seconds to ready + warm-up)."""
    seed = await fakes.call("seed", members=members, web_port=free_port(), db_path=str(db_path))
    bot = BenchBot(seed["env"], db_path)
    started = time.perf_counter()
    await bot.start()
    return bot, seed, time.perf_counter() - started


def ratio(measured: float, expected: float) -> str:
    return f"{measured:g}/{expected:g}" + (f" = {measured / expected:.3f}" if expected else "")
