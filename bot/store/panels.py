"""The `link_panels` and `link_invitations` tables: where each server's Link-account panel is, and who was invited.

One panel per server, so `/patreon-admin panel` edits the message it posted before; an invitation row is claimed
before the message is sent, so a rejoin (or two join events racing) never invites the same member twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from bot.store.queues import SqlRunner, iso_utc


@dataclass(frozen=True)
class PanelRecord:
    guild_id: int
    channel_id: int
    message_id: int
    #: The admin's title and text (None: the defaults), kept so a mapping change re-renders the same panel.
    title: str | None = None
    body: str | None = None


class PanelStore(SqlRunner):
    """Mixed into `Store`; every method commits before it returns (autocommit)."""

    async def save_panel(self, panel: PanelRecord) -> None:
        await self._run(
            "INSERT INTO link_panels VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (guild_id) DO UPDATE SET"
            " channel_id = excluded.channel_id, message_id = excluded.message_id, title = excluded.title,"
            " body = excluded.body, posted_at = excluded.posted_at",
            (panel.guild_id, panel.channel_id, panel.message_id, panel.title, panel.body, iso_utc(datetime.now(UTC))),
        )

    async def get_panel(self, guild_id: int) -> PanelRecord | None:
        async with self._db.execute(
            "SELECT channel_id, message_id, title, body FROM link_panels WHERE guild_id = ?", (guild_id,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        return PanelRecord(guild_id, int(row[0]), int(row[1]), row[2], row[3])

    async def forget_panel(self, guild_id: int, message_id: int) -> bool:
        """Forget the panel only if it is still that message (a newer post stays)."""
        written = await self._run(
            "DELETE FROM link_panels WHERE guild_id = ? AND message_id = ?", (guild_id, message_id)
        )
        return written.rowcount > 0

    async def claim_link_invitation(self, guild_id: int, discord_user_id: int) -> bool:
        """True the first time only: the caller may then invite this member to link."""
        written = await self._run(
            "INSERT INTO link_invitations VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            (guild_id, discord_user_id, iso_utc(datetime.now(UTC))),
        )
        return written.rowcount > 0
