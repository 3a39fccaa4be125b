"""The role-job queue: one pending job per (server, member) until Discord has applied it, claimed by one process.

Split from queues.py (the rows and states it shares with the webhook-event queue) so each queue reads on its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from bot.domain.shards import ShardSpec
from bot.store.leases import ALL_SHARDS, shard_condition
from bot.store.queues import CLAIMABLE, FAILED, PENDING, RoleJob, SqlRunner, _parse, _role_job, iso_utc

#: How far before `now` an urgent job is dated, so it sorts ahead of a refresh's whole batch.
URGENT_HEAD_START = timedelta(days=1)


class RoleJobQueue(SqlRunner):
    """Mixed into `Store` (through `QueueStore`); every method commits before it returns."""

    async def enqueue_role_jobs(
        self, keys: Iterable[tuple[int, int]], cause: str, now: datetime, *, urgent: bool = False
    ) -> int:
        """One pending job per (guild, member), coalescing with any job already there.

        A job waiting out a back-off keeps its schedule (a new request doesn't make Discord healthier); a failed
        job is revived with fresh attempts but remembers that its failure was already reported. An `urgent` job
        (a patron just changed their pledge) is dated before everything already due, so it doesn't wait behind
        a refresh's batch.
        """
        when = iso_utc(now - URGENT_HEAD_START if urgent else now)
        result = await self._run_many(
            """
            INSERT INTO role_jobs (guild_id, discord_user_id, cause, state, seq, attempts, next_attempt_at,
                                   enqueued_at, last_error, reported)
            VALUES (?, ?, ?, 'pending', 1, 0, ?, ?, NULL, 0)
            ON CONFLICT (guild_id, discord_user_id) DO UPDATE SET
                cause = excluded.cause,
                seq = role_jobs.seq + 1,
                attempts = CASE WHEN role_jobs.state = 'failed' THEN 0 ELSE role_jobs.attempts END,
                next_attempt_at = CASE WHEN role_jobs.state = 'failed' THEN excluded.next_attempt_at
                                       WHEN role_jobs.attempts = 0
                                       AND excluded.next_attempt_at < role_jobs.next_attempt_at
                                       THEN excluded.next_attempt_at
                                       ELSE role_jobs.next_attempt_at END,
                state = 'pending'
            """,
            [(guild_id, user_id, cause[:200], when, iso_utc(now)) for guild_id, user_id in keys],
        )
        await self._db.commit()
        return result.rowcount

    async def due_role_jobs(self, now: datetime, limit: int) -> list[RoleJob]:
        return await self._role_jobs(
            "state = ? AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?", (PENDING, iso_utc(now), limit)
        )

    async def due_role_jobs_per_guild(
        self, now: datetime, per_guild: int, *, owner: str | None = None, shards: ShardSpec = ALL_SHARDS
    ) -> list[RoleJob]:
        """Each server's first `per_guild` due jobs in due order (the worker serves servers in turn); only the
        servers of `shards`, and with `owner` only jobs free to that process (bot/store/claims.py)."""
        free, free_params = (f" AND {CLAIMABLE}", (owner, iso_utc(now))) if owner is not None else ("", ())
        shard_sql, shard_params = shard_condition(shards)
        async with self._db.execute(
            "SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY guild_id ORDER BY next_attempt_at) AS turn"
            f" FROM role_jobs WHERE state = ? AND next_attempt_at <= ?{free}{shard_sql}) AS ranked WHERE turn <= ?"
            " ORDER BY guild_id, turn",
            (PENDING, iso_utc(now), *free_params, *shard_params, per_guild),
        ) as cursor:
            return [_role_job(row) async for row in cursor]

    async def failed_role_jobs(self, guild_id: int | None = None) -> list[RoleJob]:
        """Members whose roles could not be put right (for `/patreon-admin check`)."""
        if guild_id is None:
            return await self._role_jobs("state = ? ORDER BY guild_id, discord_user_id", (FAILED,))
        return await self._role_jobs("state = ? AND guild_id = ? ORDER BY discord_user_id", (FAILED, guild_id))

    async def pending_role_jobs(self) -> list[RoleJob]:
        return await self._role_jobs("state = ? ORDER BY next_attempt_at", (PENDING,))

    async def count_pending_role_jobs(self, guild_id: int) -> int:
        """How many of one guild's members wait for a role change (for `/patreon-admin check`)."""
        async with self._db.execute(
            "SELECT COUNT(*) FROM role_jobs WHERE guild_id = ? AND state = ?", (guild_id, PENDING)
        ) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def role_job_counts(self) -> dict[str, int]:
        async with self._db.execute("SELECT state, COUNT(*) FROM role_jobs GROUP BY state") as cursor:
            return {row[0]: int(row[1]) async for row in cursor}

    async def next_role_job_due(self) -> datetime | None:
        async with self._db.execute("SELECT MIN(next_attempt_at) FROM role_jobs WHERE state = ?", (PENDING,)) as cur:
            row = await cur.fetchone()
        return _parse(row[0]) if row else None

    async def finish_role_job(self, job: RoleJob) -> bool:
        """Delete the job unless it was enqueued again while it ran (then let go of its claim, so it runs again
        at once), or, when it was claimed, another process has claimed it since; say whether it went."""
        owned, mine = _owned_by(job)
        result = await self._run(
            f"DELETE FROM role_jobs WHERE guild_id = ? AND discord_user_id = ? AND seq = ?{owned}",
            (job.guild_id, job.user_id, job.seq, *mine),
        )
        if result.rowcount == 0:
            await self._release_role_job(job)
        await self._db.commit()
        return result.rowcount > 0

    async def retry_role_job(self, job: RoleJob, next_attempt_at: datetime, error: str) -> bool:
        """Back off and let go of the claim; False when another process holds the job now (nothing changed)."""
        owned, mine = _owned_by(job)
        result = await self._run(
            "UPDATE role_jobs SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?,"
            f" claimed_by = NULL, claim_expires_at = NULL WHERE guild_id = ? AND discord_user_id = ?{owned}",
            (iso_utc(next_attempt_at), error[:500], job.guild_id, job.user_id, *mine),
        )
        await self._db.commit()
        return result.rowcount > 0

    async def fail_role_job(self, job: RoleJob, error: str) -> bool:
        """Park the job as failed (unless a new request arrived meanwhile, or another process holds it now) and
        mark its failure reported; say whether it was parked."""
        owned, mine = _owned_by(job)
        result = await self._run(
            "UPDATE role_jobs SET state = ?, last_error = ?, reported = 1, attempts = attempts + 1,"
            " claimed_by = NULL, claim_expires_at = NULL"
            f" WHERE guild_id = ? AND discord_user_id = ? AND seq = ?{owned}",
            (FAILED, error[:500], job.guild_id, job.user_id, job.seq, *mine),
        )
        if result.rowcount == 0:
            await self._release_role_job(job)
        await self._db.commit()
        return result.rowcount > 0

    async def _release_role_job(self, job: RoleJob) -> None:
        """Let go of a claimed job that stays queued (a new request arrived while it ran)."""
        if job.claimed_by is not None:
            await self._run(
                "UPDATE role_jobs SET claimed_by = NULL, claim_expires_at = NULL"
                " WHERE guild_id = ? AND discord_user_id = ? AND claimed_by = ?",
                (job.guild_id, job.user_id, job.claimed_by),
            )

    async def reschedule_role_jobs(self, now: datetime) -> int:
        """At start-up every pending job is due at once: whatever it waited for may be over."""
        result = await self._run(
            "UPDATE role_jobs SET next_attempt_at = ? WHERE state = ? AND next_attempt_at > ?",
            (iso_utc(now), PENDING, iso_utc(now)),
        )
        await self._db.commit()
        return result.rowcount

    async def _role_jobs(self, where: str, params: tuple[object, ...]) -> list[RoleJob]:
        async with self._db.execute(f"SELECT * FROM role_jobs WHERE {where}", params) as cursor:
            return [_role_job(row) async for row in cursor]


def _owned_by(job: RoleJob) -> tuple[str, tuple[str, ...]]:
    """The condition (and its parameter) that the row is still the claimer's; nothing for an unclaimed read."""
    return (" AND claimed_by = ?", (job.claimed_by,)) if job.claimed_by is not None else ("", ())
