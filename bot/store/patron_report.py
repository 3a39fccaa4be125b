"""The one read `/patreon-admin patrons` needs that no other store module has: every stored membership of a
campaign, in chunks. It reads only what the refresh and the webhooks stored, and never asks Patreon.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from bot.domain.models import MembershipSnapshot
from bot.store.codec import decode_snapshot
from bot.store.database import Database
from bot.store.queues import SqlRunner

#: Memberships per read of `iter_stored_memberships` (a report over 100,000 decodes this many at a time).
REPORT_CHUNK = 1000
#: The orders every campaign's memberships can be read in: the Patreon user, then the campaign (as
#: `stored_memberships`), or the primary key (campaign, Patreon user). One campaign's always follow its primary key.
BY_USER = ("patreon_user_id", "campaign_id")
BY_KEY = ("campaign_id", "patreon_user_id")


async def memberships_in_chunks(
    db: Database, campaign_id: str | None, chunk: int, order: tuple[str, str]
) -> AsyncIterator[MembershipSnapshot]:
    """The stored memberships of `campaign_id` (None: of every campaign, in `order`), `chunk` rows read at a time
    on a keyset, so a reader over 100,000 members holds one chunk of snapshots. One campaign's chunks follow its
    primary key, so each reads only its rows. Each chunk's statement ends before its rows are yielded, so no read
    stays open across the caller's awaits."""
    first, second = order
    after = ("", "")
    while True:
        if campaign_id is not None:
            sql = (
                "SELECT snapshot, observed_at, patreon_user_id FROM memberships"
                " WHERE campaign_id = ? AND patreon_user_id > ? ORDER BY patreon_user_id LIMIT ?"
            )
            parameters: tuple[object, ...] = (campaign_id, after[0], chunk)
        else:
            sql = (
                f"SELECT snapshot, observed_at, {first}, {second} FROM memberships"
                f" WHERE ({first}, {second}) > (?, ?) ORDER BY {first}, {second} LIMIT ?"
            )
            parameters = (*after, chunk)
        async with db.execute(sql, parameters) as cursor:
            rows = list(await cursor.fetchall())
        for row in rows:
            yield decode_snapshot(row[0], datetime.fromisoformat(row[1]))
        if len(rows) < chunk:
            return
        after = (rows[-1][2], rows[-1][3] if campaign_id is None else "")


class PatronReportStore(SqlRunner):
    """Mixed into `Store`."""

    async def stored_memberships(self, campaign_id: str | None = None) -> list[MembershipSnapshot]:
        """Every stored membership of `campaign_id` (None: of every campaign), in Patreon user id order."""
        async with self._db.execute(
            "SELECT snapshot, observed_at FROM memberships WHERE CAST(? AS TEXT) IS NULL OR campaign_id = ?"
            " ORDER BY patreon_user_id",
            (campaign_id, campaign_id),
        ) as cursor:
            return [decode_snapshot(row[0], datetime.fromisoformat(row[1])) async for row in cursor]

    async def iter_stored_memberships(
        self, campaign_id: str | None = None, chunk: int = REPORT_CHUNK
    ) -> AsyncIterator[MembershipSnapshot]:
        """As `stored_memberships`, `chunk` rows read at a time, so a reader over 100,000 members holds one chunk of
        snapshots, not all of them (the whole list raised refresh_bench's peak RSS from 155 to 239 MB). One
        campaign's chunks follow its primary key (campaign, Patreon user), so each reads only its rows; every
        campaign's follow the user id, then the campaign. Each chunk's statement ends before its rows are yielded,
        so no read stays open across the caller's awaits."""
        async for membership in memberships_in_chunks(self._db, campaign_id, chunk, BY_USER):
            yield membership
