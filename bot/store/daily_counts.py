"""The daily count behind `/patreon-admin stats`: per server and day, patrons per tier and how many of them linked.

A day's count is written once (`ON CONFLICT DO NOTHING` on the server, day and tier), so taking it again after a restart
the same day changes nothing: the first count of a day stands. The day is the UTC date of the caller's clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import date

from bot.domain.models import MembershipSnapshot
from bot.store.patron_report import BY_KEY, memberships_in_chunks
from bot.store.queues import SqlRunner

#: `tier_id` of the row that counts the whole server (every paying patron of the campaign, and the linked ones).
WHOLE_SERVER = ""


@dataclass(frozen=True)
class TierCount:
    tier_id: str
    tier_title: str
    patrons: int
    linked: int


@dataclass(frozen=True)
class DayCount:
    day: date
    #: The whole server's row first, then the tiers in the order they were stored.
    tiers: tuple[TierCount, ...]

    @property
    def total(self) -> TierCount | None:
        return next((count for count in self.tiers if count.tier_id == WHOLE_SERVER), None)


class DailyCountStore(SqlRunner):
    """Mixed into `Store`; every write commits before it returns."""

    async def record_day_count(self, guild_id: int, day: date, counts: Iterable[TierCount]) -> bool:
        """Store `day`'s count for the server unless one is there already; True when this call wrote it."""
        async with self._db.execute(
            "SELECT 1 FROM daily_counts WHERE guild_id = ? AND day = ? LIMIT 1", (guild_id, day.isoformat())
        ) as cursor:
            if await cursor.fetchone() is not None:
                return False
        rows = [(guild_id, day.isoformat(), c.tier_id, c.tier_title, c.patrons, c.linked) for c in counts]
        await self._run_many("INSERT INTO daily_counts VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", rows)
        await self._db.commit()
        return True

    async def memberships_to_count(
        self, campaign_id: str | None, chunk: int = 1000
    ) -> AsyncIterator[MembershipSnapshot]:
        """The stored memberships of `campaign_id` (None: of every campaign), `chunk` rows read at a time in primary
        key order (campaign, Patreon user), so a count over 100,000 members holds one chunk of snapshots.

        Why the primary key: the count walks each server's campaign, and a keyset on the user id alone (then the
        campaign) scanned the whole table for every chunk, since the campaign is the key's first column: half a
        second of the one database connection per 2,000-patron campaign with 100,000 stored, so after start-up 50
        servers held it for half a minute and every webhook and refresh write waited behind (bench/
        campaigns_bench.py). Each chunk's statement ends before its rows are yielded: no read stays open across the
        caller's awaits."""
        async for membership in memberships_in_chunks(self._db, campaign_id, chunk, BY_KEY):
            yield membership

    async def day_counts(self, guild_id: int, since: date) -> list[DayCount]:
        """The server's counts from `since` on, oldest first."""
        by_day: dict[str, list[TierCount]] = {}
        async with self._db.execute(
            "SELECT day, tier_id, tier_title, patrons, linked FROM daily_counts WHERE guild_id = ? AND day >= ? "
            "ORDER BY day, tier_id = '' DESC, patrons DESC, tier_id",
            (guild_id, since.isoformat()),
        ) as cursor:
            async for row in cursor:
                by_day.setdefault(str(row[0]), []).append(TierCount(str(row[1]), str(row[2]), int(row[3]), int(row[4])))
        return [DayCount(date.fromisoformat(day), tuple(counts)) for day, counts in by_day.items()]
