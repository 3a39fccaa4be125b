"""The durable role-job queue and its worker: how webhooks and refreshes get roles changed on Discord.

A job is "reconcile this member in this guild" and sits in SQLite (one row per member, coalesced) until the
reconcile engine has applied it, so a crash or a Discord outage loses nothing and a restart resumes. Transient
failures retry with exponential back-off up to `max_attempts`; permanent ones (missing permission, member gone)
are parked as failed, reported once to the log channel, and only tried again when a later refresh or webhook
asks for that member again. Per-guild concurrency is bounded, and every role change passes one token bucket
that keeps the bot under Discord's global 50 requests per second (discord.py itself handles 429s).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta

from bot.store import Store
from bot.store.queues import RoleJob
from bot.sync.reconcile import ReconcileService, RoleGateway
from bot.sync.worker import BackgroundWorker, log_crash

log = logging.getLogger(__name__)


#: Role calls per second across all servers: under Discord's global 50/s, with room for commands and the log.
ROLE_CALLS_PER_SECOND = 40.0


class TokenBucket:
    """At most `capacity` requests at once and `rate` per second after that (so ≤ capacity + rate in any second)."""

    def __init__(
        self,
        rate: float = ROLE_CALLS_PER_SECOND,
        capacity: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.rate = rate
        self.capacity = capacity
        self._tokens = capacity
        self._monotonic = monotonic
        self._sleep = sleep
        self._updated = monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self._monotonic()
                self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
                self._updated = now
                if self._tokens >= 1 - 1e-9:  # float rounding must not leave a waiter spinning
                    self._tokens = max(0.0, self._tokens - 1)
                    return
                await self._sleep((1 - self._tokens) / self.rate)


class RoleJobs(BackgroundWorker):
    """Producers call `enqueue`/`enqueue_many`; the worker (one per process) is `start()`ed by a cog."""

    name = "role queue"

    def __init__(
        self,
        store: Store,
        reconcile: ReconcileService,
        gateway: RoleGateway,
        clock: Callable[[], datetime],
        *,
        per_guild: int = 4,
        max_in_flight: int = 64,
        max_attempts: int = 8,
        retry_base: float = 2.0,
        retry_cap: float = 600.0,
    ) -> None:
        super().__init__(clock)
        self.store = store
        self.reconcile = reconcile
        self.gateway = gateway
        self.per_guild = per_guild
        self.max_in_flight = max_in_flight
        self.max_attempts = max_attempts
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self._in_flight: dict[tuple[int, int], asyncio.Task[None]] = {}
        self._guild_gates: dict[int, asyncio.Semaphore] = {}
        #: Completion counter, and when each recently finished job finished (see `work`).
        self._epoch = 0
        self._finished: dict[tuple[int, int], int] = {}
        #: Jobs finished since start (tests and benchmarks read these).
        self.applied = 0
        self.failed = 0

    # -- producers -------------------------------------------------------------------------------------

    async def enqueue(self, guild_id: int, user_id: int, cause: str, *, urgent: bool = False) -> None:
        await self.enqueue_many([(guild_id, user_id)], cause, urgent=urgent)

    async def enqueue_many(self, keys: Iterable[tuple[int, int]], cause: str, *, urgent: bool = False) -> int:
        """Persist the jobs first, then wake the worker; return how many rows were written."""
        written = await self.store.enqueue_role_jobs(list(keys), cause, self.clock(), urgent=urgent)
        self.wake()
        return written

    # -- the worker --------------------------------------------------------------------------------------

    async def resume(self) -> None:
        """Jobs left pending at the last stop or crash are due at once."""
        resumed = await self.store.reschedule_role_jobs(self.clock())
        pending = len(await self.store.pending_role_jobs())
        if pending:
            log.info("role queue: resuming %d pending job(s) (%d were waiting out a back-off)", pending, resumed)

    async def work(self) -> bool:
        """Start the due jobs there is room for; each runs in a task of its own."""
        room = self.max_in_flight - len(self._in_flight)
        started = 0
        if room > 0:
            epoch = self._epoch
            due = await self.store.due_role_jobs(self.clock(), limit=room + len(self._in_flight))
            for job in due:
                # A job that finished while the query ran may show up as due from before its update.
                if job.key in self._in_flight or self._finished.get(job.key, -1) > epoch or started >= room:
                    continue
                self._start(job)
                started += 1
            self._finished = {key: at for key, at in self._finished.items() if at > epoch}
        return started > 0

    async def next_due(self) -> datetime | None:
        # While jobs run, each one's end wakes the loop; otherwise sleep until the earliest back-off ends.
        return None if self._in_flight else await self.store.next_role_job_due()

    async def busy(self) -> bool:
        return bool(self._in_flight) or bool(await self.store.due_role_jobs(self.clock(), limit=1))

    async def drain(self, timeout: float) -> None:
        """Give running jobs `timeout` seconds, then cancel them (they stay queued)."""
        running = list(self._in_flight.values())
        if running:
            _done, late = await asyncio.wait(running, timeout=timeout)
            for task in late:
                task.cancel()
            for task in late:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def _start(self, job: RoleJob) -> None:
        name = f"role job guild={job.guild_id} user={job.user_id}"
        task = asyncio.get_running_loop().create_task(self._execute(job), name=name)
        self._in_flight[job.key] = task

        def done(_: asyncio.Task[None]) -> None:
            log_crash(task)  # e.g. the store failed while recording the outcome: the job stays queued
            self._in_flight.pop(job.key, None)
            self._epoch += 1
            self._finished[job.key] = self._epoch
            self.wake()

        task.add_done_callback(done)

    async def _execute(self, job: RoleJob) -> None:
        gate = self._guild_gates.setdefault(job.guild_id, asyncio.Semaphore(self.per_guild))
        async with gate:
            if job.guild_id not in self.gateway.guild_ids():
                log.info("role queue: dropping job for user=%s: the bot is not in guild=%s", job.user_id, job.guild_id)
                await self.store.finish_role_job(job)
                return
            try:
                outcome = await self.reconcile.reconcile_member(job.guild_id, job.user_id, job.cause, queued=True)
            except Exception as error:  # anything unexpected is treated as transient, within the attempt bound
                log.warning("role queue: job guild=%s user=%s raised", job.guild_id, job.user_id, exc_info=True)
                await self._retry(job, f"{type(error).__name__}: {error}")
                return
        if outcome.error is None:
            await self.store.finish_role_job(job)
            self.applied += 1
        elif outcome.permanent:
            await self._fail(job, outcome.error)
        else:
            await self._retry(job, outcome.error)

    async def _retry(self, job: RoleJob, error: str) -> None:
        attempts = job.attempts + 1
        if attempts >= self.max_attempts:
            await self._fail(job, f"{error} (gave up after {attempts} attempts)")
            return
        delay = min(self.retry_cap, self.retry_base * 2 ** (attempts - 1))
        log.info(
            "role queue: guild=%s user=%s failed (%s); attempt %d/%d in %.1fs",
            job.guild_id,
            job.user_id,
            error,
            attempts,
            self.max_attempts,
            delay,
        )
        await self.store.retry_role_job(job, self.clock() + timedelta(seconds=delay), error)

    async def _fail(self, job: RoleJob, error: str) -> None:
        self.failed += 1
        await self.store.fail_role_job(job, error)
        log.warning("role queue: guild=%s user=%s failed for good: %s", job.guild_id, job.user_id, error)
        if not job.reported:
            await self.reconcile.log_event(
                job.guild_id,
                f"Could not update roles for <@{job.user_id}>: {error}. "
                "I'll try again at the next refresh; `/patreon-admin check` lists such members.",
                queued=True,
            )
