"""The outbox of opt-in DMs (bot/sync/patron_dms.py): a DM is a row before it is a message.

`queue_dm` is `ON CONFLICT DO NOTHING` on (server, member, kind, dedupe key), so the same event seen twice (a webhook
redelivered, a job retried after a crash) queues one DM. The sender stamps `sending_at` before it calls Discord and
marks the row done after; a row found stamped after a restart was perhaps sent (see `PatronDms` for what is done).

Several processes on one database (issue 11, item 6): a DM is sent only by the process that claimed its row, like a
role job (bot/store/claims.py): `claim_dm` writes the owner and a lease expiry in one UPDATE that only takes a
pending, due row nobody else holds, so two processes never both get one. The stamp before the call needs the claim
still held, and every outcome names its owner, so a process whose lease ran out while it sent can neither send nor
overwrite what the new owner did; the new owner finds the stamp and goes by the nonce or the DM channel, as after a
crash. Each process reads only its shards' servers' rows (bot/store/leases.py `shard_condition`): their names and
roles, which the DM shows, are in its Discord cache alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.domain.shards import ShardSpec
from bot.store.claims import _NEXT_FREE
from bot.store.leases import ALL_SHARDS, shard_condition
from bot.store.queues import CLAIMABLE, SqlRunner, _parse, iso_utc

DM_PENDING = "pending"
DM_SENT = "sent"
#: Discord said 50007: the member doesn't take DMs from this bot. Never retried.
DM_BLOCKED = "blocked"
DM_FAILED = "failed"
#: Not sent on purpose: the server stopped taking part or turned the DM off, or a send was in doubt.
DM_DROPPED = "dropped"
_COLUMNS = "id, guild_id, discord_user_id, kind, dedupe_key, params, attempts, sending_at, created_at"
#: Held by `owner` (the first parameter) and not yet run out at the time (the second).
_HELD = "claimed_by = ? AND claim_expires_at > ?"


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

    async def due_dms(
        self, now: datetime, limit: int = 50, *, owner: str | None = None, shards: ShardSpec = ALL_SHARDS
    ) -> list[QueuedDm]:
        """Pending rows due by `now`, oldest first, of these shards' servers; with `owner`, only those free to it
        (read, not claimed: `claim_dm` each before sending)."""
        free, free_params = (f" AND {CLAIMABLE}", (owner, iso_utc(now))) if owner is not None else ("", ())
        shard_sql, shard_params = shard_condition(shards)
        async with self._db.execute(
            f"SELECT {_COLUMNS} FROM dm_outbox WHERE state = ? AND next_attempt_at <= ?{free}{shard_sql} "
            "ORDER BY next_attempt_at, id LIMIT ?",
            (DM_PENDING, iso_utc(now), *free_params, *shard_params, limit),
        ) as cursor:
            rows = await cursor.fetchall()
        return [_queued_dm(row, now) for row in rows]

    async def claim_dm(self, dm_id: int, *, owner: str, now: datetime, lease: timedelta) -> QueuedDm | None:
        """Claim this DM for `owner` until `now + lease` if it is still pending, due and free; the row as it is now
        (its stamp and attempts may have moved since it was read), or None when another process has it or it is
        done. One UPDATE: on PostgreSQL a second claimer waits for the first's row lock and then finds it held."""
        until, at = iso_utc(now + lease), iso_utc(now)
        written = await self._run(
            "UPDATE dm_outbox SET claimed_by = ?, claim_expires_at = ? "
            f"WHERE id = ? AND state = ? AND next_attempt_at <= ? AND {CLAIMABLE}",
            (owner, until, dm_id, DM_PENDING, at, owner, at),
        )
        await self._db.commit()
        if written.rowcount != 1:
            return None
        async with self._db.execute(
            f"SELECT {_COLUMNS} FROM dm_outbox WHERE id = ? AND claimed_by = ?", (dm_id, owner)
        ) as cursor:
            row = await cursor.fetchone()
        return _queued_dm(row, now) if row is not None else None

    async def renew_dm_claim(self, dm_id: int, *, owner: str, until: datetime) -> bool:
        """Extend `owner`'s claim on this pending DM to `until`; False when it no longer holds it."""
        written = await self._run(
            "UPDATE dm_outbox SET claim_expires_at = ? WHERE id = ? AND claimed_by = ? AND state = ?",
            (iso_utc(until), dm_id, owner, DM_PENDING),
        )
        await self._db.commit()
        return written.rowcount == 1

    async def next_dm_due(self, *, owner: str | None = None, shards: ShardSpec = ALL_SHARDS) -> datetime | None:
        """When the earliest pending DM (of these shards) comes due (a retry's back-off) or, with `owner`, is free
        to it (another process's lease ends); None when nothing waits."""
        shard_sql, shard_params = shard_condition(shards)
        earliest, owner_params = (_NEXT_FREE, (owner,)) if owner is not None else ("MIN(next_attempt_at)", ())
        async with self._db.execute(
            f"SELECT {earliest} FROM dm_outbox WHERE state = ?{shard_sql}", (*owner_params, DM_PENDING, *shard_params)
        ) as cursor:
            row = await cursor.fetchone()
        return _parse(row[0]) if row is not None else None

    async def mark_dm_sending(self, dm_id: int, now: datetime, *, owner: str | None = None) -> bool:
        """Stamped (and committed) before the call to Discord: after a crash, the row says a send may have gone.
        With `owner`: only while its claim holds at `now`; False means don't send (another process may)."""
        held, held_params = (f" AND {_HELD}", (owner, iso_utc(now))) if owner is not None else ("", ())
        written = await self._run(
            f"UPDATE dm_outbox SET sending_at = ?, attempts = attempts + 1 WHERE id = ? AND state = ?{held}",
            (iso_utc(now), dm_id, DM_PENDING, *held_params),
        )
        await self._db.commit()
        return written.rowcount == 1

    async def finish_dm(
        self, dm_id: int, state: str, now: datetime, error: str | None = None, *, owner: str | None = None
    ) -> bool:
        """Done (sent, blocked, failed or dropped); with `owner`, only if it still holds the claim (False: another
        process took the row over, and its outcome stands)."""
        return await self._settle(
            "state = ?, done_at = ?, last_error = ?", (state, iso_utc(now), error), dm_id, owner
        )

    async def retry_dm_at(self, dm_id: int, when: datetime, error: str, *, owner: str | None = None) -> bool:
        """Discord answered (an error worth retrying): the stamp goes, the retry carries the same nonce; the claim
        is let go (whichever process comes first at `when` sends it)."""
        return await self._settle(
            "next_attempt_at = ?, last_error = ?, sending_at = NULL", (iso_utc(when), error), dm_id, owner
        )

    async def postpone_dm(self, dm_id: int, when: datetime, error: str, *, owner: str | None = None) -> bool:
        """Not tried now, the stamp kept: whether the interrupted send arrived is still to be checked."""
        return await self._settle(
            "next_attempt_at = ?, last_error = ?, attempts = attempts + 1", (iso_utc(when), error), dm_id, owner
        )

    async def _settle(self, changes: str, values: tuple[Any, ...], dm_id: int, owner: str | None) -> bool:
        """One outcome written to a pending row, its claim let go; with `owner`, only the claim's holder's."""
        held, held_params = (" AND claimed_by = ?", (owner,)) if owner is not None else ("", ())
        written = await self._run(
            f"UPDATE dm_outbox SET {changes}, claimed_by = NULL, claim_expires_at = NULL "
            f"WHERE id = ? AND state = ?{held}",
            (*values, dm_id, DM_PENDING, *held_params),
        )
        await self._db.commit()
        return written.rowcount == 1

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


def _queued_dm(row: Any, now: datetime) -> QueuedDm:
    return QueuedDm(
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
