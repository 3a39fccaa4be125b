"""Run the real bot process: open the store and HTTP session, start discord.py, close it all cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import datetime
from typing import Any

import aiohttp
import discord
from discord.ext import commands

from bot.config import Config
from bot.discord_io.client import make_bot
from bot.discord_io.endpoint import point_discord_at
from bot.store import Store
from bot.store.files import StoreUnusable, exclusive_use
from bot.store.opening import open_configured
from bot.store.token_cipher import TokenCipher, TokenKeyError
from bot.sync.reconcile import utc_now

log = logging.getLogger(__name__)

#: How long a starting process waits for its shards to be free: a process killed a moment ago holds them until
#: PostgreSQL notices its connection is gone (a supervisor restarts it at once).
SHARD_LOCK_WAIT = 15.0
#: How often a sharded process checks it still holds its shards (`run_while_held`).
SHARD_WATCH_EVERY = 5.0


def setup_logging(level: str) -> None:
    discord.utils.setup_logging(level=getattr(logging, level), root=True)


async def run_bot(config: Config, clock: Callable[[], datetime] = utc_now) -> int:
    """Returns the process exit code: 0 on a clean stop, 2 when Discord rejects the token or the database, the
    token key or the port can't be used (one line on stderr naming the setting, never a traceback)."""
    try:
        # The SQLite file's lock (one bot per file); PostgreSQL is shared by design and has no file.
        with contextlib.nullcontext() if config.database_url else exclusive_use(config.database_path):
            problem = listen_problem(config.web_host, config.port)
            if problem is not None:
                print(f"error: {problem}", file=sys.stderr)
                return 2
            cipher = TokenCipher.from_setting(config.token_encryption_key) if config.token_encryption_key else None
            store = await open_configured(config.database_url, config.database_path, cipher)
            try:
                async with shards_held(store, config) as refusal:
                    if refusal is not None:
                        print(f"error: {refusal}", file=sys.stderr)
                        return 2
                    return await run_while_held(store, _shard_locks(config), _serve(config, store, clock))
            finally:
                await store.close()  # after the shards are let go: their locks live on the store's connection
    except StoreUnusable as error:
        print(f"error: {'DATABASE_URL' if config.database_url else 'DATABASE_PATH'} {error}", file=sys.stderr)
    except TokenKeyError as error:
        print(f"error: {error}; the stored tokens were left as they are", file=sys.stderr)
    return 2


#: The SHARD_COUNT the sharded processes on this database run with (service_state), to refuse a mixed layout.
SHARD_LAYOUT_FACT = "shard_count"


@contextlib.asynccontextmanager
async def shards_held(store: Store, config: Config, wait: float = SHARD_LOCK_WAIT) -> AsyncIterator[str | None]:
    """Hold each shard this process runs for as long as it runs (an advisory lock on PostgreSQL, freed with the
    process's connection when it dies), so a second process started with an overlapping SHARD_IDS stops at once
    instead of running a shard twice (each of its servers' events and commands handled by two processes); and
    refuse a SHARD_COUNT other than the one a running process uses (the two layouts would split the servers
    differently, so some would have two owners). Yields why this process may not run, or None. Unsharded, or on
    the SQLite file (its lock file is one process's), there is nothing to hold."""
    if config.shard_count is None or not config.database_url:
        yield None
        return
    shards = config.shards
    async with contextlib.AsyncExitStack() as stack:
        taken = [
            shard
            for shard in shards.ids
            if not await stack.enter_async_context(store.exclusive(_shard_lock(shard, shards.count), wait=wait))
        ]
        if taken:
            yield (
                f"SHARD_IDS {','.join(map(str, taken))}: another process runs "
                f"{'that shard' if len(taken) == 1 else 'those'} of SHARD_COUNT {shards.count} on this database "
                "(every shard must be run by exactly one process)"
            )
            return
        running = await store.get_fact(SHARD_LAYOUT_FACT)
        if isinstance(running, int) and running != shards.count and await _layout_runs(store, running):
            yield (
                f"SHARD_COUNT {shards.count}: another process on this database runs with SHARD_COUNT {running}; "
                "stop every process before changing it"
            )
            return
        await store.set_fact(SHARD_LAYOUT_FACT, shards.count)
        yield None


def _shard_lock(shard: int, count: int) -> str:
    return f"shard {shard} of {count}"


def _shard_locks(config: Config) -> list[str]:
    """The locks `shards_held` took for this process (none unsharded or on SQLite)."""
    if config.shard_count is None or not config.database_url:
        return []
    return [_shard_lock(shard, config.shards.count) for shard in config.shards.ids]


async def run_while_held(
    store: Store, names: list[str], work: Coroutine[Any, Any, int], every: float = SHARD_WATCH_EVERY
) -> int:
    """Run `work` (the bot) while this process still holds each of `names`: a shard lock lost with its PostgreSQL
    session (a failover, a killed backend) lets another process start that shard, and two processes on one shard
    handle each of its events twice, so the process stops with one line and exit code 2; its supervisor restarts
    it, and the new process takes the shard again (or finds it run by another and stops)."""
    serving = asyncio.ensure_future(work)
    if not names:
        return await serving
    watching = asyncio.ensure_future(_first_lost(store, names, every))
    try:
        await asyncio.wait({serving, watching}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        serving.cancel()
        watching.cancel()
        raise
    watching.cancel()
    if serving.done():
        return serving.result()
    print(f"error: {watching.result()} was lost (its PostgreSQL session ended); stopping", file=sys.stderr)
    serving.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await serving
    return 2


async def _first_lost(store: Store, names: list[str], every: float) -> str:
    while True:
        await asyncio.sleep(every)
        for name in names:
            if not await store.still_holds(name):
                return name


async def _layout_runs(store: Store, count: int) -> bool:
    """Whether some process holds one of that layout's shards now."""
    for shard in range(count):
        async with store.exclusive(_shard_lock(shard, count)) as free:
            if not free:
                return True
    return False


def listen_problem(host: str, port: int) -> str | None:
    """Why the web server couldn't listen on host:port, checked before Discord is contacted; None when it can.

    Binds the way aiohttp will (SO_REUSEADDR, every address the host resolves to) and lets go at once.
    """
    try:
        addresses = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        return f"WEB_HOST {host!r} can't be resolved ({error.strerror})"
    for family, kind, protocol, _, address in addresses:
        with socket.socket(family, kind, protocol) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as error:
                return _listen_error(host, port, error)
    return None


def _listen_error(host: str, port: int, error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return f"PORT {port} is already in use (WEB_HOST {host})"
    if error.errno == errno.EACCES:
        return f"PORT {port} needs privileges this process doesn't have (use a port above 1023)"
    if error.errno == errno.EADDRNOTAVAIL:
        return f"WEB_HOST {host} is not an address of this machine"
    return f"WEB_HOST {host} PORT {port}: can't listen ({error.strerror})"


async def _serve(config: Config, store: Store, clock: Callable[[], datetime]) -> int:
    if not config.uses_real_discord:
        point_discord_at(config.discord_base_url)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            bot = make_bot(config, store, session, clock)
            stopping = set()
            # Hosts stop processes with SIGTERM: close the Discord session and the web server cleanly.
            asyncio.get_running_loop().add_signal_handler(
                signal.SIGTERM, lambda: stopping.add(asyncio.create_task(bot.close()))
            )
            async with bot:
                await bot.start(config.discord_token)
    except discord.LoginFailure:
        print("error: Discord rejected DISCORD_TOKEN (check the bot token in .env)", file=sys.stderr)
        return 2
    except discord.PrivilegedIntentsRequired:
        print(
            "error: enable Server Members Intent for the bot (Developer Portal → Bot → Privileged Gateway Intents)",
            file=sys.stderr,
        )
        return 2
    except commands.ExtensionFailed as error:
        if not isinstance(error.original, OSError):
            raise
        # Someone took the port between the check above and the web server's start.
        print(f"error: {_listen_error(config.web_host, config.port, error.original)}", file=sys.stderr)
        return 2
    return 0
