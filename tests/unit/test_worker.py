"""The background-worker base the role queue and the webhook applier share: wake, due, idle, stop, crashes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest

from bot.sync.worker import BackgroundWorker

WORKER_LOG = "bot.sync.worker"


def wall_clock() -> datetime:
    return datetime.now(UTC)


class Inbox(BackgroundWorker):
    """Handles in-memory items, each due at its own time; `fail` makes a hook raise (a broken store)."""

    name = "test inbox"

    def __init__(self, clock: Callable[[], datetime] = wall_clock) -> None:
        super().__init__(clock)
        self.max_sleep = 30.0  # far beyond the tests' timeouts: only a wake-up or a due item ends a sleep
        self.error_pause = 0.0
        self.items: list[tuple[datetime, str]] = []
        self.handled: list[str] = []
        self.handled_one = asyncio.Event()
        self.fail: dict[str, int] = {}
        self.hold = asyncio.Event()  # `work` blocks on it while `blocking`, after setting `blocked`
        self.blocked = asyncio.Event()
        self.blocking = False
        self.drained = False

    def put(self, item: str, *, due_in: timedelta = timedelta(), wake: bool = True) -> None:
        self.items.append((self.clock() + due_in, item))
        if wake:
            self.wake()

    def _maybe_fail(self, hook: str) -> None:
        if self.fail.get(hook, 0) > 0:
            self.fail[hook] -= 1
            raise RuntimeError(f"{hook} failed on purpose")

    async def resume(self) -> None:
        self._maybe_fail("resume")

    async def work(self) -> bool:
        self._maybe_fail("work")
        if self.blocking:
            self.blocked.set()
            await self.hold.wait()
        now = self.clock()
        due = [entry for entry in self.items if entry[0] <= now]
        if not due:
            return False
        self.items.remove(due[0])
        self.handled.append(due[0][1])
        self.handled_one.set()
        return True

    async def next_due(self) -> datetime | None:
        return min((at for at, _ in self.items), default=None)

    async def busy(self) -> bool:
        now = self.clock()
        return any(at <= now for at, _ in self.items)

    async def drain(self, timeout: float) -> None:
        self.drained = True


class ErrorSignal(logging.Handler):
    """Sets `seen` when the worker module logs at ERROR, so a test waits for the line instead of sleeping."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.set()


@pytest.fixture
async def error_signal() -> AsyncIterator[ErrorSignal]:
    signal = ErrorSignal()
    logger = logging.getLogger(WORKER_LOG)
    logger.addHandler(signal)
    try:
        yield signal
    finally:
        logger.removeHandler(signal)


async def test_a_wake_up_cuts_the_sleep_short_and_wait_idle_returns_once_all_is_handled() -> None:
    inbox = Inbox()
    task = inbox.start()
    try:
        await inbox.wait_idle(5)  # nothing queued: the worker is asleep for up to 30 s
        inbox.put("a")
        inbox.put("b")
        await inbox.wait_idle(5)
        assert inbox.handled == ["a", "b"]
        assert not task.done()
    finally:
        await inbox.stop()


async def test_without_a_wake_up_the_worker_sleeps_until_the_next_item_is_due() -> None:
    inbox = Inbox()
    inbox.put("later", due_in=timedelta(milliseconds=50), wake=False)
    assert await inbox.busy() is False, "waiting out its time does not count as busy"
    inbox.start()
    try:
        await asyncio.wait_for(inbox.handled_one.wait(), timeout=5)
        assert inbox.handled == ["later"]
    finally:
        await inbox.stop()


async def test_wait_idle_gives_up_when_work_never_settles() -> None:
    inbox = Inbox()  # never started: the item stays due
    inbox.put("stuck")
    with pytest.raises(TimeoutError, match="test inbox did not settle"):
        await inbox.wait_idle(0.05)


async def test_stop_ends_a_sleeping_loop_without_cancelling_it_then_drains(caplog: pytest.LogCaptureFixture) -> None:
    inbox = Inbox()
    task = inbox.start()
    await inbox.wait_idle(5)
    await inbox.stop(timeout=5)
    assert task.done() and not task.cancelled() and task.exception() is None
    assert inbox.drained
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_stop_cancels_a_pass_that_overruns_its_timeout(caplog: pytest.LogCaptureFixture) -> None:
    inbox = Inbox()
    inbox.blocking = True
    task = inbox.start()
    await asyncio.wait_for(inbox.blocked.wait(), timeout=5)
    await inbox.stop(timeout=0.05)
    assert task.cancelled()
    assert inbox.drained
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == [], "a cancelled pass is no crash"


async def test_the_worker_can_be_started_again_after_a_stop() -> None:
    inbox = Inbox()
    inbox.start()
    await inbox.stop()
    inbox.start()
    try:
        inbox.put("again")
        await inbox.wait_idle(5)
        assert inbox.handled == ["again"]
    finally:
        await inbox.stop()


async def test_starting_a_running_worker_twice_is_refused() -> None:
    inbox = Inbox()
    inbox.start()
    try:
        with pytest.raises(RuntimeError, match="already running"):
            inbox.start()
    finally:
        await inbox.stop()


async def test_a_pass_that_raises_is_logged_with_its_traceback_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture, error_signal: ErrorSignal
) -> None:
    inbox = Inbox()
    inbox.fail["work"] = 1
    task = inbox.start()
    try:
        await asyncio.wait_for(error_signal.seen.wait(), timeout=5)
        inbox.put("after the failure")
        await asyncio.wait_for(inbox.handled_one.wait(), timeout=5)
        assert not task.done()
    finally:
        await inbox.stop()
    (record,) = [r for r in caplog.records if r.name == WORKER_LOG and r.levelno == logging.ERROR]
    assert "test inbox: a pass failed" in record.getMessage()
    assert record.exc_info is not None and "work failed on purpose" in str(record.exc_info[1])


async def test_a_crash_outside_the_loops_try_is_logged_at_error_with_its_traceback(
    caplog: pytest.LogCaptureFixture, error_signal: ErrorSignal
) -> None:
    inbox = Inbox()
    inbox.fail["resume"] = 1  # raises before the loop's try, so only the task's done-callback can report it
    task = inbox.start()
    await asyncio.wait_for(error_signal.seen.wait(), timeout=5)
    assert task.done() and not task.cancelled()
    (record,) = [r for r in caplog.records if r.name == WORKER_LOG and r.levelno == logging.ERROR]
    assert "test inbox crashed" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)
    assert "resume failed on purpose" in caplog.text, "the traceback is in the log"
    await inbox.stop()  # shutdown after a crash: already logged, nothing raised again

