"""Which campaign's refresh goes first, and how many run at once, so that no campaign starves.

Why: one install refreshes every connected campaign on one Patreon budget (bot/patreon/budget.py). Walking them in
a fixed order would put the same campaigns last every time: when a refresh is cut short (Patreon down, the bot
restarted) those are the ones that never get refreshed. So each run starts with the campaign whose last complete
refresh is the oldest (never refreshed first, then failed ones, then in the order they last completed), and the
budget serves the pages of campaigns running side by side round-robin.

How many run side by side (`concurrency`): one by default. Measured by bench/campaigns_bench.py (50 campaigns of
2,000): one listing at a time stays below Patreon's 100 requests per 2 s (the bot's own work per page, parsing,
storing and planning 1,000 members, is most of its time), and a webhook's look-up still goes first: look-ups have
their own lane and a share of the budget the refresh can never take. Four at once cut a webhook's p99 from 3.4 s
to 1.7 s, but the one SQLite connection then refused commits made while another campaign's statement was in
progress, and seven campaigns' refreshes failed (nothing removed). The budget keeps any number under the limit.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class RefreshRotation:
    """Remembers when each campaign (by its key: the token subject) last completed a refresh."""

    def __init__(self) -> None:
        self._completed: dict[str, int] = {}
        self._ticks = itertools.count(1)

    def order(self, items: Sequence[T], key: Callable[[T], str]) -> list[T]:
        """Oldest complete refresh first; never completed (new, or failing every time) before all of them; ties
        keep the given order."""
        return sorted(items, key=lambda item: self._completed.get(key(item), 0))

    def finished(self, key: str, ok: bool) -> None:
        """A refresh of `key` ended; only a complete one moves it to the back of the line."""
        if ok:
            self._completed[key] = next(self._ticks)

    def forget_except(self, keys: set[str]) -> None:
        for gone in set(self._completed) - keys:
            del self._completed[gone]


async def run_each(items: Sequence[T], run: Callable[[T], Awaitable[R]], concurrency: int = 1) -> list[R]:
    """`run(item)` for every item, at most `concurrency` at once, started in the given order; the results in that
    order. One that raises stops nothing else (its exception is raised after all finished)."""
    if concurrency < 1:
        raise ValueError("at least one refresh must run")
    if concurrency == 1:
        return [await run(item) for item in items]
    gate = asyncio.Semaphore(concurrency)

    async def one(item: T) -> R:
        async with gate:
            return await run(item)

    tasks = [asyncio.ensure_future(one(item)) for item in items]
    try:
        await asyncio.gather(*tasks, return_exceptions=True)
    except asyncio.CancelledError:
        for task in tasks:
            task.cancel()
        raise
    return [task.result() for task in tasks]


class ExclusiveLocks(Protocol):
    """The store's `exclusive` (bot/store/claims.py): one holder of a name at a time, across processes."""

    def exclusive(self, name: str, *, wait: float = 0.0) -> AbstractAsyncContextManager[bool]: ...


#: A skipped campaign's report says this; it is no failure.
SKIPPED = "skipped: another process is refreshing this campaign now"


class OneProcessAtATime:
    """Runs a piece of work only when no other process (sharing the database) runs the same one.

    Why: several bot processes share one PostgreSQL database (issue 11), and each refreshes on its own timer; two
    listing one campaign at once would ask Patreon twice and race each other's writes. So a campaign's refresh
    takes its lock (an advisory lock on PostgreSQL, an in-process lock on SQLite, whose file one process owns) and a
    process that can't get it skips the campaign this round instead of waiting: the holder is doing that work now.
    One log line when a name starts being skipped, none while it stays skipped.
    """

    def __init__(self, locks: ExclusiveLocks) -> None:
        self._locks = locks
        self._skipping: set[str] = set()

    async def run(self, name: str, work: Callable[[], Awaitable[R]]) -> R | None:
        """`work()`'s result, or None when another holder has `name` (nothing ran)."""
        async with self._locks.exclusive(name) as held:
            if held:
                self._skipping.discard(name)
                return await work()
        if name not in self._skipping:
            self._skipping.add(name)
            log.info("%s: skipped, another process is doing it now (said once until it runs here again)", name)
        return None
