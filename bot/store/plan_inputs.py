"""What the refresh's plan reads about a guild besides the listing, a page or a guild at a time: links (which
count where), the grant ledger, stored memberships of the planned users, and who the pages can't show (grants
without a link, links without a membership, links made since the last plan, pending webhooks).

One query per page or per guild, never one per member: a plan of 100,000 members must not cost 100,000 round trips.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from bot.domain.models import MembershipSnapshot
from bot.store.bulk import IN_CAMPAIGN, in_chunks
from bot.store.codec import decode_snapshot
from bot.store.queues import PENDING, SqlRunner, iso_utc

#: A link counts in guild ? (`Link.counts_in`, bot/store/links.py): proven by Patreon, or made by hand there.
_COUNTS_IN = "(links.source != 'admin' OR links.linked_in_guild_id = ?)"
#: The links counting in a server made at or after a time, read from the index of their times (migration 16).
LINKS_MADE_SINCE = f"SELECT discord_user_id FROM links WHERE {_COUNTS_IN} AND linked_at >= ?"


class PlanInputsStore(SqlRunner):
    """Mixed into `Store`; reads commit nothing, the two link inserts commit before they return."""

    async def link_map(self) -> dict[int, str]:
        """Every link as Discord user id → Patreon user id."""
        async with self._db.execute("SELECT discord_user_id, patreon_user_id FROM links") as cursor:
            return {int(row[0]): row[1] async for row in cursor}

    async def add_links(self, rows: Iterable[tuple[int, str, int | None, str]], linked_at: datetime) -> int:
        """Insert (discord id, patreon id, guild id, source) links where neither side is linked yet."""
        result = await self._run_many(
            "INSERT INTO links VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [(*row, iso_utc(linked_at)) for row in rows],
        )
        await self._db.commit()
        return max(result.rowcount, 0)

    async def add_auto_links(self, rows: Iterable[tuple[int, str, int | None, str]], linked_at: datetime) -> int:
        """`add_links` for auto-match: a pair with an opt-out (the user unlinked it) is skipped in the same
        statement, so an unlink that lands while auto-match runs is not undone."""
        result = await self._run_many(
            "INSERT INTO links SELECT CAST(? AS BIGINT), CAST(? AS TEXT), CAST(? AS BIGINT), CAST(? AS TEXT),"
            " CAST(? AS TEXT) WHERE NOT EXISTS (SELECT 1 FROM auto_match_optouts WHERE discord_user_id = ?"
            " AND patreon_user_id = ?) ON CONFLICT DO NOTHING",
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

    # -- what the refresh plans, a page or a handful at a time ---------------------------------------

    async def grants_of_users(self, guild_id: int, discord_ids: Iterable[int]) -> dict[int, frozenset[int]]:
        """The ledger of these members of one guild: member → roles this bot granted them."""
        grants: dict[int, set[int]] = {}
        for ids in in_chunks(sorted(set(discord_ids))):
            marks = ",".join("?" * len(ids))
            for row in await self._rows(
                f"SELECT discord_user_id, role_id FROM role_grants WHERE guild_id = ? AND discord_user_id IN ({marks})",
                (guild_id, *ids),
            ):
                grants.setdefault(int(row[0]), set()).add(int(row[1]))
        return {user: frozenset(roles) for user, roles in grants.items()}

    async def links_counting_in_for_patreon(self, guild_id: int, patreon_ids: Iterable[str]) -> dict[int, str]:
        """`links_counting_in(guild_id)` restricted to these Patreon users: Discord user id → Patreon user id."""
        return await self._links_where(guild_id, "links.patreon_user_id", sorted(set(patreon_ids)))

    async def links_counting_in_for_discord(self, guild_id: int, discord_ids: Iterable[int]) -> dict[int, str]:
        """`links_counting_in(guild_id)` restricted to these Discord users."""
        return await self._links_where(guild_id, "links.discord_user_id", sorted(set(discord_ids)))

    async def _links_where(self, guild_id: int, column: str, values: Sequence[object]) -> dict[int, str]:
        found: dict[int, str] = {}
        for chunk in in_chunks(values):
            marks = ",".join("?" * len(chunk))
            rows = await self._rows(
                f"SELECT discord_user_id, patreon_user_id FROM links WHERE {_COUNTS_IN} AND {column} IN ({marks})",
                (guild_id, *chunk),
            )
            found.update({int(row[0]): row[1] for row in rows})
        return found

    async def linked_patreon_ids(self, patreon_ids: Iterable[str], *, by_hand_too: bool = True) -> set[str]:
        """Which of these Patreon users are linked at all (in any server); without `by_hand_too`, only those linked
        by their own word (a sign-in, an auto-match): a link by hand may give way to auto-match (R5-5)."""
        linked: set[str] = set()
        also = "" if by_hand_too else " AND source != 'admin'"
        for chunk in in_chunks(sorted(set(patreon_ids))):
            marks = ",".join("?" * len(chunk))
            async with self._db.execute(
                f"SELECT patreon_user_id FROM links WHERE patreon_user_id IN ({marks}){also}", chunk
            ) as cursor:
                linked.update([row[0] async for row in cursor])
        return linked

    async def memberships_of(
        self, patreon_ids: Iterable[str], campaign_id: str | None = None
    ) -> dict[str, MembershipSnapshot]:
        """The stored snapshots of these Patreon users in the campaign (the ones without a row are absent)."""
        found: dict[str, MembershipSnapshot] = {}
        for chunk in in_chunks(sorted(set(patreon_ids))):
            marks = ",".join("?" * len(chunk))
            async with self._db.execute(
                "SELECT patreon_user_id, snapshot, observed_at FROM memberships"
                f" WHERE {IN_CAMPAIGN} AND patreon_user_id IN ({marks}) ORDER BY observed_at",
                (campaign_id, campaign_id, *chunk),
            ) as cursor:
                found.update(
                    {row[0]: decode_snapshot(row[1], datetime.fromisoformat(row[2])) async for row in cursor}
                )
        return found

    async def links_without_membership(self, guild_id: int, campaign_id: str | None = None) -> set[int]:
        """Discord users whose link counts here but whose Patreon user has no stored membership of the campaign
        (left, or never pledged): after a complete listing, the members it showed nothing for."""
        async with self._db.execute(
            f"SELECT links.discord_user_id FROM links WHERE {_COUNTS_IN} AND NOT EXISTS"
            " (SELECT 1 FROM memberships WHERE memberships.patreon_user_id = links.patreon_user_id"
            f" AND {IN_CAMPAIGN})",
            (guild_id, campaign_id, campaign_id),
        ) as cursor:
            return {int(row[0]) async for row in cursor}

    async def grant_holders_without_link(self, guild_id: int) -> set[int]:
        """Members holding a grant of this guild without a link that counts here (unlinked, or linked by hand in
        another server): their grants are to be taken back."""
        async with self._db.execute(
            "SELECT DISTINCT role_grants.discord_user_id FROM role_grants WHERE role_grants.guild_id = ?"
            f" AND NOT EXISTS (SELECT 1 FROM links WHERE links.discord_user_id = role_grants.discord_user_id"
            f" AND {_COUNTS_IN})",
            (guild_id, guild_id),
        ) as cursor:
            return {int(row[0]) async for row in cursor}

    async def links_made_since(self, guild_id: int, since: datetime) -> set[int]:
        """Discord users whose link counting here was made or replaced at or after `since` (the store's clock)."""
        async with self._db.execute(LINKS_MADE_SINCE, (guild_id, iso_utc(since))) as cursor:
            return {int(row[0]) async for row in cursor}

    async def pending_webhook_patreon_ids(self, received_before: datetime, campaign_id: str | None = None) -> set[str]:
        """Patreon users of the campaign's webhook events still pending from before `received_before` (by the
        event's user, or the stored membership of its member id): what a refresh marks superseded must have been
        planned."""
        async with self._db.execute(
            "SELECT COALESCE(webhook_events.patreon_user_id, memberships.patreon_user_id) FROM webhook_events"
            " LEFT JOIN memberships ON memberships.member_id = webhook_events.member_id"
            " AND (CAST(? AS TEXT) IS NULL OR memberships.campaign_id = ?)"
            " WHERE webhook_events.state = ? AND webhook_events.received_at < ?"
            " AND (CAST(? AS TEXT) IS NULL OR webhook_events.addressed_campaign_id = ?)",
            (campaign_id, campaign_id, PENDING, iso_utc(received_before), campaign_id, campaign_id),
        ) as cursor:
            return {row[0] async for row in cursor if row[0] is not None}
