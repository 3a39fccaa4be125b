"""The database port the store's mixins talk to: the part of aiosqlite's connection they use, nothing more.

The SQLite backend is aiosqlite's own `Connection` (unchanged, so the embedded default keeps its behaviour); the
PostgreSQL backend (bot/store/postgres_db.py) implements the same calls over asyncpg. SQL is written once, with
`?` placeholders and constructs both engines accept (`ON CONFLICT`, `RETURNING`, `CAST(? AS TEXT) IS NULL`, no
`INSERT OR REPLACE`, no two-argument `MIN`/`MAX`); what can't be shared (migrations, the schema version, scrubbing
freed pages) is chosen by `SqlRunner._dialect`.

Transactions follow Python's sqlite3 module on both: the first INSERT/UPDATE/DELETE opens one, `commit()` ends it,
a read outside one sees only committed rows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

SQLITE = "sqlite"
POSTGRES = "postgres"


class Cursor(Protocol):
    """What a statement leaves: its rows (indexable by position and by column name) and what it changed."""

    @property
    def rowcount(self) -> int: ...

    @property
    def lastrowid(self) -> int | None: ...

    async def fetchone(self) -> Any: ...

    async def fetchall(self) -> Iterable[Any]: ...

    def __aiter__(self) -> AsyncIterator[Any]: ...


class Database(Protocol):
    """One connection; every call waits its turn (the backends serialise them)."""

    def execute(
        self, sql: str, parameters: Iterable[Any] | None = None
    ) -> AbstractAsyncContextManager[Any]: ...

    def executemany(
        self, sql: str, parameters: Iterable[Iterable[Any]]
    ) -> AbstractAsyncContextManager[Any]: ...

    def executescript(self, sql_script: str) -> AbstractAsyncContextManager[Any]: ...

    async def execute_fetchall(self, sql: str, parameters: Iterable[Any] | None = None) -> Iterable[Any]: ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...

    async def close(self) -> None: ...


def numbered_placeholders(sql: str) -> str:
    """Each `?` becomes PostgreSQL's numbered placeholder (a dollar sign and its position), outside quoted text and
    identifiers; written once, here."""
    out: list[str] = []
    number = 0
    quote: str | None = None
    for char in sql:
        if quote is not None:
            if char == quote:
                quote = None
        elif char in ("'", '"'):
            quote = char
        elif char == "?":
            number += 1
            out.append("$" + str(number))
            continue
        out.append(char)
    return "".join(out)


def parameters_of(values: Iterable[Any] | None) -> Sequence[Any]:
    return () if values is None else tuple(values)
