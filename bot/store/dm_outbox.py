"""The outbox of opt-in DMs (bot/sync/patron_dms.py): a DM is a row before it is a message.

`queue_dm` is `ON CONFLICT DO NOTHING` on (server, member, kind, dedupe key), so the same event seen twice (a webhook
redelivered, a job retried after a crash) queues one DM. The sender stamps `sending_at` before it calls Discord and
marks the row done after; a row found stamped after a restart was perhaps sent (see `PatronDms` for what is done).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.store.queues import SqlRunner, _parse, iso_utc

DM_PENDING = "pending"
DM_SENT = "sent"
#: Discord said 50007: the member doesn't take DMs from this bot. Never retried.
DM_BLOCKED = "blocked"
DM_FAILED = "failed"
#: Not sent on purpose: the server stopped taking part or turned the DM off, or a send was in doubt.
DM_DROPPED = "dropped"


@dataclass(frozen=True)
class QueuedDm:
    id: int
    guild_id: int
    discord_user_id: int
    kind: str
    dedupe_key: str
    params: dict[str, Any]
    attempts: int
    sending_at: datetime | None
    created_at: datetime


class DmOutboxStore(SqlRunner):
    """Mixed into `Store`; every write commits before it returns."""

    async def queue_dm(
        self, guild_id: int, user_id: int, kind: str, dedupe_key: str, params: dict[str, Any], now: datetime
    ) -> bool:
        """Queue one DM; False when that very DM was queued before (whatever became of it)."""
        written = await self._run(
            "INSERT INTO dm_outbox (guild_id, discord_user_id, kind, dedupe_key, params, state, "
            "next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (guild_id, user_id, kind, dedupe_key, json.dumps(params), DM_PENDING, iso_utc(now), iso_utc(now)),
        )
        await self._db.commit()
        return written.rowcount == 1

    async def due_dms(self, now: datetime, limit: int = 50) -> list[QueuedDm]:
        async with self._db.execute(
            "SELECT id, guild_id, discord_user_id, kind, dedupe_key, params, attempts, sending_at, created_at "
            "FROM dm_outbox WHERE state = ? AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?",
            (DM_PENDING, iso_utc(now), limit),
        ) as cursor:
            rows = await cursor.fetchall()
        return [
            QueuedDm(
                int(row[0]),
                int(row[1]),
                int(row[2]),
                str(row[3]),
                str(row[4]),
                json.loads(row[5]),
                int(row[6]),
                _parse(row[7]),
                _parse(row[8]) or now,
            )
            for row in rows
        ]

    async def next_dm_due(self) -> datetime | None:
        """When the earliest pending DM comes due (a retry's back-off), or None when nothing waits."""
        async with self._db.execute(
            "SELECT MIN(next_attempt_at) FROM dm_outbox WHERE state = ?", (DM_PENDING,)
        ) as cursor:
            row = await cursor.fetchone()
        return _parse(row[0]) if row is not None else None

    async def mark_dm_sending(self, dm_id: int, now: datetime) -> None:
        """Stamped (and committed) before the call to Discord: after a crash, the row says a send may have gone."""
        await self._run(
            "UPDATE dm_outbox SET sending_at = ?, attempts = attempts + 1 WHERE id = ?",
            (iso_utc(now), dm_id),
        )
        await self._db.commit()

    async def finish_dm(self, dm_id: int, state: str, now: datetime, error: str | None = None) -> None:
        await self._run(
            "UPDATE dm_outbox SET state = ?, done_at = ?, last_error = ? WHERE id = ?",
            (state, iso_utc(now), error, dm_id),
        )
        await self._db.commit()

    async def retry_dm_at(self, dm_id: int, when: datetime, error: str) -> None:
        """Discord answered (an error worth retrying): the stamp goes, the retry carries the same nonce."""
        await self._run(
            "UPDATE dm_outbox SET next_attempt_at = ?, last_error = ?, sending_at = NULL WHERE id = ?",
            (iso_utc(when), error, dm_id),
        )
        await self._db.commit()

    async def postpone_dm(self, dm_id: int, when: datetime, error: str) -> None:
        """Not tried now, the stamp kept: whether the interrupted send arrived is still to be checked."""
        await self._run(
            "UPDATE dm_outbox SET next_attempt_at = ?, last_error = ?, attempts = attempts + 1 WHERE id = ?",
            (iso_utc(when), error, dm_id),
        )
        await self._db.commit()

    async def dms_blocked_since(self, user_id: int, since: datetime) -> bool:
        """Whether Discord refused a DM to this member (50007) since `since`: the next one costs no call."""
        async with self._db.execute(
            "SELECT 1 FROM dm_outbox WHERE discord_user_id = ? AND state = ? AND done_at >= ? LIMIT 1",
            (user_id, DM_BLOCKED, iso_utc(since)),
        ) as cursor:
            return await cursor.fetchone() is not None

    async def dm_states(self, user_id: int | None = None) -> list[tuple[int, int, str, str]]:
        """(guild, member, kind, state) of every queued DM (of one member): for tests and `check`."""
        async with self._db.execute(
            "SELECT guild_id, discord_user_id, kind, state FROM dm_outbox WHERE CAST(? AS BIGINT) IS NULL"
            " OR discord_user_id = ? "
            "ORDER BY id",
            (user_id, user_id),
        ) as cursor:
            return [(int(r[0]), int(r[1]), str(r[2]), str(r[3])) async for r in cursor]
