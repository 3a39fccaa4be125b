"""The loop both background workers share: the role-job worker and the webhook applier.

Each sleeps until its next item is due or someone wakes it, works, and goes again; a pass that raises is logged
and tried again shortly, so a store hiccup never ends the worker. What the loop cannot catch (a failure while
resuming, a bug) would end the task silently, so `start()` gives the task a done-callback that logs the crash at
ERROR with its traceback. The queued work itself stays in SQLite either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import datetime

log = logging.getLogger(__name__)


def log_crash(task: asyncio.Task[None]) -> None:
    """Done-callback: a background task that ended with an exception is logged, never lost with the task."""
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        log.error("%s crashed; its work waits in the store until the bot restarts", task.get_name(), exc_info=error)


class BackgroundWorker(ABC):
    """Wake, sleep until due, wait until idle, stop: subclasses say what a pass does and when the next is due."""

    #: Names the worker's task and its log lines.
    name = "background worker"
    #: The longest sleep without a wake-up or a due item (a cheap look at the store now and then).
    max_sleep = 60.0
    #: The pause after a pass that raised, so a broken store is not hammered.
    error_pause = 1.0

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    # -- what a subclass provides ------------------------------------------------------------------------

    async def resume(self) -> None:
        """Run once before the first pass (e.g. make work left by a crash due again)."""
        return None

    @abstractmethod
    async def work(self) -> bool:
        """One pass; True when it did something (the next pass follows at once)."""

    @abstractmethod
    async def next_due(self) -> datetime | None:
        """When the next item is due; None when nothing is (then a wake-up or `max_sleep` ends the wait)."""

    @abstractmethod
    async def busy(self) -> bool:
        """Whether anything is due or running now (work waiting out a back-off doesn't count)."""

    async def drain(self, timeout: float) -> None:
        """At `stop()`, after the loop ended: finish or cancel what the worker runs besides its loop."""
        return None

    # -- the loop ----------------------------------------------------------------------------------------

    def wake(self) -> None:
        """New work arrived: cut the current sleep short."""
        self._wake.set()

    def start(self) -> asyncio.Task[None]:
        """Run the loop in a task of its own whose crash is logged (see `log_crash`)."""
        if self._task is not None and not self._task.done():
            raise RuntimeError(f"{self.name} is already running")
        self._stopping = False  # here, not in the task: a `stop()` before the task's first step must count
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=self.name)
        self._task.add_done_callback(log_crash)
        return self._task

    async def run(self) -> None:
        """The loop in the caller's own task, until `stop()`; `start()` runs it in a task whose crash is logged."""
        self._stopping = False
        await self._loop()

    async def _loop(self) -> None:
        await self.resume()
        while not self._stopping:
            self._wake.clear()
            try:
                if await self.work():
                    continue
                due = await self.next_due()
            except Exception:  # a store hiccup must not end the worker while work keeps arriving
                log.exception("%s: a pass failed; trying again shortly", self.name)
                await asyncio.sleep(self.error_pause)
                continue
            await self._sleep_until(due)

    async def _sleep_until(self, due: datetime | None) -> None:
        timeout = self.max_sleep
        if due is not None:
            timeout = min(timeout, max(0.0, (due - self.clock()).total_seconds()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=max(timeout, 0.001))

    async def stop(self, timeout: float = 5.0) -> None:
        """Take no new work; give the loop `timeout` seconds to end its pass, then cancel it; then `drain`.

        Nothing is swallowed here: a crash was logged by the task's done-callback, and a cancelled pass leaves its
        work in the store.
        """
        self._stopping = True
        self._wake.set()
        task = self._task
        if task is not None and task is not asyncio.current_task():
            _done, late = await asyncio.wait([task], timeout=timeout)
            for pending in late:
                pending.cancel()
            if late:
                await asyncio.wait(late)
        await self.drain(timeout)

    async def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until nothing is due or running (tests, benchmarks and the demo settle on this)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while await self.busy():
            if loop.time() > deadline:
                raise TimeoutError(f"{self.name} did not settle in time")
            await asyncio.sleep(0.01)
