"""Opening the database: which engine (DATABASE_URL), SQLite's connection settings, a write check, and the key
file when no key is configured."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiosqlite

from bot.store.database import POSTGRES
from bot.store.files import StoreUnusable, is_memory
from bot.store.token_cipher import PREFIX, TokenCipher, TokenKeyError, create_key_file, key_file_beside, new_key

if TYPE_CHECKING:
    from bot.store.facade import Store

PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=5000",
    # Deleted rows (an unlinked patron's tokens) are zeroed where that costs no extra I/O.
    "PRAGMA secure_delete=FAST",
)


async def execute(db: aiosqlite.Connection, sql: str, parameters: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    async with db.execute(sql, parameters) as cursor:
        return [tuple(row) for row in await cursor.fetchall()]


async def check_writable(db: aiosqlite.Connection) -> None:
    """A read-only file opens and reads fine, so write (and roll back) now rather than fail at the first webhook."""
    version = (await execute(db, "PRAGMA user_version"))[0][0]
    await execute(db, "BEGIN IMMEDIATE")
    try:
        await execute(db, f"PRAGMA user_version = {int(str(version))}")
    finally:
        await execute(db, "ROLLBACK")


async def key_file_cipher(db: aiosqlite.Connection, path: Path) -> TokenCipher:
    """The key file beside the database, made on first start; never made anew for tokens sealed by a lost one."""
    if is_memory(path):
        return TokenCipher([new_key().encode()], "the in-memory key")
    key_file = key_file_beside(path)
    if key_file.exists():
        return TokenCipher.from_key_file(key_file)
    has_tokens = await execute(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tokens'")
    if has_tokens and await execute(db, "SELECT 1 FROM tokens WHERE access_token LIKE ? LIMIT 1", (f"{PREFIX}%",)):
        raise TokenKeyError(
            f"key file {key_file} is missing but {path} holds encrypted tokens: restore it, or set TOKEN_ENCRYPTION_KEY"
        )
    try:
        return create_key_file(key_file)
    except OSError as error:
        raise StoreUnusable(f"{path}: can't create the key file {key_file} ({error.strerror})") from None


async def open_postgres(url: str, cipher: TokenCipher | None) -> Store:
    """Connect, migrate and check the key, like `Store.open` does for a file. PostgreSQL has no folder for a key
    file, so the key must come from TOKEN_ENCRYPTION_KEY (TokenKeyError otherwise, before anything is written)."""
    from bot.store.facade import Store
    from bot.store.postgres_db import connect, redacted

    if cipher is None:
        raise TokenKeyError(
            "DATABASE_URL is PostgreSQL, which has no place for a key file: set TOKEN_ENCRYPTION_KEY"
            " (python -m bot new-key makes one)"
        )
    db = await connect(url)
    try:
        store = Store(db, cipher, POSTGRES)
        await store._migrate()
        await store._check_token_key()
        await store._seal_plain_tokens()
    except BaseException as error:
        await db.close()
        if isinstance(error, asyncpg_errors()):
            raise StoreUnusable(f"{redacted(url)}: {type(error).__name__}: {str(error).splitlines()[0]}") from None
        raise
    return store


async def open_configured(database_url: str, database_path: Path, cipher: TokenCipher | None) -> Store:
    """The store the settings ask for: PostgreSQL when DATABASE_URL is `postgresql://…`, else the SQLite file at
    DATABASE_PATH (the embedded default). Any other DATABASE_URL is refused rather than silently ignored."""
    from bot.store.facade import Store
    from bot.store.postgres_db import is_postgres_url

    if database_url and is_postgres_url(database_url):
        return await open_postgres(database_url, cipher)
    if database_url:
        raise StoreUnusable("DATABASE_URL: only postgresql://… is understood (leave it empty for SQLite)")
    return await Store.open(database_path, cipher)


def postgres_db() -> Any:
    """The PostgreSQL backend's module, imported only by a store that uses it (asyncpg stays unloaded otherwise)."""
    import bot.store.postgres_db

    return bot.store.postgres_db


def asyncpg_errors() -> tuple[type[BaseException], ...]:
    import asyncpg  # type: ignore[import-untyped]

    return (asyncpg.PostgresError, asyncpg.InterfaceError)
