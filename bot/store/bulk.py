"""Whole-campaign reads and writes for the periodic refresh: one query or one transaction, not one per member.

A refresh of 100,000 members must not cost 100,000 round trips to SQLite, so these load a guild's inputs once
and save snapshots with one `executemany`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from bot.domain.models import MembershipSnapshot
from bot.store.codec import encode_snapshot
from bot.store.queues import SqlRunner, iso_utc

#: How long "Patreon said this membership is gone" is remembered against late listing pages.
TOMBSTONE_LIFETIME = timedelta(days=1)

UPSERT_MEMBERSHIP = """
    INSERT INTO memberships VALUES (?, ?, ?, ?, ?, ?)
    ON CONFLICT (patreon_user_id) DO UPDATE SET
        member_id = excluded.member_id, campaign_id = excluded.campaign_id,
        social_discord_id = excluded.social_discord_id, snapshot = excluded.snapshot,
        observed_at = excluded.observed_at
    WHERE excluded.observed_at >= memberships.observed_at
"""
#: The refresh's variant: a member Patreon describes exactly as before is not rewritten (about 2 KB a member a
#: refresh otherwise); the listing itself, not `observed_at`, is what keeps a listed member from being forgotten.
UPSERT_CHANGED_MEMBERSHIP = UPSERT_MEMBERSHIP + "    AND excluded.snapshot IS NOT memberships.snapshot\n"


class BulkStore(SqlRunner):
    """Mixed into `Store`; every method commits before it returns."""

    async def save_memberships(self, snapshots: Iterable[MembershipSnapshot], chunk: int = 2000) -> int:
        """Store many snapshots, each only if newer than and different from the stored one; return how many were.

        Written in transactions of `chunk` rows with a pause between them, so a webhook arriving during a
        100,000-member refresh is recorded in milliseconds rather than after the whole write.
        """
        fallback = datetime.now(UTC)
        gone = await self._recent_tombstones(fallback)
        stored = 0
        batch: list[tuple[object, ...]] = []
        for snapshot in snapshots:
            if snapshot.patreon_user_id is None:
                continue
            tombstone = gone.get(snapshot.patreon_user_id)
            if tombstone is not None and (snapshot.observed_at or fallback) < tombstone[1]:
                gone_member, _ = tombstone
                if gone_member is None or snapshot.member_id in (None, gone_member):
                    continue  # a page read before Patreon said this membership was gone (a renewal is kept)
            batch.append(
                (
                    snapshot.patreon_user_id,
                    snapshot.member_id,
                    snapshot.campaign_id,
                    snapshot.social_discord_id,
                    encode_snapshot(snapshot),
                    iso_utc(snapshot.observed_at or fallback),
                )
            )
            if len(batch) >= chunk:
                stored += await self._save_membership_rows(batch)
                batch = []
                await asyncio.sleep(0)
        if batch:
            stored += await self._save_membership_rows(batch)
        return stored

    async def _recent_tombstones(self, now: datetime) -> dict[str, tuple[str | None, datetime]]:
        """Patreon user → (the membership Patreon called gone, when), for the last day (older ones can't race a
        listing any more)."""
        await self._run("DELETE FROM membership_tombstones WHERE gone_at < ?", (iso_utc(now - TOMBSTONE_LIFETIME),))
        async with self._db.execute("SELECT patreon_user_id, member_id, gone_at FROM membership_tombstones") as cursor:
            return {row[0]: (row[1], datetime.fromisoformat(row[2])) async for row in cursor}

    async def _save_membership_rows(self, rows: list[tuple[object, ...]]) -> int:
        result = await self._run_many(UPSERT_CHANGED_MEMBERSHIP, rows)
        await self._db.commit()
        return max(result.rowcount, 0)

    async def delete_memberships_except(self, keep: set[str], observed_before: datetime) -> list[str]:
        """Forget members a complete listing no longer shows, unless seen since it started (a webhook re-fetch)."""
        async with self._db.execute(
            "SELECT patreon_user_id FROM memberships WHERE observed_at < ?", (iso_utc(observed_before),)
        ) as cursor:
            gone = [row[0] async for row in cursor if row[0] not in keep]
        await self._run_many(
            "DELETE FROM memberships WHERE patreon_user_id = ? AND observed_at < ?",
            [(patreon_user_id, iso_utc(observed_before)) for patreon_user_id in gone],
        )
        await self._db.commit()
        return gone

    async def patreon_users_by_member_id(self, member_ids: Iterable[str]) -> dict[str, str]:
        """Member id → Patreon user id of the stored memberships among `member_ids` (a membership's user never
        changes, so a listing that shows the member without its user can still be matched to it)."""
        wanted = list(dict.fromkeys(member_ids))
        found: dict[str, str] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            async with self._db.execute(
                f"SELECT member_id, patreon_user_id FROM memberships WHERE member_id IN ({marks})", chunk
            ) as cursor:
                found.update({row[0]: row[1] async for row in cursor})
        return found

    async def membership_count(self) -> int:
        async with self._db.execute("SELECT COUNT(*) FROM memberships") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def memberships_not_listed(self, keep: set[str], observed_before: datetime) -> list[str]:
        """What `delete_memberships_except(keep, observed_before)` would forget now, without forgetting it."""
        async with self._db.execute(
            "SELECT patreon_user_id FROM memberships WHERE observed_at < ?", (iso_utc(observed_before),)
        ) as cursor:
            return [row[0] async for row in cursor if row[0] not in keep]

    async def delete_membership_observed_before(
        self, patreon_user_id: str, observed_before: datetime, member_id: str | None = None
    ) -> bool:
        """Forget a membership Patreon says is gone, unless a newer look has been stored meanwhile.

        With `member_id`, only that membership goes: after a delete-and-renew the user has a new member id,
        and a late 404 for the old one must not erase the new one.
        """
        result = await self._run(
            "DELETE FROM memberships WHERE patreon_user_id = ? AND observed_at < ?"
            " AND (? IS NULL OR member_id IS NULL OR member_id = ?)",
            (patreon_user_id, iso_utc(observed_before), member_id, member_id),
        )
        if result.rowcount > 0:
            await self._run(
                "INSERT INTO membership_tombstones VALUES (?, ?, ?) ON CONFLICT (patreon_user_id) DO UPDATE SET"
                " member_id = excluded.member_id, gone_at = MAX(gone_at, excluded.gone_at)",
                (patreon_user_id, member_id, iso_utc(observed_before)),
            )
        await self._db.commit()
        return result.rowcount > 0

    async def link_map(self) -> dict[int, str]:
        """Every link as Discord user id → Patreon user id."""
        async with self._db.execute("SELECT discord_user_id, patreon_user_id FROM links") as cursor:
            return {int(row[0]): row[1] async for row in cursor}

    async def add_links(self, rows: Iterable[tuple[int, str, int | None, str]], linked_at: datetime) -> int:
        """Insert (discord id, patreon id, guild id, source) links where neither side is linked yet."""
        result = await self._run_many(
            "INSERT OR IGNORE INTO links VALUES (?, ?, ?, ?, ?)",
            [(*row, iso_utc(linked_at)) for row in rows],
        )
        await self._db.commit()
        return max(result.rowcount, 0)

    async def add_auto_links(self, rows: Iterable[tuple[int, str, int | None, str]], linked_at: datetime) -> int:
        """`add_links` for auto-match: a pair with an opt-out (the user unlinked it) is skipped in the same
        statement, so an unlink that lands while auto-match runs is not undone."""
        result = await self._run_many(
            "INSERT OR IGNORE INTO links SELECT ?, ?, ?, ?, ? WHERE NOT EXISTS"
            " (SELECT 1 FROM auto_match_optouts WHERE discord_user_id = ? AND patreon_user_id = ?)",
            [(*row, iso_utc(linked_at), row[0], row[1]) for row in rows],
        )
        await self._db.commit()
        return max(result.rowcount, 0)

    async def grants_in_guild(self, guild_id: int) -> dict[int, frozenset[int]]:
        """The ledger of one guild: member → roles this bot granted them."""
        grants: dict[int, set[int]] = {}
        async with self._db.execute(
            "SELECT discord_user_id, role_id FROM role_grants WHERE guild_id = ?", (guild_id,)
        ) as cursor:
            async for row in cursor:
                grants.setdefault(int(row[0]), set()).add(int(row[1]))
        return {user: frozenset(roles) for user, roles in grants.items()}
