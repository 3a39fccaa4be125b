"""The webhook-event queue: every delivery recorded before Patreon gets its answer, applied (or retried) later.

Split from queues.py (the rows and states it shares with the role-job queue) so each queue reads on its own.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from bot.store.database import SQLITE
from bot.store.queues import (
    IGNORED,
    PENDING,
    SUPERSEDED,
    UPSERT_FACT,
    SqlRunner,
    WebhookEvent,
    _parse,
    _webhook_event,
    iso_utc,
)


class WebhookEventQueue(SqlRunner):
    """Mixed into `Store` (through `QueueStore`); every method commits before it returns."""

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
