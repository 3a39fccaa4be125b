"""The two durable queues' rows: recorded webhook events and pending role jobs, their states, and how a row is read.

Both outlive a crash: a webhook is recorded before Patreon gets its answer, and a role job stays in the table
until Discord has applied it, so a restart resumes whatever was left. Times are passed in by the caller (the
services' clock) and stored as fixed-width UTC text so SQL can compare them. The queues' methods live in
webhook_queue.py and role_job_queue.py (joined in queue_store.py); the write helpers every store mixin uses
(`SqlRunner`) are here too, beneath them all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from bot.store.database import SQLITE, Database

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
    goes through these helpers, and every read uses `async with` or `_rows` (whose cursor ends on that thread).

    No write reads rows back on SQLite (no `RETURNING`): aiosqlite would read them in a later worker-thread call,
    and until then the write statement is still active, so a commit another coroutine queued in between fails with
    "cannot commit transaction - SQL statements in progress". A write ends within its one call; a pending SELECT
    does not block a commit.
    """

    _db: Database
    #: Which engine `_db` is (bot/store/database.py): the few statements that differ choose by it.
    _dialect: str = SQLITE

    async def _rows(self, sql: str, parameters: Sequence[Any] = ()) -> Iterable[Any]:
        """Every row of one read, in one trip to SQLite's thread: a cursor takes three or four (execute, fetch, close),
        each about 50 µs of CPU, and a refresh's pages ask a few reads each (the cursor is dropped on that thread)."""
        return await self._db.execute_fetchall(sql, parameters)

    async def _run(self, sql: str, parameters: Sequence[Any] = ()) -> Written:
        async with self._db.execute(sql, parameters) as cursor:
            return Written(cursor.rowcount, cursor.lastrowid)

    async def _run_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> Written:
        async with self._db.executemany(sql, rows) as cursor:
            return Written(cursor.rowcount, cursor.lastrowid)

    async def _run_script(self, script: str) -> None:
        async with self._db.executescript(script):
            pass


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
