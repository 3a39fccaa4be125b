"""The durable role-job queue and its worker: how webhooks and refreshes get roles changed on Discord.

A job is "reconcile this member in this guild" and sits in SQLite (one row per member, coalesced) until the
reconcile engine has applied it, so a crash or a Discord outage loses nothing and a restart resumes. Transient
failures retry with exponential back-off up to `max_attempts`; permanent ones (missing permission, member gone)
are parked as failed, reported once to the log channel, and only tried again when a later refresh or webhook
asks for that member again.

Fair across servers: a job starts only when its server has a free slot (`per_guild` jobs running), and servers
take turns, so one server's long drain never holds the slots another server's jobs need (no head-of-line
blocking). Within a server, jobs start in due order: a webhook's or a link's job is dated a day back
(`URGENT_HEAD_START`), so it starts next, and its calls go first among those waiting for the server's bucket
(bot/sync/role_pacing.py keeps every server under its bucket and all under the global limit).

Several processes may share the queue (PostgreSQL, issue 11): each works only its shards' servers (`Claimer.shards`)
and claims a job before starting it (bot/store/claims.py), so no job runs in two processes; while a job runs its
claim is renewed every third of the lease, and a killed process's jobs are free again once their lease ran out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, deque
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from bot.store import Store
from bot.store.leases import Claimer
from bot.store.queues import RoleJob
from bot.sync.reconcile import ReconcileService
from bot.sync.role_gateway import RoleGateway
from bot.sync.role_pacing import ROLE_CALLS_PER_SECOND, RoleCallPacer, TokenBucket, describe_duration
from bot.sync.worker import BackgroundWorker, log_crash

__all__ = ["ROLE_CALLS_PER_SECOND", "RoleJobs", "TokenBucket"]

log = logging.getLogger(__name__)

#: A server's drain is reported (log and log channel) when at least this many members were queued at once...
LARGE_DRAIN = 100
#: ...at most this often, with what is done, what is left and how long that takes at Discord's pace.
PROGRESS_EVERY = timedelta(minutes=2)


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
        per_guild: int = 3,
        max_in_flight: int = 64,
        max_attempts: int = 8,
        retry_base: float = 2.0,
        retry_cap: float = 600.0,
        pacer: RoleCallPacer | None = None,
        claimer: Claimer | None = None,
    ) -> None:
        """`pacer` is the one the reconcile engine's calls go through (None: unpaced); the queue reads its rate
        for honest estimates of how long queued changes take. `claimer`: this process's owner id, lease and
        shards (None: a fresh owner id, every server)."""
        super().__init__(clock)
        self.claimer = claimer or Claimer()
        #: When the running jobs' claims are next renewed (a third of the lease after the last renewal).
        self._renew_at: datetime | None = None
        self.pacer = pacer
        self.store = store
        self.reconcile = reconcile
        self.gateway = gateway
        self.per_guild = per_guild
        self.max_in_flight = max_in_flight
        self.max_attempts = max_attempts
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self._in_flight: dict[tuple[int, int], asyncio.Task[None]] = {}
        #: Which server goes first in the next pass (round-robin).
        self._turn = 0
        #: Completion counter, and when each recently finished job finished (see `work`).
        self._epoch = 0
        self._finished: dict[tuple[int, int], int] = {}
        #: Jobs finished since start (tests and benchmarks read these).
        self.applied = 0
        self.failed = 0
        #: Per server: jobs finished since its queue was last empty, and when its progress is next reported.
        self._drained: dict[int, int] = {}
        self._next_progress: dict[int, datetime] = {}

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
        """Jobs left pending at the last stop or crash are due at once (on SQLite, claimed or not: only this
        process uses the file)."""
        await self.store.release_claims_of_earlier_runs(self.claimer.owner)
        resumed = await self.store.reschedule_role_jobs(self.clock())
        pending = len(await self.store.pending_role_jobs())
        if pending:
            log.info("role queue: resuming %d pending job(s) (%d were waiting out a back-off)", pending, resumed)

    async def work(self) -> bool:
        """Start due jobs, one server at a time in turn, each only while its server has a free slot and once this
        process has claimed it."""
        await self._renew_claims()
        room = self.max_in_flight - len(self._in_flight)
        if room <= 0:
            return False
        epoch = self._epoch
        running = Counter(guild_id for guild_id, _user in self._in_flight)
        # Each server's first jobs only (its running ones may show up among them): one server's thousands of
        # jobs can't crowd another's out of the answer. Only this process's servers, and jobs nobody else holds.
        now = self.clock()
        due = await self.store.due_role_jobs_per_guild(
            now, 2 * self.per_guild, owner=self.claimer.owner, shards=self.claimer.shards
        )
        queues: dict[int, deque[RoleJob]] = {}
        for job in due:
            # A job that finished while the query ran may show up as due from before its update.
            if job.key not in self._in_flight and self._finished.get(job.key, -1) <= epoch:
                queues.setdefault(job.guild_id, deque()).append(job)
        self._finished = {key: at for key, at in self._finished.items() if at > epoch}
        for guild_id in [g for g in self._drained if g not in queues and not running[g]]:
            await self._drain_ended(guild_id)
        guilds = sorted(queues)
        if guilds:
            first = self._turn % len(guilds)
            guilds = guilds[first:] + guilds[:first]
            self._turn += 1
        chosen: list[RoleJob] = []
        progress = True
        while room > 0 and progress:
            progress = False
            for guild_id in guilds:
                if room > 0 and queues[guild_id] and running[guild_id] < self.per_guild:
                    chosen.append(queues[guild_id].popleft())
                    running[guild_id] += 1
                    room, progress = room - 1, True
        # In the order chosen: the claim may come back in any order, and `seq` may have moved meanwhile.
        claimed = {
            job.key: job
            for job in await self.store.claim_role_jobs(
                [job.key for job in chosen], owner=self.claimer.owner, now=now, lease=self.claimer.lease
            )
        }
        for job in chosen:
            if job.key in claimed:
                self._start(claimed[job.key])
        if claimed and self._renew_at is None:
            self._renew_at = now + self.claimer.lease / 3
        return bool(claimed)

    async def next_due(self) -> datetime | None:
        # While jobs run, each one's end wakes the loop (and the claims' renewal is due); otherwise sleep until the
        # earliest back-off ends, or another process's claim runs out.
        if self._in_flight:
            return self._renew_at
        return await self.store.next_claimable_role_job(owner=self.claimer.owner, shards=self.claimer.shards)

    async def busy(self) -> bool:
        return bool(self._in_flight) or bool(
            await self.store.due_role_jobs_per_guild(
                self.clock(), 1, owner=self.claimer.owner, shards=self.claimer.shards
            )
        )

    async def _renew_claims(self) -> None:
        """Every third of the lease, extend the running jobs' claims by a lease, so a long job keeps its own."""
        now = self.clock()
        if not self._in_flight:
            self._renew_at = None
        elif self._renew_at is not None and now >= self._renew_at:
            self._renew_at = now + self.claimer.lease / 3
            await self.store.renew_role_job_claims(
                list(self._in_flight), owner=self.claimer.owner, until=now + self.claimer.lease
            )

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
        if job.guild_id not in self.gateway.guild_ids():
            log.info("role queue: dropping job for user=%s: the bot is not in guild=%s", job.user_id, job.guild_id)
            await self.store.finish_role_job(job)
            return
        try:
            outcome = await self.reconcile.reconcile_member(
                job.guild_id, job.user_id, job.cause, queued=True, priority=job.next_attempt_at.timestamp()
            )
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
            return
        await self._report_progress(job.guild_id)

    async def _drain_ended(self, guild_id: int) -> None:
        """Nothing of the server's is due or running: say so once after a large drain (unless jobs wait out a
        back-off)."""
        if await self.store.count_pending_role_jobs(guild_id):
            return
        done = self._drained.pop(guild_id, 0)
        self._next_progress.pop(guild_id, None)
        if done >= LARGE_DRAIN:
            await self.reconcile.log_event(guild_id, f"Role queue: all {done:,} member(s) done.", queued=True)

    async def _report_progress(self, guild_id: int) -> None:
        """Now and then during a large drain, one line: done of total and an honest estimate of the rest."""
        done = self._drained[guild_id] = self._drained.get(guild_id, 0) + 1
        now = self.clock()
        if now < self._next_progress.get(guild_id, now):
            return
        self._next_progress[guild_id] = now + PROGRESS_EVERY  # before the query: jobs finish meanwhile
        left = await self.store.count_pending_role_jobs(guild_id)
        if left == 0 or done + left < LARGE_DRAIN:
            return
        estimate = ""
        if self.pacer is not None:
            rate = self.pacer.calls_per_second
            estimate = f"; {describe_duration(left / rate)} to go at Discord's pace of about {rate:.1f} per second"
        await self.reconcile.log_event(
            guild_id, f"Role queue: {done:,} of {done + left:,} member(s) done{estimate}.", queued=True
        )

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
