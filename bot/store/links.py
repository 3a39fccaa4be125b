"""Links between Discord and Patreon accounts: one per Discord user and one per Patreon user, each saying how it
was made (OAuth or auto-match, proven by Patreon; or by an admin's hand, which counts only in that admin's
server) and, for an unlink, that auto-match must not make the same pair again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.store.queues import SqlRunner, iso_utc

#: `links.source` of a link an admin made by hand (`link-user`); "oauth" and "auto" links are proven by Patreon.
ADMIN_SOURCE = "admin"


@dataclass(frozen=True)
class Link:
    discord_user_id: int
    patreon_user_id: str
    linked_in_guild_id: int | None
    source: str
    linked_at: datetime

    @property
    def by_hand(self) -> bool:
        """Made by an admin: nothing but that admin's word ties the two accounts together."""
        return self.source == ADMIN_SOURCE

    def counts_in(self, guild_id: int) -> bool:
        """Whether this link may give roles in `guild_id`: a link proven by Patreon (OAuth, auto-match) counts in
        every server; a link by hand only in the server whose admin made it, so another server's admin can't hand
        out this server's roles. `Store.links_counting_in` is the same rule in SQL."""
        return not self.by_hand or self.linked_in_guild_id == guild_id


class LinkStore(SqlRunner):
    """Mixed into `Store`; every method commits before it returns."""

    async def save_link(
        self, discord_user_id: int, patreon_user_id: str, guild_id: int | None, source: str
    ) -> Link | None:
        """Link the two accounts; return the link this replaced for another Discord user, if any.

        This is the explicit path (OAuth, an admin). The patron's own sign-in also lifts an auto-match opt-out
        for this pair, in the same commit; a link by hand doesn't: it is only its server's word, and another
        campaign's admin could otherwise undo a patron's own unlink by linking the pair and then re-pointing it.
        Auto-match itself inserts through `add_auto_links`, which respects opt-outs.
        """
        previous = await self.get_link_by_patreon(patreon_user_id)
        await self._run("DELETE FROM links WHERE patreon_user_id = ?", (patreon_user_id,))
        await self._run(
            "INSERT INTO links VALUES (?, ?, ?, ?, ?) ON CONFLICT (discord_user_id) DO UPDATE SET"
            " patreon_user_id = excluded.patreon_user_id, linked_in_guild_id = excluded.linked_in_guild_id,"
            " source = excluded.source, linked_at = excluded.linked_at",
            (discord_user_id, patreon_user_id, guild_id, source, _now()),
        )
        if source != ADMIN_SOURCE:
            await self._run(
                "DELETE FROM auto_match_optouts WHERE discord_user_id = ? AND patreon_user_id = ?",
                (discord_user_id, patreon_user_id),
            )
        await self._db.commit()
        if previous is not None and previous.discord_user_id != discord_user_id:
            return previous
        return None

    async def get_link_by_discord(self, discord_user_id: int) -> Link | None:
        return await self._one_link("discord_user_id = ?", discord_user_id)

    async def get_link_by_patreon(self, patreon_user_id: str) -> Link | None:
        return await self._one_link("patreon_user_id = ?", patreon_user_id)

    async def delete_link(self, discord_user_id: int, *, opt_out_at: datetime | None = None) -> Link | None:
        """Remove the link; with `opt_out_at` (an unlink), also record in the same commit that auto-match must
        not link this pair again (`auto_match_optouts`)."""
        link = await self.get_link_by_discord(discord_user_id)
        if link is not None:
            await self._run("DELETE FROM links WHERE discord_user_id = ?", (discord_user_id,))
            if opt_out_at is not None:
                await self._run(
                    "INSERT INTO auto_match_optouts VALUES (?, ?, ?) ON CONFLICT (discord_user_id, patreon_user_id)"
                    " DO UPDATE SET opted_out_at = excluded.opted_out_at",
                    (discord_user_id, link.patreon_user_id, iso_utc(opt_out_at)),
                )
            await self._db.commit()
        return link

    async def auto_match_optouts(self) -> set[tuple[int, str]]:
        """Every (Discord user id, Patreon user id) pair auto-match must skip (a few rows: one per unlink)."""
        async with self._db.execute("SELECT discord_user_id, patreon_user_id FROM auto_match_optouts") as cursor:
            return {(int(row[0]), row[1]) async for row in cursor}

    async def links_counting_in(self, guild_id: int) -> dict[int, str]:
        """Discord user id → Patreon user id of every link that counts in this guild (`Link.counts_in`)."""
        async with self._db.execute(
            "SELECT discord_user_id, patreon_user_id FROM links WHERE source != ? OR linked_in_guild_id = ?",
            (ADMIN_SOURCE, guild_id),
        ) as cursor:
            return {int(row[0]): row[1] async for row in cursor}

    async def links_of_patrons_in(self, guild_id: int, campaign_id: str) -> set[int]:
        """Discord users whose link can give roles in this guild: links of the campaign's patrons (a membership
        stored under it) counting here, and hand links made here. Start-up asks Discord for these members only."""
        async with self._db.execute(
            "SELECT discord_user_id FROM links WHERE (source = ? AND linked_in_guild_id = ?) OR (source != ? AND"
            " EXISTS (SELECT 1 FROM memberships WHERE memberships.campaign_id = ?"
            " AND memberships.patreon_user_id = links.patreon_user_id))",
            (ADMIN_SOURCE, guild_id, ADMIN_SOURCE, campaign_id),
        ) as cursor:
            return {int(row[0]) async for row in cursor}

    async def all_links(self) -> list[Link]:
        async with self._db.execute("SELECT * FROM links ORDER BY discord_user_id") as cursor:
            return [_link(row) async for row in cursor]

    async def _one_link(self, where: str, value: object) -> Link | None:
        async with self._db.execute(f"SELECT * FROM links WHERE {where}", (value,)) as cursor:
            row = await cursor.fetchone()
        return _link(row) if row else None


def _link(row: Any) -> Link:
    return Link(
        discord_user_id=int(row["discord_user_id"]),
        patreon_user_id=row["patreon_user_id"],
        linked_in_guild_id=row["linked_in_guild_id"],
        source=row["source"],
        linked_at=datetime.fromisoformat(row["linked_at"]),
    )


def _now() -> str:
    return iso_utc(datetime.now(UTC))
