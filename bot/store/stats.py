"""Counting queries for the metrics (bot/observability/metrics.py): one GROUP BY each, read at scrape time."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.store.queues import PENDING, SqlRunner


class StatsStore(SqlRunner):
    """Mixed into `Store`; reads only."""

    async def role_queue_depths(self) -> dict[int, tuple[int, datetime | None]]:
        """Per server with pending role jobs: how many, and when the oldest was queued."""
        async with self._db.execute(
            "SELECT guild_id, COUNT(*), MIN(enqueued_at) FROM role_jobs WHERE state = ? GROUP BY guild_id", (PENDING,)
        ) as cursor:
            return {int(row[0]): (int(row[1]), _moment(row[2])) async for row in cursor}

    async def link_counts(self) -> dict[str, int]:
        """Linked patrons by how the link was made (oauth, auto, admin)."""
        async with self._db.execute("SELECT source, COUNT(*) FROM links GROUP BY source") as cursor:
            return {str(row[0]): int(row[1]) async for row in cursor}


def _moment(text: str | None) -> datetime | None:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC) if text else None
