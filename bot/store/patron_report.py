"""The one read `/patreon-admin patrons` needs that the facade has no method for: every stored membership.

A function over the store's connection rather than a facade method, so the report's query lives with the report's
needs; it reads only what the refresh and the webhooks stored, and never asks Patreon.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from bot.domain.models import MembershipSnapshot
from bot.store.codec import decode_snapshot
from bot.store.queues import SqlRunner


async def stored_memberships(store: SqlRunner, campaign_id: str | None = None) -> list[MembershipSnapshot]:
    """Every stored membership of `campaign_id` (None: of every campaign), in Patreon user id order."""
    async with store._db.execute(
        "SELECT snapshot, observed_at FROM memberships WHERE CAST(? AS TEXT) IS NULL OR campaign_id = ?"
        " ORDER BY patreon_user_id",
        (campaign_id, campaign_id),
    ) as cursor:
        return [decode_snapshot(row[0], datetime.fromisoformat(row[1])) async for row in cursor]


async def iter_stored_memberships(
    store: SqlRunner, campaign_id: str | None = None, chunk: int = 1000
) -> AsyncIterator[MembershipSnapshot]:
    """As `stored_memberships`, `chunk` rows read at a time: a count over 100,000 members (the daily stats) holds
    one chunk of snapshots, not all of them (the whole list raised refresh_bench's peak RSS from 155 to 239 MB).
    Each chunk's statement ends before its rows are yielded (keyset on the user id, then the campaign), so no read
    stays open across the caller's awaits."""
    after_user, after_campaign = "", ""
    while True:
        async with store._db.execute(
            "SELECT snapshot, observed_at, patreon_user_id, campaign_id FROM memberships"
            " WHERE (CAST(? AS TEXT) IS NULL OR campaign_id = ?)"
            " AND (patreon_user_id > ? OR (patreon_user_id = ? AND campaign_id > ?))"
            " ORDER BY patreon_user_id, campaign_id LIMIT ?",
            (campaign_id, campaign_id, after_user, after_user, after_campaign, chunk),
        ) as cursor:
            rows = list(await cursor.fetchall())
        for row in rows:
            yield decode_snapshot(row[0], datetime.fromisoformat(row[1]))
        if len(rows) < chunk:
            return
        after_user, after_campaign = rows[-1][2], rows[-1][3]
