"""The PostgreSQL backend of the database port (bot/store/database.py), over one asyncpg connection.

It answers the calls aiosqlite answers, the same way: calls wait their turn on one connection, the first write
opens a transaction that `commit()` ends, a cursor gives rows by position or column name, `rowcount` counts the
rows a write changed. One difference it hides: PostgreSQL refuses every statement of a transaction after one
failed, so a failed statement rolls the open transaction back before the error reaches the caller (nothing half
written stays, and the connection stays usable).

The DSN may hold a password: it is never logged nor put in an error (`redacted`).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Generator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]  # ships no type hints

from bot.store.database import numbered_placeholders, parameters_of
from bot.store.files import StoreUnusable
from bot.store.schema_postgres import MIGRATIONS_POSTGRES

log = logging.getLogger(__name__)

_WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)
_ROWS = re.compile(r"^\s*(SELECT|WITH|VALUES)\b|\bRETURNING\b", re.IGNORECASE)
#: Any number; the lock two processes take to migrate one at a time.
_MIGRATION_LOCK = 0x7061_7472_6F6E  # "patron"


#: Plan every statement for its parameters: asyncpg prepares each one, and PostgreSQL's generic plan for the
#: refresh's `IN (…500 ids…)` reads scanned the whole memberships table (20,000 unchanged members: 9.7 s, 0.2 s so).
_SESSION = {"plan_cache_mode": "force_custom_plan"}


def is_postgres_url(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def redacted(url: str) -> str:
    """The DSN without its password, for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "postgresql://…"
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class PostgresCursor:
    def __init__(self, rows: Sequence[Any], rowcount: int) -> None:
        self._rows = rows
        self._next = 0
        self.rowcount = rowcount
        self.lastrowid: int | None = None  # SQLite's; the store uses RETURNING instead

    async def fetchone(self) -> Any:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    async def fetchall(self) -> list[Any]:
        rest = list(self._rows[self._next :])
        self._next = len(self._rows)
        return rest

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        while (row := await self.fetchone()) is not None:
            yield row


class PostgresConnection:
    """aiosqlite's connection, as far as the store uses it, over asyncpg."""

    def __init__(self, connection: asyncpg.Connection, url: str = "") -> None:
        self._connection = connection
        #: To connect again after the server dropped the connection (a restart, a failover).
        self._url = url
        self._closing = False
        self._turn = asyncio.Lock()
        #: This connection opened a transaction that is not yet ended (or may have: a BEGIN or COMMIT cancelled
        #: halfway). Ending it again is harmless: PostgreSQL answers a stray COMMIT or ROLLBACK with a warning.
        self._open = False
        self._translated: dict[str, str] = {}
        #: The connection the advisory locks live on (`advisory_lock`), opened at the first one; and its turn.
        self._locks: asyncpg.Connection | None = None
        self._locks_turn = asyncio.Lock()
        #: Each held key and the lock connection it was taken on: a key taken on an earlier connection is gone.
        self._held: dict[int, tuple[asyncpg.Connection, int]] = {}
        #: Keys whose `pg_advisory_unlock` failed on a connection still open: unlocked before the next lock.
        self._unlock_later: list[int] = []

    def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> _Statement:
        return _Statement(self._cursor(sql, [parameters_of(parameters)]))

    def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> _Statement:
        return _Statement(self._cursor(sql, [parameters_of(row) for row in parameters]))

    def executescript(self, sql_script: str) -> _Statement:
        return _Statement(self._script(sql_script))

    async def execute_fetchall(self, sql: str, parameters: Iterable[Any] | None = None) -> list[Any]:
        return await (await self._cursor(sql, [parameters_of(parameters)])).fetchall()

    async def commit(self) -> None:
        async with self._turn:
            if self._in_transaction():
                try:
                    await self._connection.execute("COMMIT")
                except BaseException as error:
                    await self._after_failure(error)
                    raise
                self._open = False

    async def rollback(self) -> None:
        async with self._turn:
            await self._abandon()

    async def close(self) -> None:
        async with self._turn:
            self._closing = True
            await self._abandon()
            await self._connection.close()
        async with self._locks_turn:
            if self._locks is not None and not self._locks.is_closed():
                await self._locks.close()  # releases every advisory lock still held

    async def _cursor(self, sql: str, rows: list[Sequence[Any]]) -> PostgresCursor:
        query = self._translated.get(sql)
        if query is None:
            query = self._translated[sql] = numbered_placeholders(sql)
        if not rows:
            return PostgresCursor((), 0)
        async with self._turn:
            await self._reconnect_if_dropped()
            try:
                if not self._in_transaction() and _WRITE.match(sql):
                    self._open = True  # before BEGIN: a BEGIN cancelled halfway may have started it
                    await self._connection.execute("BEGIN")
                if len(rows) > 1:
                    return await self._pipelined(sql, query, rows)
                if _ROWS.search(sql):
                    found: list[Any] = []
                    for values in rows:
                        found += await self._connection.fetch(query, *values)
                    return PostgresCursor(found, len(found))
                changed = 0
                for values in rows:
                    changed += _changed(await self._connection.execute(query, *values))
                return PostgresCursor((), changed)
            except BaseException as error:
                await self._after_failure(error)
                raise

    async def _pipelined(self, sql: str, query: str, rows: list[Sequence[Any]]) -> PostgresCursor:
        """Many rows in one round trip (asyncpg's `fetchmany`); a write without RETURNING gets `RETURNING 1`, so
        the rows it hands back count what it changed, as SQLite's rowcount does (a conflict skipped: no row)."""
        if _ROWS.search(sql):
            found = await self._connection.fetchmany(query, rows)
            return PostgresCursor(found, len(found))
        counted = self._translated.get(f"counted:{sql}")
        if counted is None:
            counted = self._translated[f"counted:{sql}"] = f"{query.rstrip().rstrip(';')} RETURNING 1"
        return PostgresCursor((), len(await self._connection.fetchmany(counted, rows)))

    async def _reconnect_if_dropped(self) -> None:
        """The server dropped the connection: the call that found out failed (and its open transaction is gone, as
        after a crash); this one connects again (StoreUnusable, one line, while the server is still away)."""
        if self._connection.is_closed() and not self._closing and self._url:
            self._open = False
            self._connection = (await connect(self._url))._connection
            log.warning("reconnected to PostgreSQL after the server dropped the connection")

    async def _script(self, script: str) -> PostgresCursor:
        async with self._turn:
            await self._reconnect_if_dropped()
            try:
                await self._connection.execute(script)
            except BaseException as error:
                await self._after_failure(error)
                raise
        return PostgresCursor((), -1)

    async def _after_failure(self, error: BaseException) -> None:
        """A statement failed: roll its transaction back; when the connection itself failed (the server went away
        or cut it), drop it so the next call connects again."""
        if _connection_failed(error):
            self._open = False
            self._connection.terminate()
        else:
            await self._abandon()

    def _in_transaction(self) -> bool:
        return not self._connection.is_closed() and (self._open or self._connection.is_in_transaction())

    async def _abandon(self) -> None:
        """Roll back what this connection has open. Plain statements rather than asyncpg's Transaction objects:
        one whose BEGIN or COMMIT was cancelled (a task stopped at shutdown) refuses every later rollback. A
        ROLLBACK that doesn't finish (cancelled again while it waits) drops the connection instead, so the server
        ends the transaction and the next caller, on a new connection, never joins half of someone's write."""
        try:
            if self._in_transaction():
                await self._connection.execute("ROLLBACK")
        except BaseException:
            self._connection.terminate()
            raise
        finally:
            self._open = False

    @asynccontextmanager
    async def bulk(self) -> AsyncIterator[Any]:
        """The asyncpg connection inside one transaction of its own, for COPY (migrate-to-postgres); other calls
        wait until it commits, or rolls back on an error."""
        async with self._turn:
            await self._abandon()
            async with self._connection.transaction():
                yield self._connection

    @asynccontextmanager
    async def migration_lock(self) -> AsyncIterator[None]:
        """One process migrates at a time (a session advisory lock), the others wait and then find it done."""
        async with self._turn:
            await self._connection.execute(f"SELECT pg_advisory_lock({_MIGRATION_LOCK})")
        try:
            yield
        finally:
            async with self._turn:
                await self._connection.execute(f"SELECT pg_advisory_unlock({_MIGRATION_LOCK})")

    @asynccontextmanager
    async def advisory_lock(self, key: int) -> AsyncIterator[bool]:
        """`pg_try_advisory_lock(key)`: yield whether this process got it (never waits), unlock on leaving.

        Session-level, on a connection of its own: what it guards (a campaign's refresh) commits many transactions
        on the store's connection, and a transaction-level lock would end with the first; the store's connection
        may also be dropped and reconnected by a failed statement, which would end a session lock silently. A
        process that dies ends this connection, and PostgreSQL releases the lock with it (after a network cut,
        when the server notices the connection is gone). Failing to reach the server counts as not getting it.
        Every lock of the process lives on this one session, so nothing here ever ends it on purpose while locks
        are held; when it ends anyway they are all gone, which `advisory_held` tells their holders."""
        async with self._locks_turn:
            try:
                if self._locks is None or self._locks.is_closed():
                    self._locks = await asyncpg.connect(self._url, timeout=15, server_settings=_SESSION)
                    self._unlock_later.clear()  # the old session's locks went with it
                locks = self._locks
                await self._unlock_stale(locks)
                held = bool(await locks.fetchval("SELECT pg_try_advisory_lock($1)", key))
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("advisory lock %d: can't reach PostgreSQL (%s); not taken", key, type(error).__name__)
                held = False
            if held:
                connection, count = self._held.get(key, (locks, 0))
                self._held[key] = (locks, count + 1 if connection is locks else 1)
        try:
            yield held
        finally:
            if held:
                await self._advisory_unlock(locks, key)

    async def advisory_held(self, key: int, timeout: float = 10.0) -> bool:
        """Whether this process still holds `key`: taken on the lock connection that is open now, and that session
        still answers (a lost one, e.g. after a failover or `pg_terminate_backend`, released every lock on it). A
        session that doesn't answer within `timeout` counts as lost: after a network cut PostgreSQL frees its locks
        when it notices, so a holder must not count on them."""
        async with self._locks_turn:
            locks = self._locks
            if locks is None or locks.is_closed() or self._held.get(key, (None, 0))[0] is not locks:
                return False
            try:
                await locks.fetchval("SELECT 1", timeout=timeout)
            except (TimeoutError, OSError, asyncpg.InterfaceError) as error:
                log.warning("advisory lock %d: its connection doesn't answer (%s)", key, type(error).__name__)
                return False
            except asyncpg.PostgresError as error:
                if _connection_failed(error):
                    log.warning("advisory lock %d: its connection ended (%s)", key, error)
                    return False
            return True

    async def _advisory_unlock(self, locks: asyncpg.Connection, key: int) -> None:
        """Let go of one hold of `key`. A failed unlock never ends the session (that would free every other lock
        this process holds): the key is unlocked again before the next lock is taken, or goes with the session."""
        async with self._locks_turn:
            connection, count = self._held.get(key, (locks, 0))
            if connection is locks:
                if count > 1:
                    self._held[key] = (locks, count - 1)
                else:
                    self._held.pop(key, None)
            if locks.is_closed():
                log.warning("advisory lock %d: its connection ended while it was held (the lock went with it)", key)
                return
            try:
                await locks.fetchval("SELECT pg_advisory_unlock($1)", key)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("advisory lock %d: unlocking failed (%s); unlocked again before the next lock", key, error)
                if locks is self._locks:
                    self._unlock_later.append(key)

    async def _unlock_stale(self, locks: asyncpg.Connection) -> None:
        """The unlocks that failed earlier on this session, tried once more (each releases one hold)."""
        stale, self._unlock_later = self._unlock_later, []
        for index, key in enumerate(stale):
            try:
                await locks.fetchval("SELECT pg_advisory_unlock($1)", key)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                self._unlock_later.extend(stale[index:])
                raise


class _Statement:
    """Awaitable and `async with`-able, like aiosqlite's result."""

    def __init__(self, pending: Any) -> None:
        self._pending = pending
        self._cursor: PostgresCursor | None = None

    def __await__(self) -> Generator[Any, None, PostgresCursor]:
        return self._run().__await__()

    async def _run(self) -> PostgresCursor:
        if self._cursor is None:
            self._cursor = await self._pending
        return self._cursor

    async def __aenter__(self) -> PostgresCursor:
        return await self._run()

    async def __aexit__(self, *_: object) -> None:
        return None


def _connection_failed(error: BaseException) -> bool:
    """The connection, not the statement, failed: a network error, or the server ending the session (SQLSTATE
    class 08, connection exception, or 57P, an administrator's shutdown or a restart)."""
    if isinstance(error, (OSError, asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError)):
        return True
    return isinstance(error, asyncpg.PostgresError) and str(getattr(error, "sqlstate", "")).startswith(("08", "57P"))


def _changed(status: str) -> int:
    """'INSERT 0 3' / 'UPDATE 2' / 'DELETE 0' → the count; -1 for a status without one."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else -1


async def connect(url: str) -> PostgresConnection:
    """Connect (StoreUnusable in one line, without the password, when the server can't be used)."""
    try:
        connection = await asyncpg.connect(url, timeout=15, server_settings=_SESSION)
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as error:
        raise StoreUnusable(f"{redacted(url)}: can't connect ({type(error).__name__}: {_first_line(error)})") from None
    return PostgresConnection(connection, url)


def _first_line(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return text.replace("\n", " ")[:200]


async def schema_version(db: PostgresConnection) -> int:
    rows = await db.execute(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema()"
        " AND table_name = 'store_schema'"
    )
    if not (await rows.fetchone())[0]:
        return 0
    found = await (await db.execute("SELECT version FROM store_schema")).fetchone()
    return int(found[0]) if found else 0


async def migrate(db: PostgresConnection) -> None:
    """Run the PostgreSQL migrations not yet run, each in its own transaction with the version it reaches."""
    async with db.migration_lock():
        await db.executescript("CREATE TABLE IF NOT EXISTS store_schema (version INTEGER NOT NULL)")
        current = await schema_version(db)
        for version, script in enumerate(MIGRATIONS_POSTGRES[current:], start=current + 1):
            await db.executescript(
                f"BEGIN;\n{script}\nDELETE FROM store_schema;\n"
                f"INSERT INTO store_schema VALUES ({int(version)});\nCOMMIT;"
            )
            log.info("PostgreSQL schema now at version %d", version)
