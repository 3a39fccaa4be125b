"""Comps and lapses (migration 11): what the engine needs to give a role for a while, and to kick on a lapse.

A comp row is the licence to want its role until `expires_at`; the grant ledger (`role_grants`) stays the only
licence to take a role away, so a comp never removes a role the member held by hand. The expiry sweep ends a comp
once (`end_comps` only changes rows still active), after its member's role job is queued; the job does the removal
and is idempotent, so a crash between the two at worst queues the same member twice, never removes twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from bot.domain.comps import ACTIVE, ENDED, Comp
from bot.store.queues import SqlRunner, iso_utc


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _comp(row: object) -> Comp:
    r = row  # aiosqlite.Row
    return Comp(
        guild_id=int(r["guild_id"]),  # type: ignore[index]
        user_id=int(r["discord_user_id"]),  # type: ignore[index]
        role_id=int(r["role_id"]),  # type: ignore[index]
        expires_at=_parse(r["expires_at"]),  # type: ignore[index]
        reason=r["reason"],  # type: ignore[index]
        granted_by=int(r["granted_by"]),  # type: ignore[index]
        granted_at=_parse(r["granted_at"]),  # type: ignore[index]
        state=r["state"],  # type: ignore[index]
    )


class CompStore(SqlRunner):
    """Mixed into `Store`; every write commits before it returns. Times are the caller's clock."""

    async def save_comp(self, comp: Comp) -> None:
        """Give or renew (the row is replaced: one comp per server, member and role)."""
        await self._run(
            "INSERT INTO comps VALUES (?, ?, ?, ?, ?, ?, ?, 'active', NULL, NULL)"
            " ON CONFLICT (guild_id, discord_user_id, role_id) DO UPDATE SET expires_at = excluded.expires_at,"
            " reason = excluded.reason, granted_by = excluded.granted_by, granted_at = excluded.granted_at,"
            " state = 'active', ended_at = NULL, ended_why = NULL",
            (
                comp.guild_id,
                comp.user_id,
                comp.role_id,
                iso_utc(comp.expires_at),
                comp.reason,
                comp.granted_by,
                iso_utc(comp.granted_at),
            ),
        )
        await self._db.commit()

    async def get_comp(self, guild_id: int, user_id: int, role_id: int) -> Comp | None:
        async with self._db.execute(
            "SELECT * FROM comps WHERE guild_id = ? AND discord_user_id = ? AND role_id = ?",
            (guild_id, user_id, role_id),
        ) as cursor:
            row = await cursor.fetchone()
        return _comp(row) if row is not None else None

    async def active_comps(self, guild_id: int, user_id: int, now: datetime) -> list[Comp]:
        """The member's comps in this server that are active and not yet expired at `now`."""
        async with self._db.execute(
            "SELECT * FROM comps WHERE guild_id = ? AND discord_user_id = ? AND state = ? AND expires_at > ?"
            " ORDER BY role_id",
            (guild_id, user_id, ACTIVE, iso_utc(now)),
        ) as cursor:
            return [_comp(row) async for row in cursor]

    async def guild_comps(self, guild_id: int, now: datetime) -> dict[int, list[Comp]]:
        """Every comp active at `now` in this server, by member (the refresh's batch path, the report, check)."""
        found: dict[int, list[Comp]] = {}
        async with self._db.execute(
            "SELECT * FROM comps WHERE guild_id = ? AND state = ? AND expires_at > ? ORDER BY discord_user_id, role_id",
            (guild_id, ACTIVE, iso_utc(now)),
        ) as cursor:
            async for row in cursor:
                comp = _comp(row)
                found.setdefault(comp.user_id, []).append(comp)
        return found

    async def due_comps(self, now: datetime, limit: int = 200) -> list[Comp]:
        """Comps still active whose end has come (the expiry sweep's work)."""
        async with self._db.execute(
            "SELECT * FROM comps WHERE state = ? AND expires_at <= ? ORDER BY expires_at LIMIT ?",
            (ACTIVE, iso_utc(now), limit),
        ) as cursor:
            return [_comp(row) async for row in cursor]

    async def next_comp_expiry(self) -> datetime | None:
        async with self._db.execute("SELECT MIN(expires_at) FROM comps WHERE state = ?", (ACTIVE,)) as cursor:
            row = await cursor.fetchone()
        return _parse(row[0]) if row is not None and row[0] else None

    async def end_comps(self, comps: Iterable[Comp], now: datetime, why: str) -> list[Comp]:
        """End these comps if still active and unchanged; returns the ones this call ended (each comp ends once).

        The row must still end when the caller read it (`expires_at`): a renewal since the read (the expiry sweep
        awaits the role jobs in between) is left active."""
        ended: list[Comp] = []
        for comp in comps:
            written = await self._run(
                "UPDATE comps SET state = ?, ended_at = ?, ended_why = ? WHERE guild_id = ? AND discord_user_id = ?"
                " AND role_id = ? AND state = ? AND expires_at = ?",
                (
                    ENDED,
                    iso_utc(now),
                    why[:100],
                    comp.guild_id,
                    comp.user_id,
                    comp.role_id,
                    ACTIVE,
                    iso_utc(comp.expires_at),
                ),
            )
            if written.rowcount:
                ended.append(comp)
        await self._db.commit()
        return ended

    # -- lapses --------------------------------------------------------------------------------------

    async def record_lapse(self, guild_id: int, user_id: int, at: datetime) -> None:
        """The first lapse stands: a later removal doesn't restart the count."""
        await self._run(
            "INSERT INTO lapses VALUES (?, ?, ?) ON CONFLICT DO NOTHING", (guild_id, user_id, iso_utc(at))
        )
        await self._db.commit()

    async def clear_lapse(self, guild_id: int, user_id: int) -> None:
        await self._run("DELETE FROM lapses WHERE guild_id = ? AND discord_user_id = ?", (guild_id, user_id))
        await self._db.commit()

    async def lapses_before(self, guild_id: int, cutoff: datetime) -> dict[int, datetime]:
        """Members of this server whose lapse began before `cutoff`, with when."""
        async with self._db.execute(
            "SELECT discord_user_id, lapsed_at FROM lapses WHERE guild_id = ? AND lapsed_at < ? ORDER BY 1",
            (guild_id, iso_utc(cutoff)),
        ) as cursor:
            return {int(row[0]): _parse(row[1]) async for row in cursor}
