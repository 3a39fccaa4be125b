"""The loopback fakes (Patreon and Discord) in a child process, driven over a pipe.

Why a child process: the bot's CPU seconds and peak RSS must be the bot's own. With the fakes in the same
process, rendering 100 pages of 1000 members and answering Discord would be counted as the bot's work. The
parent runs only the real bot (discord.py, store, services); this process serves both fakes on 127.0.0.1 and
does the benchmark's bookkeeping (seeding, changing pledges, counting calls, checking the result).

The fakes run as they are: like Discord, the fake gateway sends a large guild (over the IDENTIFY's
large_threshold) without its member list, and answers op-8 REQUEST_GUILD_MEMBERS (fakes/discord/member_requests.py).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from bench.seeding import World


def serve(conn: Connection, world_type: Callable[[], Any] = World) -> None:
    """The child's main: answer (command, kwargs) requests to a `world_type()` until "stop"."""
    asyncio.run(_serve(conn, world_type))


async def _serve(conn: Connection, world_type: Callable[[], Any]) -> None:
    world = world_type()
    loop = asyncio.get_running_loop()
    try:
        while True:
            command, kwargs = await loop.run_in_executor(None, conn.recv)
            if command == "stop":
                break
            try:
                if command == "rusage":
                    usage = resource.getrusage(resource.RUSAGE_SELF)
                    result: Any = {"cpu": usage.ru_utime + usage.ru_stime, "maxrss_mb": usage.ru_maxrss / 1024}
                else:
                    result = await getattr(world, command)(**kwargs)
                conn.send(("ok", result))
            except Exception:
                conn.send(("error", traceback.format_exc()))
    finally:
        await world.close()
        conn.send(("ok", None))


class FakesProcess:
    """The parent's handle: `request` blocks, `call` awaits without blocking the bot's event loop."""

    def __init__(self, world_type: Callable[[], Any] = World, name: str = "bench-fakes") -> None:
        """`world_type`: a module-level class (the spawned child imports it by name), bench/seeding.py's by default."""
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=serve, args=(child, world_type), name=name, daemon=True)

    def start(self) -> FakesProcess:
        self._process.start()
        return self

    def request(self, command: str, **kwargs: Any) -> Any:
        self._conn.send((command, kwargs))
        status, result = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"fakes process: {command} failed:\n{result}")
        return result

    async def call(self, command: str, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, lambda: self.request(command, **kwargs))

    def stop(self) -> None:
        if self._process.is_alive():
            try:
                self.request("stop")
            finally:
                self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.terminate()
