"""Claims, so that processes sharing one database never do the same work twice (issue 11, item 6).

A role job or a webhook event is run only by the process that claimed it: the claim writes the process's owner id
and a lease expiry (bot/store/leases.py) into the row, in one statement that only takes rows nobody else holds.
On PostgreSQL that statement locks the rows it reads with `FOR UPDATE SKIP LOCKED`, so two processes claiming at
the same moment each get other rows, never the same one, and neither waits for the other. On SQLite one process
owns the file (bot/store/files.py `exclusive_use`) and its one connection runs one statement at a time, so a plain
UPDATE is already atomic; its rows are read back by owner and expiry, not with RETURNING (bot/store/queues.py
`SqlRunner` says why).

A claim is free again once its lease ran out (its process was killed, or cut off); a process's own claims are
always free to itself (its worker knows what it runs). Finishing, retrying or failing checks the owner (and the
job's `seq`), so a process whose lease ran out while it worked can't overwrite what the new owner did.

`exclusive(name)` is the other kind of claim: one process at a time runs a campaign's refresh (see there).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime, timedelta

from bot.domain.shards import ShardSpec
from bot.store.database import POSTGRES, SQLITE
from bot.store.leases import ALL_SHARDS, shard_condition
from bot.store.queues import (
    CLAIMABLE,
    PENDING,
    RoleJob,
    SqlRunner,
    WebhookEvent,
    _parse,
    _role_job,
    _webhook_event,
    iso_utc,
)

log = logging.getLogger(__name__)


_CLAIM_JOBS_POSTGRES = f"""
    UPDATE role_jobs AS job SET claimed_by = ?, claim_expires_at = ?
    FROM (SELECT guild_id, discord_user_id FROM role_jobs
          WHERE (guild_id, discord_user_id) IN (SELECT * FROM unnest(?::bigint[], ?::bigint[]))
          AND state = '{PENDING}' AND next_attempt_at <= ? AND {CLAIMABLE}
          FOR UPDATE SKIP LOCKED) AS free
    WHERE job.guild_id = free.guild_id AND job.discord_user_id = free.discord_user_id
    RETURNING job.*
"""
_CLAIM_JOB_SQLITE = f"""
    UPDATE role_jobs SET claimed_by = ?, claim_expires_at = ?
    WHERE guild_id = ? AND discord_user_id = ? AND state = '{PENDING}' AND next_attempt_at <= ? AND {CLAIMABLE}
"""
_CLAIM_EVENTS_POSTGRES = f"""
    UPDATE webhook_events AS event SET claimed_by = ?, claim_expires_at = ?
    FROM (SELECT id FROM webhook_events WHERE state = '{PENDING}' AND next_attempt_at <= ? AND {CLAIMABLE}
          ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED) AS free
    WHERE event.id = free.id
    RETURNING event.*
"""
_CLAIM_EVENTS_SQLITE = f"""
    UPDATE webhook_events SET claimed_by = ?, claim_expires_at = ?
    WHERE id IN (SELECT id FROM webhook_events WHERE state = '{PENDING}' AND next_attempt_at <= ? AND {CLAIMABLE}
                 ORDER BY id LIMIT ?)
"""
#: How often `exclusive(wait=…)` asks PostgreSQL again for a lock another process holds.
RETRY_LOCK_EVERY = 0.05
#: When a pending row is next workable for `owner`: when due, or when another's lease ends if that is later.
_NEXT_FREE = (
    "MIN(CASE WHEN claimed_by IS NULL OR claimed_by = ? OR claim_expires_at <= next_attempt_at"
    " THEN next_attempt_at ELSE claim_expires_at END)"
)


def lock_key(name: str) -> int:
    """A signed 64-bit advisory-lock key for a name (PostgreSQL's lock space is one bigint)."""
    return int.from_bytes(hashlib.sha256(b"patreon-role-sync:" + name.encode()).digest()[:8], "big", signed=True)


class ClaimStore(SqlRunner):
    """Mixed into `Store`; every method commits before it returns."""

    #: The in-process half of `exclusive` (made on first use): name -> lock.
    _exclusive_locks: dict[str, asyncio.Lock] | None = None

    # -- role jobs -----------------------------------------------------------------------------------

    async def claim_role_jobs(
        self, keys: Sequence[tuple[int, int]], *, owner: str, now: datetime, lease: timedelta
    ) -> list[RoleJob]:
        """Claim these (guild, member) jobs for `owner` until `now + lease`, those still pending, due and free;
        return the ones claimed, as they are now (their `seq` may have moved since they were read)."""
        if not keys:
            return []
        until, at = iso_utc(now + lease), iso_utc(now)
        if self._dialect == POSTGRES:
            guilds, users = [key[0] for key in keys], [key[1] for key in keys]
            async with self._db.execute(_CLAIM_JOBS_POSTGRES, (owner, until, guilds, users, at, owner, at)) as cur:
                claimed = [_role_job(row) async for row in cur]
        else:
            await self._run_many(_CLAIM_JOB_SQLITE, [(owner, until, g, u, at, owner, at) for g, u in keys])
            wanted = set(keys)
            async with self._db.execute(
                "SELECT * FROM role_jobs WHERE claimed_by = ? AND claim_expires_at = ?", (owner, until)
            ) as cursor:
                claimed = [job async for job in (_role_job(row) async for row in cursor) if job.key in wanted]
        await self._db.commit()
        return claimed

    async def renew_role_job_claims(self, keys: Sequence[tuple[int, int]], *, owner: str, until: datetime) -> int:
        """Extend `owner`'s claims on these jobs (those it still holds) to `until`; return how many."""
        if not keys:
            return 0
        written = await self._run_many(
            "UPDATE role_jobs SET claim_expires_at = ? WHERE guild_id = ? AND discord_user_id = ? AND claimed_by = ?",
            [(iso_utc(until), guild_id, user_id, owner) for guild_id, user_id in keys],
        )
        await self._db.commit()
        return written.rowcount

    async def next_claimable_role_job(self, *, owner: str, shards: ShardSpec = ALL_SHARDS) -> datetime | None:
        """When this process's next job is workable: its due time, or the end of another process's lease."""
        shard_sql, shard_params = shard_condition(shards)
        async with self._db.execute(
            f"SELECT {_NEXT_FREE} FROM role_jobs WHERE state = ?{shard_sql}", (owner, PENDING, *shard_params)
        ) as cursor:
            row = await cursor.fetchone()
        return _parse(row[0]) if row else None

    # -- webhook events ------------------------------------------------------------------------------

    async def claim_due_webhook_events(
        self, now: datetime, limit: int, *, owner: str, lease: timedelta
    ) -> list[WebhookEvent]:
        """Claim up to `limit` due pending events free to `owner`, oldest first, until `now + lease`."""
        until, at = iso_utc(now + lease), iso_utc(now)
        if self._dialect == POSTGRES:
            async with self._db.execute(_CLAIM_EVENTS_POSTGRES, (owner, until, at, owner, at, limit)) as cursor:
                claimed = sorted([_webhook_event(row, now) async for row in cursor], key=lambda event: event.id)
        else:
            await self._run(_CLAIM_EVENTS_SQLITE, (owner, until, at, owner, at, limit))
            async with self._db.execute(
                "SELECT * FROM webhook_events WHERE claimed_by = ? AND claim_expires_at = ? AND state = ?"
                " ORDER BY id",
                (owner, until, PENDING),
            ) as cursor:
                claimed = [_webhook_event(row, now) async for row in cursor]
        await self._db.commit()
        return claimed

    async def renew_webhook_event_claims(self, ids: Sequence[int], *, owner: str, until: datetime) -> int:
        if not ids:
            return 0
        written = await self._run_many(
            "UPDATE webhook_events SET claim_expires_at = ? WHERE id = ? AND claimed_by = ? AND state = ?",
            [(iso_utc(until), event_id, owner, PENDING) for event_id in ids],
        )
        await self._db.commit()
        return written.rowcount

    async def next_claimable_webhook_event(self, *, owner: str) -> datetime | None:
        async with self._db.execute(
            f"SELECT {_NEXT_FREE} FROM webhook_events WHERE state = ?", (owner, PENDING)
        ) as cursor:
            row = await cursor.fetchone()
        return _parse(row[0]) if row else None

    # -- both ----------------------------------------------------------------------------------------

    async def release_claims_of_earlier_runs(self, owner: str) -> int:
        """At start-up on SQLite, whose file only this process uses: every claim but `owner`'s (this run's) is a
        dead predecessor's, free now rather than when its lease ends. On PostgreSQL other processes hold claims:
        nothing is released."""
        if self._dialect != SQLITE:
            return 0
        released = 0
        for table in ("role_jobs", "webhook_events", "dm_outbox"):
            written = await self._run(
                f"UPDATE {table} SET claimed_by = NULL, claim_expires_at = NULL"
                " WHERE claimed_by IS NOT NULL AND claimed_by != ?",
                (owner,),
            )
            released += max(written.rowcount, 0)
        await self._db.commit()
        return released

    # -- one holder at a time --------------------------------------------------------------------------

    def token_refresh(self, subject: str, *, wait: float = 0.0) -> AbstractAsyncContextManager[bool]:
        """`exclusive` for refreshing the token pair stored as `subject`: refresh tokens are single use, so every
        refresher of one pair (the creator's, a patron's, a Linked Roles member's Discord pair) takes this same lock,
        then reads the stored pair again before refreshing it."""
        return self.exclusive(f"token {subject}", wait=wait)

    @asynccontextmanager
    async def exclusive(self, name: str, *, wait: float = 0.0) -> AsyncIterator[bool]:
        """Yield whether this process now holds `name` alone: False when someone else does (`wait`: seconds to
        keep trying first; 0, the refresh's choice, never waits).

        In-process first (an asyncio lock), then, on PostgreSQL, a session-level `pg_try_advisory_lock` on a
        connection kept for locks alone (bot/store/postgres_db.py `advisory_lock` says why). Released on leaving;
        a process that dies releases it with its connection."""
        if self._exclusive_locks is None:
            self._exclusive_locks = {}
        local = self._exclusive_locks.setdefault(name, asyncio.Lock())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        if not local.locked():
            await local.acquire()  # free: taken without a pause, so nobody can come in between
        elif wait <= 0:
            yield False
            return
        else:
            try:
                await asyncio.wait_for(local.acquire(), timeout=wait)
            except TimeoutError:
                yield False
                return
        try:
            if self._dialect != POSTGRES:
                yield True
                return
            while True:
                async with self._db.advisory_lock(lock_key(name)) as held:  # type: ignore[attr-defined]
                    if held or loop.time() >= deadline:
                        try:
                            yield held
                        finally:
                            if held and not await self._db.advisory_held(lock_key(name)):  # type: ignore[attr-defined]
                                log.error("%s: lost while held (its PostgreSQL session ended); not alone then", name)
                        return
                await asyncio.sleep(min(RETRY_LOCK_EVERY, max(0.0, deadline - loop.time())))
        finally:
            local.release()

    async def still_holds(self, name: str) -> bool:
        """Whether this process still holds `name`, taken with `exclusive`: on PostgreSQL the lock's session may have
        ended (a failover, `pg_terminate_backend`), which frees it for other processes while its holder runs on; the
        shard locks' watchdog (bot/discord_io/runner.py) asks, and stops the process when one is gone."""
        local = (self._exclusive_locks or {}).get(name)
        if local is None or not local.locked():
            return False
        if self._dialect != POSTGRES:
            return True
        return bool(await self._db.advisory_held(lock_key(name)))  # type: ignore[attr-defined]
