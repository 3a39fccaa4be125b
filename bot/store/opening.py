"""Opening the database: the connection's settings, a write check, and the key file when no key is configured."""

from __future__ import annotations

from pathlib import Path

import aiosqlite

from bot.store.files import StoreUnusable, is_memory
from bot.store.token_cipher import PREFIX, TokenCipher, TokenKeyError, create_key_file, key_file_beside, new_key

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
