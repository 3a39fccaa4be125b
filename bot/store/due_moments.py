"""The moments time alone can change a stored membership's roles at, kept beside its snapshot (migration 14).

A refresh that skips unchanged members unread (bot/sync/page_changes.py) still has to plan the members whose
decision a date changes: a charge due, a paid period or a decline's grace ending. The store keeps those moments
in three columns, so the refresh asks which members fall due since its last run instead of reading them all.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.domain import billing
from bot.domain.models import MembershipSnapshot
from bot.store.codec import decode_snapshot
from bot.store.queues import SqlRunner, iso_utc


def due_columns(snapshot: MembershipSnapshot) -> tuple[str, str, str]:
    """`billing.time_moments` as the store keeps them: fixed-width UTC text, '' for none (NULL: not known yet, a row
    from before migration 14 until `fill_due_moments` has read it)."""
    moments = billing.time_moments(snapshot) or (None, None, None)
    return tuple(iso_utc(moment) if moment is not None else "" for moment in moments)  # type: ignore[return-value]


def _due_of_text(text: str) -> tuple[str, str, str]:
    try:
        return due_columns(decode_snapshot(text))
    except (ValueError, TypeError, KeyError):
        return "", "", ""


#: The campaign's members with a moment in (after, until], read from the listing's index (migration 16).
DUE_BY_TIME = (
    "SELECT patreon_user_id FROM memberships WHERE campaign_id = ? AND ("
    "(due_next_charge > ? AND due_next_charge <= ?) OR (due_paid_end > ? AND due_paid_end <= ?)"
    " OR (due_last_charge > ? AND due_last_charge <= ?))"
)

class DueMomentsStore(SqlRunner):
    """Mixed into `Store`; every method commits before it returns."""

    async def fill_due_moments(self, chunk: int = 1000) -> int:
        """Give each row from before migration 14 its moments, read from its snapshot (once: at the first start
        after the upgrade, a chunk a transaction); return how many. A snapshot that can't be read is never due
        by time (the daily full re-plan still plans it)."""
        filled = 0
        while True:
            async with self._db.execute(
                "SELECT campaign_id, patreon_user_id, snapshot FROM memberships WHERE due_next_charge IS NULL LIMIT ?",
                (chunk,),
            ) as cursor:
                rows = await cursor.fetchall()
            if not rows:
                return filled
            await self._run_many(
                "UPDATE memberships SET due_next_charge = ?, due_paid_end = ?, due_last_charge = ?"
                " WHERE campaign_id = ? AND patreon_user_id = ?",
                [(*_due_of_text(row[2]), row[0], row[1]) for row in rows],
            )
            await self._db.commit()
            filled += len(rows)

    async def memberships_due_by_time(
        self, campaign_id: str, since: datetime, now: datetime, grace_days: int
    ) -> list[str]:
        """Patreon users of the campaign whose roles time alone may have changed between `since` and `now`, with a
        decline grace of `grace_days` (what `batch_plan.may_change_by_time` says of each stored snapshot)."""
        since, now = billing.as_utc(since), billing.as_utc(now)  # naive read as UTC, as the time rule reads it
        grace = timedelta(days=grace_days)
        try:
            grace_now = iso_utc(now - grace)
        except OverflowError:  # a grace longer than the calendar: none has ended
            grace_now = ""
        try:
            grace_since = iso_utc(since - grace)
        except OverflowError:
            grace_since = ""  # every text sorts after it
        after, until = iso_utc(since), iso_utc(now)
        async with self._db.execute(
            DUE_BY_TIME, (campaign_id, after, until, after, until, grace_since, grace_now)
        ) as cursor:
            return [row[0] for row in await cursor.fetchall()]
