"""Who a process is when it claims work, for how long a claim holds, and which servers' work it may claim.

Several bot processes may share one PostgreSQL database (issue 11, item 6). Each claims a role job or a webhook
event before running it (bot/store/claims.py), under its own `owner` id, unique per process run, so a restarted
process never mistakes its predecessor's claims for its own. A claim lasts `lease` and is renewed while the work
runs (`LeaseRenewal`); a process that dies stops renewing, and once the lease has run out another process may
claim the work again. Role jobs are claimed only for the servers of this process's shards (bot/domain/shards.py
`ShardSpec`), the ones its Discord gateway connection serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from types import TracebackType

from bot.domain.shards import ShardSpec

log = logging.getLogger(__name__)

#: How long a claim holds without renewal: long enough that a store hiccup between two renewals (every third of
#: it) loses nothing, short enough that a killed process's work starts again elsewhere within a minute.
DEFAULT_LEASE = timedelta(seconds=60)


def new_owner_id() -> str:
    """Unique per process run: host, pid and a random part (a pid is reused after a restart, in a container
    always)."""
    host = socket.gethostname()[:40] or "host"
    return f"{host}:{os.getpid()}:{secrets.token_hex(4)}"


#: Every server: one process, or SQLite.
ALL_SHARDS = ShardSpec()


def shard_condition(shards: ShardSpec, column: str = "guild_id") -> tuple[str, tuple[int, ...]]:
    """An SQL condition (with `AND`) keeping the servers of `shards` (bot/domain/shards.py's rule), and its
    parameters; empty when the process runs every shard. `>>` and `%` mean the same on both engines for 64-bit
    ids."""
    if shards.every_shard:
        return "", ()
    marks = ", ".join("?" for _ in shards.ids)
    return f" AND ({column} >> 22) % ? IN ({marks})", (shards.count, *sorted(shards.ids))


@dataclass(frozen=True)
class Claimer:
    """What a worker claims with: its process's owner id, the lease, and the shards whose servers it serves."""

    owner: str = field(default_factory=new_owner_id)
    lease: timedelta = DEFAULT_LEASE
    shards: ShardSpec = ALL_SHARDS

    def __post_init__(self) -> None:
        if self.lease <= timedelta(0):
            raise ValueError("a lease must be positive")


class LeaseRenewal:
    """While the body runs, `renew()` every third of the lease (on the event loop's time), so long work keeps its
    claims; a renewal that fails is logged and tried again at the next turn (the lease covers two misses)."""

    def __init__(self, renew: Callable[[], Awaitable[object]], lease: timedelta, what: str) -> None:
        self._renew = renew
        self._every = lease.total_seconds() / 3
        self._what = what
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LeaseRenewal:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"lease renewal: {self._what}")
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            try:
                await self._renew()
            except Exception:
                log.warning("%s: renewing the claims failed; trying again in %.0fs", self._what, self._every,
                            exc_info=True)
