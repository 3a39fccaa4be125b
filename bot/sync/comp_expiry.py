"""The comp expiry sweep: a comp whose end has come gets its member's role job, then is marked ended, once.

The removal itself is the role job's (the one reconcile engine, which sees the comp expired by the clock alone),
and it is idempotent: the ledger says whether the role is still the bot's to take. So a crash or restart between
queueing the job and marking the comp at worst queues the member again (the queue coalesces, the engine finds
nothing to change); the role is removed once, and the "comp ended" line is posted once, after the mark.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from bot.store import Store
from bot.sync.reconcile import ReconcileService
from bot.sync.role_jobs import RoleJobs
from bot.sync.worker import BackgroundWorker

log = logging.getLogger(__name__)


class CompExpiry(BackgroundWorker):
    name = "comp expiry"

    def __init__(
        self, store: Store, jobs: RoleJobs, reconcile: ReconcileService, clock: Callable[[], datetime]
    ) -> None:
        super().__init__(clock)
        self.store = store
        self.jobs = jobs
        self.reconcile = reconcile
        #: Comps this process ended (tests read it).
        self.ended = 0

    async def work(self) -> bool:
        now = self.clock()
        due = await self.store.due_comps(now)
        if not due:
            return False
        await self.jobs.enqueue_many(sorted({(comp.guild_id, comp.user_id) for comp in due}), "comp ended")
        for comp in await self.store.end_comps(due, now, "expired"):
            self.ended += 1
            role = self.reconcile.gateway.role_name(comp.guild_id, comp.role_id)
            await self.reconcile.log_event(  # the bot's log line and the log channel's
                comp.guild_id, f"The comp of @{role} for <@{comp.user_id}> ended (given by <@{comp.granted_by}>)"
            )
        return True

    async def next_due(self) -> datetime | None:
        return await self.store.next_comp_expiry()

    async def busy(self) -> bool:
        return bool(await self.store.due_comps(self.clock(), limit=1))
