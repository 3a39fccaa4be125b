"""The `role_connections` table (Linked Roles): per Discord user, what Discord last accepted and what waits.

A row is the durable push queue too: `wanted` holds the metadata still to be pushed (None: nothing waits), with
its attempts and next try, so a crash or a Discord outage loses no update and a restart finishes it. The user's
Discord token pair lives in the encrypted `tokens` table under `discord_subject(user)`, sealed and rotated like
every other token. A refused or revoked token marks only that user's row `revoked` and drops the pair: pushes stop
for them alone, and `/patreon status` says so with what was last pushed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.domain.models import TokenPair
from bot.store.queues import SqlRunner, _parse, iso_utc

ACTIVE = "active"
REVOKED = "revoked"


def discord_subject(discord_user_id: int) -> str:
    return f"discord:{discord_user_id}"


@dataclass(frozen=True)
class RoleConnection:
    discord_user_id: int
    state: str
    platform_username: str | None
    #: The metadata Discord last accepted (None: never pushed).
    pushed: dict[str, str] | None
    pushed_at: datetime | None
    #: The metadata waiting to be pushed (None: Discord has the latest).
    wanted: dict[str, str] | None
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None

    @property
    def revoked(self) -> bool:
        return self.state == REVOKED


class RoleConnectionStore(SqlRunner):
    """Mixed into `Store`; every method commits before it returns."""

    if TYPE_CHECKING:  # provided by TokenStore, mixed into the same Store

        async def save_tokens(self, subject: str, tokens: TokenPair) -> None: ...

        async def delete_tokens(self, subject: str) -> None: ...

    async def connect_role_connection(self, discord_user_id: int, tokens: TokenPair, at: datetime) -> None:
        """The user authorised `role_connections.write`: store the pair (encrypted) and (re)activate the row. What
        Discord had is forgotten (a user who removed the app lost it), so the next push always goes out."""
        await self.save_tokens(discord_subject(discord_user_id), tokens)
        await self._run(
            "INSERT INTO role_connections (discord_user_id, state, attempts, updated_at) VALUES (?, ?, 0, ?)"
            " ON CONFLICT (discord_user_id) DO UPDATE SET state = excluded.state, attempts = 0, last_error = NULL,"
            " pushed = NULL, updated_at = excluded.updated_at",
            (discord_user_id, ACTIVE, iso_utc(at)),
        )
        await self._db.commit()

    async def role_connection(self, discord_user_id: int) -> RoleConnection | None:
        async with self._db.execute(
            "SELECT * FROM role_connections WHERE discord_user_id = ?", (discord_user_id,)
        ) as cursor:
            row = await cursor.fetchone()
        return _connection(row) if row else None

    async def active_role_connections(self) -> list[RoleConnection]:
        async with self._db.execute(
            "SELECT * FROM role_connections WHERE state = ? ORDER BY discord_user_id", (ACTIVE,)
        ) as cursor:
            return [_connection(row) async for row in cursor]

    async def want_push(
        self, discord_user_id: int, metadata: dict[str, str], platform_username: str | None, at: datetime
    ) -> bool:
        """Queue `metadata` for an active connection (replacing what waited); False when revoked or unknown."""
        result = await self._run(
            "UPDATE role_connections SET wanted = ?, platform_username = ?, attempts = 0, next_attempt_at = ?,"
            " updated_at = ? WHERE discord_user_id = ? AND state = ?",
            (_json(metadata), platform_username, iso_utc(at), iso_utc(at), discord_user_id, ACTIVE),
        )
        await self._db.commit()
        return result.rowcount > 0

    async def due_pushes(self, now: datetime, limit: int = 50) -> list[RoleConnection]:
        async with self._db.execute(
            "SELECT * FROM role_connections WHERE state = ? AND wanted IS NOT NULL AND next_attempt_at <= ?"
            " ORDER BY next_attempt_at LIMIT ?",
            (ACTIVE, iso_utc(now), limit),
        ) as cursor:
            return [_connection(row) async for row in cursor]

    async def next_push_due(self) -> datetime | None:
        async with self._db.execute(
            "SELECT MIN(next_attempt_at) FROM role_connections WHERE state = ? AND wanted IS NOT NULL", (ACTIVE,)
        ) as cursor:
            row = await cursor.fetchone()
        return _parse(row[0]) if row else None

    async def push_done(self, discord_user_id: int, metadata: dict[str, str], at: datetime) -> None:
        """Discord accepted `metadata`; what waits is cleared unless a newer value was queued meanwhile."""
        text = _json(metadata)
        await self._run(
            "UPDATE role_connections SET pushed = ?, pushed_at = ?, attempts = 0, last_error = NULL, updated_at = ?,"
            " wanted = CASE WHEN wanted = ? THEN NULL ELSE wanted END WHERE discord_user_id = ?",
            (text, iso_utc(at), iso_utc(at), text, discord_user_id),
        )
        await self._db.commit()

    async def push_later(self, discord_user_id: int, error: str, next_attempt_at: datetime, *, count: bool) -> None:
        """Try again at `next_attempt_at`; `count` False for a rate limit, which is no failure of the push."""
        await self._run(
            "UPDATE role_connections SET attempts = attempts + ?, next_attempt_at = ?, last_error = ?"
            " WHERE discord_user_id = ?",
            (1 if count else 0, iso_utc(next_attempt_at), error[:300], discord_user_id),
        )
        await self._db.commit()

    async def revoke_role_connection(self, discord_user_id: int, reason: str, at: datetime) -> None:
        """Discord refused the user's token (revoked, expired beyond refresh): stop pushing for them, drop the pair."""
        await self.delete_tokens(discord_subject(discord_user_id))
        await self._run(
            "UPDATE role_connections SET state = ?, wanted = NULL, last_error = ?, updated_at = ?"
            " WHERE discord_user_id = ?",
            (REVOKED, reason[:300], iso_utc(at), discord_user_id),
        )
        await self._db.commit()


def _json(metadata: dict[str, str]) -> str:
    return json.dumps(metadata, sort_keys=True)


def _connection(row: Any) -> RoleConnection:
    return RoleConnection(
        discord_user_id=int(row["discord_user_id"]),
        state=row["state"],
        platform_username=row["platform_username"],
        pushed=json.loads(row["pushed"]) if row["pushed"] else None,
        pushed_at=_parse(row["pushed_at"]),
        wanted=json.loads(row["wanted"]) if row["wanted"] else None,
        attempts=int(row["attempts"]),
        next_attempt_at=_parse(row["next_attempt_at"]),
        last_error=row["last_error"],
    )
