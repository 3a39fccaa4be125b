"""Whole-campaign reads and writes for the periodic refresh: one query or one transaction, not one per member.

A refresh of 100,000 members must not cost 100,000 round trips to SQLite, so these load a guild's inputs once
per page of members and save snapshots with one `executemany`. A listing page is compared with the stored
`listing_hash` (migration 14: the member's bytes as the last listing showed them), else with `snapshot_hash`
(migration 7: its values), so a member Patreon describes as before is neither decoded, encoded nor rewritten.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.domain.models import MembershipSnapshot
from bot.store.campaigns import UNKNOWN_CAMPAIGN
from bot.store.codec import encode_snapshot, snapshot_hash
from bot.store.database import SQLITE
from bot.store.due_moments import due_columns
from bot.store.queues import SqlRunner, iso_utc

#: How long "Patreon said this membership is gone" is remembered against late listing pages.
TOMBSTONE_LIFETIME = timedelta(days=1)
#: How often the tombstones past their lifetime are deleted (they are ignored from then on anyway).
TOMBSTONE_PRUNE_EVERY = timedelta(minutes=1)
#: Ids per `IN (...)` query (well under SQLite's variable limit).
IN_CHUNK = 500
#: Ids per look-up of a listing page's members: one query a page where SQLite takes 32,766 parameters (3.32 on;
#: asyncpg 32,767), else under the older SQLite's 999.
PAGE_CHUNK = 1000 if sqlite3.sqlite_version_info >= (3, 32) else IN_CHUNK
#: Rows per read of the "who is gone" sweep.
SWEEP_CHUNK = 10_000

UPSERT_MEMBERSHIP = """
    INSERT INTO memberships
        (patreon_user_id, member_id, campaign_id, social_discord_id, snapshot, observed_at, snapshot_hash,
         listing_hash, due_next_charge, due_paid_end, due_last_charge)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (campaign_id, patreon_user_id) DO UPDATE SET
        member_id = excluded.member_id,
        social_discord_id = excluded.social_discord_id, snapshot = excluded.snapshot,
        observed_at = excluded.observed_at, snapshot_hash = excluded.snapshot_hash,
        listing_hash = excluded.listing_hash, due_next_charge = excluded.due_next_charge,
        due_paid_end = excluded.due_paid_end, due_last_charge = excluded.due_last_charge
    WHERE excluded.observed_at >= memberships.observed_at
"""
#: A listing showed the member as stored (by value) in bytes not yet remembered: remember them (and the moments it
#: is due at, which a row from before migration 14 lacks), unless the stored snapshot changed since it was compared
#: (a webhook's re-fetch in between).
_REMEMBER_LISTING_HASH = """
    UPDATE memberships SET listing_hash = ?, due_next_charge = ?, due_paid_end = ?, due_last_charge = ?
    WHERE campaign_id = ? AND patreon_user_id = ? AND snapshot_hash = ?
"""
#: `campaign_id` matches `?` (the first of two equal parameters), or `?` is NULL: every campaign.
IN_CAMPAIGN = "(CAST(? AS TEXT) IS NULL OR campaign_id = ?)"


def campaign_key(snapshot: MembershipSnapshot, campaign_id: str | None) -> str:
    """The campaign a snapshot is stored under: the caller's, else its own, else the unknown (migrated) one."""
    return campaign_id if campaign_id is not None else snapshot.campaign_id or UNKNOWN_CAMPAIGN


def membership_row(
    snapshot: MembershipSnapshot,
    fallback: datetime,
    campaign: str,
    digest: bytes | None = None,
    listing: bytes | None = None,
) -> tuple[object, ...]:
    """The parameters of `UPSERT_MEMBERSHIP` for one snapshot (`fallback`: when it carries no `observed_at`;
    `listing`: the listing hash of the bytes it was read from, None for any other look, which clears it)."""
    return (
        snapshot.patreon_user_id,
        snapshot.member_id,
        campaign,
        snapshot.social_discord_id,
        encode_snapshot(snapshot),
        iso_utc(snapshot.observed_at or fallback),
        digest if digest is not None else snapshot_hash(snapshot),
        listing,
        *due_columns(snapshot),
    )


def _bytes(value: Any) -> bytes | None:
    """A BLOB as bytes (SQLite gives bytes, asyncpg bytes too; a memoryview or bytearray from elsewhere)."""
    return None if value is None else bytes(value)


def in_chunks(values: Sequence[object], size: int = IN_CHUNK) -> Iterable[Sequence[object]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


class BulkStore(SqlRunner):
    """Mixed into `Store`; every method commits before it returns."""

    #: When the tombstones past their lifetime were last deleted (None: not yet by this process).
    _tombstones_pruned: datetime | None = None

    async def save_memberships(
        self, snapshots: Iterable[MembershipSnapshot], chunk: int = 2000, campaign_id: str | None = None
    ) -> int:
        """Store many snapshots, each only if newer than and different from the stored one; return how many were.

        Written in transactions of `chunk` rows with a pause between them, so a webhook arriving during a
        100,000-member refresh is recorded in milliseconds rather than after the whole write.
        """
        stored = 0
        batch: list[MembershipSnapshot] = []
        for snapshot in snapshots:
            batch.append(snapshot)
            if len(batch) >= chunk:
                stored += len(await self.save_membership_page(batch, campaign_id))
                batch = []
                await asyncio.sleep(0)
        if batch:
            stored += len(await self.save_membership_page(batch, campaign_id))
        return stored

    async def save_membership_page(
        self,
        snapshots: Sequence[MembershipSnapshot],
        campaign_id: str | None = None,
        listing_hashes: Mapping[str, bytes] | None = None,
    ) -> list[MembershipSnapshot]:
        """Store one listing page in one transaction; return the snapshots written (new or changed members).

        Skipped: a member whose stored hash is the same (Patreon describes them as before), one stored from a
        newer look (a webhook re-fetch), and a page read before Patreon said the membership was gone.
        """
        if not snapshots:
            return []  # a page on which nothing changed: nothing to read, prune or commit
        fallback = datetime.now(UTC)
        gone = await self._recent_tombstones(fallback)
        listed = [s for s in snapshots if s.patreon_user_id is not None]
        stored: dict[tuple[str, str], tuple[bytes | None, str]] = {}
        by_campaign: dict[str, list[object]] = {}
        if campaign_id is not None:  # a listing's page: one campaign (100,000 members a refresh, so no per-member key)
            by_campaign[campaign_id] = [s.patreon_user_id for s in listed]
        else:
            for s in listed:
                by_campaign.setdefault(campaign_key(s, campaign_id), []).append(s.patreon_user_id)
        for key, user_ids in by_campaign.items():
            stored.update({(key, user): look for user, look in (await self._stored_looks(key, user_ids)).items()})
        written: list[MembershipSnapshot] = []
        rows: list[tuple[object, ...]] = []
        for snapshot in listed:
            user_id = snapshot.patreon_user_id
            assert user_id is not None
            key = campaign_id if campaign_id is not None else campaign_key(snapshot, None)
            tombstone = gone.get((key, user_id)) if gone else None
            if tombstone is not None and (snapshot.observed_at or fallback) < tombstone[1]:
                gone_member, _ = tombstone
                if gone_member is None or snapshot.member_id in (None, gone_member):
                    continue  # a page read before Patreon said this membership was gone (a renewal is kept)
            digest = snapshot_hash(snapshot)
            before = stored.get((key, user_id))
            if before is not None and before[0] == digest:
                continue
            observed = iso_utc(snapshot.observed_at or fallback)
            if before is not None and before[1] > observed:
                continue
            stored[(key, user_id)] = (digest, observed)  # the same member twice on a page: the later look wins
            read_from = listing_hashes.get(user_id) if listing_hashes is not None else None
            rows.append(membership_row(snapshot, fallback, key, digest, read_from))
            written.append(snapshot)
        if rows:
            await self._run_many(UPSERT_MEMBERSHIP, rows)
        await self._db.commit()  # the tombstone prune too: no transaction is left open between pages
        return written

    async def listing_hashes(self, campaign_id: str, chunk: int = SWEEP_CHUNK) -> dict[str, bytes | None]:
        """Patreon user → stored `listing_hash` (None: not remembered) of every membership of the campaign: what
        the refresh compares each listing page's bytes with first (bot/sync/page_changes.py), read once a listing.
        Read along the index in key order, `chunk` rows a call: a third of the CPU of looking each page's 1,000
        users up (100,000 seeks), for about 15 MB held while the listing runs."""
        found: dict[str, bytes | None] = {}
        async for rows in self._along_key(campaign_id, "listing_hash", "", (), chunk):
            found.update(rows if self._dialect == SQLITE else ((row[0], _bytes(row[1])) for row in rows))
        return found

    async def _along_key(
        self, campaign_id: str, columns: str, also: str, params: tuple[object, ...], chunk: int
    ) -> AsyncIterator[list[Any]]:
        """(patreon_user_id, *columns) of the campaign's memberships (`columns`: "" for the id alone; `also`: more
        of the WHERE, with `params`), `chunk` rows a call along the primary key: row by row, aiosqlite hands them
        over 64 at a time (1,500 thread hops for a campaign of 100,000), and all at once would hold them all.
        SQLite's rows are plain tuples."""
        after = ""
        while True:
            async with self._db.execute(
                f"SELECT patreon_user_id{', ' if columns else ''}{columns} FROM memberships WHERE campaign_id = ?"
                f" AND patreon_user_id > ?{also} ORDER BY patreon_user_id LIMIT ?",
                (campaign_id, after, *params, chunk),
            ) as cursor:
                if self._dialect == SQLITE:
                    cursor.row_factory = None
                rows = await cursor.fetchall()
            yield rows
            if len(rows) < chunk:
                return
            after = rows[-1][0]

    async def listing_looks(
        self, campaign_id: str, user_ids: Sequence[str | None]
    ) -> dict[str, tuple[bytes | None, bytes | None]]:
        """Patreon user → (stored `snapshot_hash`, stored `listing_hash`) of these users' memberships of the
        campaign: what the refresh compares a page's members with by value (bot/sync/page_changes.py)."""
        wanted = [user for user in user_ids if user is not None]
        rows = await self._of_users(campaign_id, wanted, "snapshot_hash, listing_hash")
        if self._dialect == SQLITE:
            return {user: (digest, listing) for user, digest, listing in rows}
        return {row[0]: (_bytes(row[1]), _bytes(row[2])) for row in rows}

    async def remember_listing_hashes(
        self, campaign_id: str, seen: Iterable[tuple[MembershipSnapshot, bytes, bytes]]
    ) -> None:
        """(snapshot, stored snapshot hash, listing hash) of members a listing showed as stored, by value, in bytes
        not remembered yet: the next listing skips them unread. Not where the snapshot changed meanwhile."""
        rows = [
            (listing, *due_columns(snapshot), campaign_id, snapshot.patreon_user_id, digest)
            for snapshot, digest, listing in seen
        ]
        if rows:
            await self._run_many(_REMEMBER_LISTING_HASH, rows)
            await self._db.commit()

    async def _stored_looks(
        self, campaign_id: str, user_ids: Sequence[object]
    ) -> dict[str, tuple[bytes | None, str]]:
        """Patreon user → (stored snapshot hash, observed_at) of these users' memberships of the campaign."""
        rows = await self._of_users(campaign_id, user_ids, "snapshot_hash, observed_at")
        return {row[0]: (row[1], row[2]) for row in rows}

    async def _of_users(self, campaign_id: str, user_ids: Sequence[object], columns: str) -> list[Any]:
        """(patreon_user_id, *columns) of these users' memberships of the campaign, a listing page's users a
        query, in one trip to the database (`_rows`): a scheduled refresh asks for the few whose bytes changed."""
        found: list[Any] = []
        for ids in in_chunks(user_ids, PAGE_CHUNK):
            marks = ",".join("?" * len(ids))
            found += await self._rows(
                f"SELECT patreon_user_id, {columns} FROM memberships WHERE campaign_id = ? AND patreon_user_id IN"
                f" ({marks})",
                (campaign_id, *ids),
            )
        return found

    async def _recent_tombstones(self, now: datetime) -> dict[tuple[str, str], tuple[str | None, datetime]]:
        """(campaign, Patreon user) → (the membership Patreon called gone, when), for the last day (older ones
        can't race a listing any more). The older ones are deleted at most once a `TOMBSTONE_PRUNE_EVERY`: a
        listing asks at every page, and each delete is a write and two trips to the database's thread."""
        cutoff = iso_utc(now - TOMBSTONE_LIFETIME)
        if self._tombstones_pruned is None or now - self._tombstones_pruned >= TOMBSTONE_PRUNE_EVERY:
            await self._run("DELETE FROM membership_tombstones WHERE gone_at < ?", (cutoff,))
            self._tombstones_pruned = now
        rows = await self._rows(
            "SELECT campaign_id, patreon_user_id, member_id, gone_at FROM membership_tombstones WHERE gone_at >= ?",
            (cutoff,),
        )
        return {(row[0], row[1]): (row[2], datetime.fromisoformat(row[3])) for row in rows}

    async def delete_memberships_except(
        self,
        keep: set[str],
        observed_before: datetime,
        campaign_id: str | None = None,
        among: Sequence[str] | None = None,
    ) -> list[str]:
        """Forget members of the campaign a complete listing no longer shows, unless seen since it started (a
        webhook re-fetch). `among`: only these may be gone (the stored members the listing began with that it
        didn't show), so only they are read, not the whole campaign again."""
        if among is None or campaign_id is None:
            gone = await self.memberships_not_listed(keep, observed_before, campaign_id)
        else:
            before = iso_utc(observed_before)
            seen = await self._of_users(campaign_id, [user for user in among if user not in keep], "observed_at")
            gone = [row[0] for row in seen if row[1] < before]
        await self._run_many(
            f"DELETE FROM memberships WHERE patreon_user_id = ? AND observed_at < ? AND {IN_CAMPAIGN}",
            [(patreon_user_id, iso_utc(observed_before), campaign_id, campaign_id) for patreon_user_id in gone],
        )
        await self._db.commit()
        return gone

    async def patreon_users_by_member_id(
        self, member_ids: Iterable[str], campaign_id: str | None = None
    ) -> dict[str, str]:
        """Member id → Patreon user id of the stored memberships among `member_ids` (a membership's user never
        changes, so a listing that shows the member without its user can still be matched to it)."""
        wanted = list(dict.fromkeys(member_ids))
        found: dict[str, str] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            async with self._db.execute(
                f"SELECT member_id, patreon_user_id FROM memberships WHERE {IN_CAMPAIGN} AND member_id IN ({marks})",
                (campaign_id, campaign_id, *chunk),
            ) as cursor:
                found.update({row[0]: row[1] async for row in cursor})
        return found

    async def membership_count(self, campaign_id: str | None = None) -> int:
        async with self._db.execute(
            f"SELECT COUNT(*) FROM memberships WHERE {IN_CAMPAIGN}", (campaign_id, campaign_id)
        ) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def memberships_not_listed(
        self, keep: set[str], observed_before: datetime, campaign_id: str | None = None, chunk: int = SWEEP_CHUNK
    ) -> list[str]:
        """What `delete_memberships_except(keep, observed_before)` would forget now, without forgetting it. A
        campaign's rows are read `chunk` at a time along its primary key (`_along_key`)."""
        before = iso_utc(observed_before)
        if campaign_id is None:
            async with self._db.execute(
                "SELECT DISTINCT patreon_user_id FROM memberships WHERE observed_at < ?", (before,)
            ) as cursor:
                return [row[0] async for row in cursor if row[0] not in keep]
        gone: list[str] = []
        async for rows in self._along_key(campaign_id, "", " AND observed_at < ?", (before,), chunk):
            gone += [row[0] for row in rows if row[0] not in keep]
        return gone

    async def delete_membership_observed_before(
        self,
        patreon_user_id: str,
        observed_before: datetime,
        member_id: str | None = None,
        *,
        also_gone: str | None = None,
        campaign_id: str | None = None,
    ) -> bool:
        """Forget a membership Patreon says is gone, unless a newer look has been stored meanwhile.

        With `member_id`, only that membership goes: after a delete-and-renew the user has a new member id,
        and a late 404 for the old one must not erase the new one. `also_gone` is a second membership of the
        user Patreon called gone (the webhook's, when the stored one was another): a tombstone holds one member
        id, so it then covers every membership of the user read before `observed_before`, and a late listing
        page can bring back neither.
        """
        where = (
            "patreon_user_id = ? AND observed_at < ?"
            " AND (CAST(? AS TEXT) IS NULL OR member_id IS NULL OR member_id = ?)"
            f" AND {IN_CAMPAIGN}"
        )
        params = (patreon_user_id, iso_utc(observed_before), member_id, member_id, campaign_id, campaign_id)
        async with self._db.execute(f"SELECT DISTINCT campaign_id FROM memberships WHERE {where}", params) as cursor:
            campaigns = [row[0] async for row in cursor]
        result = await self._run(f"DELETE FROM memberships WHERE {where}", params)
        if result.rowcount > 0:
            await self._run_many(
                "INSERT INTO membership_tombstones (campaign_id, patreon_user_id, member_id, gone_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (campaign_id, patreon_user_id) DO UPDATE SET"
                " member_id = excluded.member_id, gone_at = CASE WHEN excluded.gone_at > membership_tombstones.gone_at"
                " THEN excluded.gone_at ELSE membership_tombstones.gone_at END",
                [
                    (campaign, patreon_user_id, None if also_gone else member_id, iso_utc(observed_before))
                    for campaign in campaigns
                ],
            )
        await self._db.commit()
        return result.rowcount > 0
