"""`python -m bot migrate-to-postgres`: copy the SQLite database into an empty PostgreSQL one, verified by counts.

The bot must be stopped (the SQLite file's lock is held throughout, so a running bot makes this refuse). Both
stores are opened the ordinary way first: SQLite migrated to its latest version, PostgreSQL to its own, and the
key (TOKEN_ENCRYPTION_KEY, which PostgreSQL needs) must open every sealed token and secret of the SQLite file, so
the copy, which moves the sealed values as they are, opens with it too. Every table is copied in one PostgreSQL
transaction (COPY, fast for 100,000 members): either everything arrives or nothing does. Then each table's row
count is compared on both sides; a difference rolls nothing back by itself, but is reported as a failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bot.store.facade import Store
from bot.store.files import StoreUnusable, exclusive_use
from bot.store.opening import open_postgres
from bot.store.postgres_db import PostgresConnection, redacted
from bot.store.token_cipher import TokenCipher

#: Tables with an identity column: after the copy their next id must follow the highest copied one.
_IDENTITIES = {"webhook_events": "id", "dm_outbox": "id"}


class ImportRefused(Exception):
    """The copy can't be made as asked; one line, nothing was written."""


@dataclass(frozen=True)
class ImportResult:
    counts: dict[str, int]

    def summary(self, url: str) -> str:
        rows = sum(self.counts.values())
        return f"copied {rows:,} rows in {len(self.counts)} tables into {redacted(url)}; the counts match"


async def migrate_to_postgres(database_path: Path, url: str, cipher: TokenCipher) -> ImportResult:
    """Raises ImportRefused, StoreUnusable or TokenKeyError (one line each)."""
    if not _has_database(database_path):  # before the lock, which would create an empty file
        raise StoreUnusable(f"{database_path}: no SQLite database there to copy")
    with exclusive_use(database_path):
        source = await Store.open(database_path, cipher)
        try:
            target = await open_postgres(url, cipher)
            try:
                return await _copy(source, target)
            finally:
                await target.close()
        finally:
            await source.close()


async def _copy(source: Store, target: Store) -> ImportResult:
    pg = target._db
    assert isinstance(pg, PostgresConnection)
    tables = await _tables(source)
    for table in tables:
        if await _count(target, table):
            raise ImportRefused(f"the PostgreSQL table {table} already holds rows; copy only into an empty database")
    counts: dict[str, int] = {}
    async with pg.bulk() as connection:
        for table in tables:
            async with source._db.execute(f"SELECT * FROM {table}") as cursor:
                columns = [column[0] for column in cursor.description]
                rows = [tuple(row) for row in await cursor.fetchall()]
            if rows:
                await connection.copy_records_to_table(table, records=rows, columns=columns)
            counts[table] = len(rows)
        for table, column in _IDENTITIES.items():
            await connection.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'),"
                f" COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)"
            )
    await pg.executescript("ANALYZE")  # the planner's statistics now, not at autovacuum's next visit
    for table, expected in counts.items():
        copied = await _count(target, table)
        if copied != expected:
            raise ImportRefused(f"{table}: {expected} rows in SQLite but {copied} in PostgreSQL")
    return ImportResult(counts)


def _has_database(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


async def _tables(source: Store) -> list[str]:
    async with source._db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'sqlite_sequence' ORDER BY name"
    ) as cursor:
        return [str(row[0]) for row in await cursor.fetchall()]


async def _count(store: Store, table: str) -> int:
    async with store._db.execute(f"SELECT COUNT(*) FROM {table}") as cursor:
        return int((await cursor.fetchone())[0])
