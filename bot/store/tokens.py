"""The `tokens` table, encrypted: the creator's pair and each OAuth-linked patron's, never stored as plain text.

A token that no key opens is never deleted or overwritten by the store: start-up stops with one line instead,
so the operator can bring back the right key and lose nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.domain.models import TokenPair
from bot.store.database import SQLITE
from bot.store.queues import SqlRunner, iso_utc
from bot.store.token_cipher import PREFIX, TokenCipher, is_sealed


def _labels(subject: str) -> tuple[str, str]:
    return (f"{subject}/access", f"{subject}/refresh")


class TokenStore(SqlRunner):
    """Mixed into `Store`; every method commits before it returns."""

    _cipher: TokenCipher

    async def save_tokens(self, subject: str, tokens: TokenPair) -> None:
        access, refresh = _labels(subject)
        await self._run(
            "INSERT INTO tokens VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (subject) DO UPDATE SET"
            " access_token = excluded.access_token, refresh_token = excluded.refresh_token,"
            " expires_at = excluded.expires_at, scope = excluded.scope, updated_at = excluded.updated_at",
            (
                subject,
                self._cipher.seal(access, tokens.access_token),
                self._cipher.seal(refresh, tokens.refresh_token),
                tokens.expires_at.isoformat(),
                " ".join(tokens.scope),
                iso_utc(datetime.now(UTC)),
            ),
        )
        await self._db.commit()

    async def get_tokens(self, subject: str) -> TokenPair | None:
        async with self._db.execute("SELECT * FROM tokens WHERE subject = ?", (subject,)) as cursor:
            row = await cursor.fetchone()
        return None if row is None else self._pair(row)

    async def tokens_expiring(self, subject_prefix: str, before: datetime) -> list[tuple[str, TokenPair]]:
        """Token pairs under `subject_prefix` whose access token expires before `before`, decrypted."""
        async with self._db.execute(
            "SELECT * FROM tokens WHERE subject LIKE ? ORDER BY subject", (subject_prefix.replace("%", "") + "%",)
        ) as cursor:
            rows = [row async for row in cursor]
        found = []
        for row in rows:
            expires_at = datetime.fromisoformat(row["expires_at"])
            if (expires_at if expires_at.tzinfo else expires_at.replace(tzinfo=UTC)) < before:
                found.append((row["subject"], self._pair(row)))
        return found

    def _pair(self, row: Any) -> TokenPair:
        access, refresh = _labels(row["subject"])
        expires_at = datetime.fromisoformat(row["expires_at"])
        return TokenPair(
            access_token=self._cipher.open(access, row["access_token"]),
            refresh_token=self._cipher.open(refresh, row["refresh_token"]),
            expires_at=expires_at if expires_at.tzinfo else expires_at.replace(tzinfo=UTC),
            scope=tuple(row["scope"].split()),
        )

    async def delete_tokens(self, subject: str) -> None:
        await self._run("DELETE FROM tokens WHERE subject = ?", (subject,))
        await self._db.commit()

    async def _check_token_key(self) -> None:
        """Every sealed row must open with the key we were given; TokenKeyError before anything is written."""
        async with self._db.execute(
            "SELECT subject, access_token, refresh_token FROM tokens WHERE access_token LIKE ? OR refresh_token LIKE ?",
            (f"{PREFIX}%", f"{PREFIX}%"),
        ) as cursor:
            rows = [tuple(row) async for row in cursor]
        for subject, access_value, refresh_value in rows:
            access, refresh = _labels(subject)
            for label, value in ((access, access_value), (refresh, refresh_value)):
                if is_sealed(value):
                    self._cipher.open(label, value)
        await self._check_other_secrets()

    async def _seal_plain_tokens(self) -> int:
        """Encrypt rows written before tokens were encrypted (one commit), then scrub the old text from the files.

        Returns how many rows were sealed. The plain text survives in freed pages and the WAL until SQLite
        rewrites them, hence the checkpoint and VACUUM (once: later starts find nothing to seal).
        """
        async with self._db.execute(
            "SELECT subject, access_token, refresh_token FROM tokens"
            " WHERE access_token NOT LIKE ? OR refresh_token NOT LIKE ?",
            (f"{PREFIX}%", f"{PREFIX}%"),
        ) as cursor:
            rows = [tuple(row) async for row in cursor]
        if not rows:
            return 0
        updates = []
        for subject, access_value, refresh_value in rows:
            access, refresh = _labels(subject)
            updates.append(
                (
                    access_value if is_sealed(access_value) else self._cipher.seal(access, access_value),
                    refresh_value if is_sealed(refresh_value) else self._cipher.seal(refresh, refresh_value),
                    subject,
                )
            )
        await self._run_many("UPDATE tokens SET access_token = ?, refresh_token = ? WHERE subject = ?", updates)
        await self._db.commit()
        await self._scrub_files()
        return len(rows)

    async def reencrypt_tokens(self, cipher: TokenCipher) -> int:
        """Re-seal every token under `cipher`'s first key in one commit; `cipher` must open them all."""
        async with self._db.execute("SELECT subject, access_token, refresh_token FROM tokens") as cursor:
            rows = [tuple(row) async for row in cursor]
        updates = []
        for subject, access_value, refresh_value in rows:
            access, refresh = _labels(subject)
            updates.append(
                (
                    cipher.seal(access, cipher.open(access, access_value)),
                    cipher.seal(refresh, cipher.open(refresh, refresh_value)),
                    subject,
                )
            )
        await self._run_many("UPDATE tokens SET access_token = ?, refresh_token = ? WHERE subject = ?", updates)
        await self._reseal_other_secrets(cipher)
        await self._db.commit()
        self._cipher = cipher
        await self._scrub_files()
        return len(rows)

    async def _check_other_secrets(self) -> None:
        """Other sealed values that must open with the key (the campaigns' webhook secrets)."""

    async def _reseal_other_secrets(self, cipher: TokenCipher) -> None:
        """Other sealed values to move to `cipher` in the same commit (the campaigns' webhook secrets)."""

    async def _scrub_files(self) -> None:
        """Move everything into the main file, rebuild it without freed pages, and empty the WAL (SQLite; a
        PostgreSQL store never held plain tokens: it starts sealed, and migrate-to-postgres copies sealed values)."""
        if self._dialect != SQLITE:
            return
        await self._run("PRAGMA wal_checkpoint(TRUNCATE)")
        await self._run("VACUUM")
        await self._run("PRAGMA wal_checkpoint(TRUNCATE)")
