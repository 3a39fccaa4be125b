"""The two durable queues in the store: recorded webhook events and pending role jobs.

Both outlive a crash: a webhook is recorded before Patreon gets its answer, and a role job stays in the table
until Discord has applied it, so a restart resumes whatever was left. Times are passed in by the caller (the
services' clock) and stored as fixed-width UTC text so SQL can compare them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from bot.domain.shards import ShardSpec
from bot.store.database import SQLITE, Database
from bot.store.leases import ALL_SHARDS, shard_condition

#: How far before `now` an urgent job is dated, so it sorts ahead of a refresh's whole batch.
URGENT_HEAD_START = timedelta(days=1)
PENDING = "pending"
DONE = "done"
IGNORED = "ignored"
FAILED = "failed"
SUPERSEDED = "superseded"
#: Set a fact (`service_state`), replacing its value: written once for both engines.
UPSERT_FACT = "INSERT INTO service_state VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
#: A row free to the process `owner` at `now` (bot/store/claims.py): nobody's, its own, or a lease that ran out.
#: Parameters: owner, now.
CLAIMABLE = "(claimed_by IS NULL OR claimed_by = ? OR claim_expires_at <= ?)"


def iso_utc(moment: datetime) -> str:
    """UTC, fixed width, so that text comparison in SQL orders correctly."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str | None) -> datetime | None:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC) if text else None


@dataclass(frozen=True)
class WebhookEvent:
    id: int
    trigger: str
    member_id: str | None
    patreon_user_id: str | None
    campaign_id: str | None
    attempts: int
    received_at: datetime
    #: The campaign whose webhook URL and secret received it (None: recorded without one, by a test).
    addressed_campaign_id: str | None = None
    #: The process that claimed it (bot/store/claims.py); None when read without a claim.
    claimed_by: str | None = None


@dataclass(frozen=True)
class RoleJob:
    guild_id: int
    user_id: int
    cause: str
    state: str
    #: Bumped by every enqueue, so finishing a job never swallows a request that arrived while it ran.
    seq: int
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    reported: bool
    #: The process that claimed it (bot/store/claims.py): only that one may finish, retry or fail it. None when
    #: read without a claim (tests, one process): then no owner is checked.
    claimed_by: str | None = None

    @property
    def key(self) -> tuple[int, int]:
        return (self.guild_id, self.user_id)


class Written(NamedTuple):
    rowcount: int
    lastrowid: int | None


class SqlRunner:
    """Writes that close their cursor on the database thread.

    An aiosqlite cursor that is merely dropped is finalised by the garbage collector on the event-loop thread,
    racing the database thread: under load SQLite then answers "bad parameter or other API misuse". Every write
    goes through these helpers, and every read uses `async with`.

    No write reads rows back on SQLite (no `RETURNING`): aiosqlite would read them in a later worker-thread call,
    and until then the write statement is still active, so a commit another coroutine queued in between fails with
    "cannot commit transaction - SQL statements in progress". A write ends within its one call; a pending SELECT
    does not block a commit.
    """

    _db: Database
    #: Which engine `_db` is (bot/store/database.py): the few statements that differ choose by it.
    _dialect: str = SQLITE

    async def _run(self, sql: str, parameters: Sequence[Any] = ()) -> Written:
        async with self._db.execute(sql, parameters) as cursor:
            return Written(cursor.rowcount, cursor.lastrowid)

    async def _run_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> Written:
        async with self._db.executemany(sql, rows) as cursor:
            return Written(cursor.rowcount, cursor.lastrowid)

    async def _run_script(self, script: str) -> None:
        async with self._db.executescript(script):
            pass


class QueueStore(SqlRunner):
    """Mixed into `Store`; every method commits before it returns."""

    # -- webhook events ------------------------------------------------------------------------------

    async def record_webhook_event(
        self,
        *,
        received_at: datetime,
        trigger: str,
        resource_type: str | None,
        member_id: str | None,
        patreon_user_id: str | None,
        campaign_id: str | None,
        body_sha256: str,
        applicable: bool,
        seen_fact: tuple[str, object] | None = None,
        addressed_campaign_id: str | None = None,
    ) -> int:
        """Record one delivery (pending when there is something to apply) and, in the same commit, a fact.
        `addressed_campaign_id`: the campaign whose URL and secret it came through (the one it is applied for)."""
        when = iso_utc(received_at)
        insert = (
            "INSERT INTO webhook_events (received_at, trigger, resource_type, member_id, patreon_user_id,"
            " campaign_id, body_sha256, state, next_attempt_at, finished_at, addressed_campaign_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        values = (
            when,
            trigger,
            resource_type,
            member_id,
            patreon_user_id,
            campaign_id,
            body_sha256,
            PENDING if applicable else IGNORED,
            when,
            None if applicable else when,
            addressed_campaign_id,
        )
        if self._dialect == SQLITE:
            # Not RETURNING: on aiosqlite its row is read by a second worker-thread call, and until then the INSERT
            # is an open write statement, so any other call's commit queued in between fails ("cannot commit
            # transaction - SQL statements in progress"). A plain INSERT finishes within its one call.
            written = await self._run(insert, values)
            assert written.lastrowid is not None
            event_id = written.lastrowid
        else:  # asyncpg has every row before the call returns; PostgreSQL has no lastrowid
            async with self._db.execute(insert + " RETURNING id", values) as cursor:
                event_id = int((await cursor.fetchone())[0])
        if seen_fact is not None:
            await self._run(UPSERT_FACT, (seen_fact[0], json.dumps(seen_fact[1])))
        await self._db.commit()
        return event_id

    async def due_webhook_events(self, now: datetime, limit: int = 500) -> list[WebhookEvent]:
        async with self._db.execute(
            "SELECT * FROM webhook_events WHERE state = ? AND next_attempt_at <= ? ORDER BY id LIMIT ?",
            (PENDING, iso_utc(now), limit),
        ) as cursor:
            return [_webhook_event(row, now) async for row in cursor]

    async def finish_webhook_events(
        self, ids: Sequence[int], state: str, now: datetime, error: str | None = None, *, owner: str | None = None
    ) -> int:
        """Say how the events ended; with `owner` (the claimer), only those it still holds. Returns how many."""
        owned, mine = (" AND claimed_by = ?", (owner,)) if owner is not None else ("", ())
        written = await self._run_many(
            f"UPDATE webhook_events SET state = ?, finished_at = ?, last_error = ? WHERE id = ?{owned}",
            [(state, iso_utc(now), error, event_id, *mine) for event_id in ids],
        )
        await self._db.commit()
        return written.rowcount

    async def retry_webhook_events(
        self, ids: Sequence[int], next_attempt_at: datetime, error: str, *, owner: str | None = None
    ) -> int:
        """Back off, and let go of the claim: whichever process is free when they are due takes them."""
        owned, mine = (" AND claimed_by = ?", (owner,)) if owner is not None else ("", ())
        written = await self._run_many(
            "UPDATE webhook_events SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?,"
            f" claimed_by = NULL, claim_expires_at = NULL WHERE id = ?{owned}",
            [(iso_utc(next_attempt_at), error, event_id, *mine) for event_id in ids],
        )
        await self._db.commit()
        return written.rowcount

    async def defer_webhook_events(
        self, ids: Sequence[int], until: datetime, *, owner: str, release: bool = False
    ) -> int:
        """Not due before `until`, attempts unchanged, for those `owner` still holds: a listing covers them
        (bot/sync/webhook_flood.py), and a crash leaves them due at `until`. `release` lets go of the claim too."""
        let_go = ", claimed_by = NULL, claim_expires_at = NULL" if release else ""
        written = await self._run_many(
            f"UPDATE webhook_events SET next_attempt_at = ?{let_go} WHERE id = ? AND claimed_by = ? AND state = ?",
            [(iso_utc(until), event_id, owner, PENDING) for event_id in ids],
        )
        await self._db.commit()
        return written.rowcount

    async def supersede_webhook_events(
        self, received_before: datetime, now: datetime, campaign_id: str | None = None
    ) -> int:
        """A complete listing of the campaign that started after these events arrived already knows what they
        would fetch (None: every campaign's events)."""
        result = await self._run(
            "UPDATE webhook_events SET state = ?, finished_at = ? WHERE state = ? AND received_at < ?"
            " AND (CAST(? AS TEXT) IS NULL OR addressed_campaign_id = ?)",
            (SUPERSEDED, iso_utc(now), PENDING, iso_utc(received_before), campaign_id, campaign_id),
        )
        await self._db.commit()
        return result.rowcount

    async def supersede_webhook_events_by_id(self, event_ids: Sequence[int], now: datetime) -> int:
        """These events, still pending: a complete listing that started after they arrived answered them (a
        flood's, bot/sync/webhook_flood.py; by id, whatever URL each came by)."""
        changed = 0
        ids = list(event_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            result = await self._run(
                f"UPDATE webhook_events SET state = ?, finished_at = ? WHERE state = ? AND id IN ({marks})",
                (SUPERSEDED, iso_utc(now), PENDING, *chunk),
            )
            changed += result.rowcount
        await self._db.commit()
        return changed

    async def prune_webhook_events(self, finished_before: datetime) -> int:
        result = await self._run(
            "DELETE FROM webhook_events WHERE state != ? AND received_at < ?", (PENDING, iso_utc(finished_before))
        )
        await self._db.commit()
        return result.rowcount

    async def webhook_event_counts(self) -> dict[str, int]:
        async with self._db.execute("SELECT state, COUNT(*) FROM webhook_events GROUP BY state") as cursor:
            return {row[0]: int(row[1]) async for row in cursor}

    async def next_webhook_event_due(self) -> datetime | None:
        async with self._db.execute(
            "SELECT MIN(next_attempt_at) FROM webhook_events WHERE state = ?", (PENDING,)
        ) as cursor:
            row = await cursor.fetchone()
        return _parse(row[0]) if row else None

    # -- role jobs -----------------------------------------------------------------------------------

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


def _webhook_event(row: Any, now: datetime) -> WebhookEvent:
    return WebhookEvent(
        id=int(row["id"]),
        trigger=row["trigger"],
        member_id=row["member_id"],
        patreon_user_id=row["patreon_user_id"],
        campaign_id=row["campaign_id"],
        attempts=int(row["attempts"]),
        received_at=_parse(row["received_at"]) or now,
        addressed_campaign_id=row["addressed_campaign_id"],
        claimed_by=row["claimed_by"],
    )


def _role_job(row: Any) -> RoleJob:
    return RoleJob(
        guild_id=int(row["guild_id"]),
        user_id=int(row["discord_user_id"]),
        cause=row["cause"],
        state=row["state"],
        seq=int(row["seq"]),
        attempts=int(row["attempts"]),
        next_attempt_at=_parse(row["next_attempt_at"]) or datetime.now(UTC),
        last_error=row["last_error"],
        reported=bool(row["reported"]),
        claimed_by=row["claimed_by"],
    )
