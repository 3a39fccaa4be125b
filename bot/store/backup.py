"""`python -m bot backup PATH`: a consistent copy of the database while the bot runs, with its key file.

SQLite's online backup API copies the pages of one read transaction, so the copy is the database as of one
moment: every transaction committed before it, none half-written, while the bot goes on writing (WAL lets a
reader and the writer work side by side; the backup never takes the bot's `.lock`). The copy is written to a
temporary file beside PATH, made 0600, checked (`PRAGMA quick_check`), switched out of WAL so it is one
self-contained file, and only then linked into place, so PATH is either absent or a whole backup. An existing PATH
is refused unless `overwrite` is given.

The tokens in it are as encrypted as in the database: without the key the copy holds no usable token. So the key
file (`<DATABASE_PATH>.key`, when `TOKEN_ENCRYPTION_KEY` is unset) is copied to `PATH.key` beside it, 0600; with
`TOKEN_ENCRYPTION_KEY` the key lives in the environment and must be kept (apart) by whoever keeps the .env.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from bot.store.files import StoreUnusable, explain, is_memory
from bot.store.token_cipher import key_file_beside


class BackupRefused(Exception):
    """The backup can't be made as asked; the message is one line naming why."""


@dataclass(frozen=True)
class BackupResult:
    source: Path
    target: Path
    size_bytes: int
    schema_version: int
    #: The key file copied beside the backup, or None when the key is in TOKEN_ENCRYPTION_KEY (or there is none).
    key_copy: Path | None

    def summary(self) -> str:
        line = (
            f"backed up {self.source} to {self.target} ({self.size_bytes:,} bytes, schema version "
            f"{self.schema_version})"
        )
        if self.key_copy is not None:
            return f"{line}; its key file to {self.key_copy} (keep both together: the tokens need the key)"
        return f"{line}; the token key is in TOKEN_ENCRYPTION_KEY: keep it with your .env, the copy needs it"


def backup_database(
    source: Path, target: Path, *, overwrite: bool = False, key_in_setting: bool = False
) -> BackupResult:
    """Copy `source` to `target` consistently (see the module docstring); BackupRefused or StoreUnusable on failure."""
    if is_memory(source) or not source.is_file():
        raise StoreUnusable(f"{source}: no database file there to back up")
    target = target.absolute()
    if target.resolve() == source.resolve():
        raise BackupRefused(f"{target} is the database itself")
    if target.is_dir():
        raise BackupRefused(f"{target} is a folder; name the backup file")
    if not target.parent.is_dir():
        raise BackupRefused(f"{target.parent} does not exist")
    key_file = key_file_beside(source)
    key_copy = None if key_in_setting or not key_file.is_file() else key_file_beside(target)
    for path in (target, key_copy):
        if path is not None and path.exists() and not overwrite:
            raise BackupRefused(f"{path} exists; pass --force to replace it")
    temporary = target.with_name(f".{target.name}.{os.getpid()}.partial")
    os.close(_create_private(temporary))
    try:
        version = _copy(source, temporary)
        if key_copy is not None:
            _copy_key(key_file, key_copy)
        _move_into_place(temporary, target, overwrite)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    return BackupResult(source, target, target.stat().st_size, version, key_copy)


def _copy(source: Path, temporary: Path) -> int:
    try:
        origin = sqlite3.connect(source, timeout=30)  # reads only; busy_timeout covers a checkpoint in progress
    except sqlite3.Error as error:
        raise StoreUnusable(explain(error, source)) from None
    try:
        copy = sqlite3.connect(temporary)
        try:
            origin.backup(copy)  # all pages in one step: one read transaction, one moment of the database
            copy.execute("PRAGMA journal_mode=DELETE")
            if copy.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise BackupRefused(f"the copy of {source} failed SQLite's check; nothing was written")
            version = int(copy.execute("PRAGMA user_version").fetchone()[0])
        finally:
            copy.close()
    except sqlite3.Error as error:
        raise StoreUnusable(explain(error, source)) from None
    finally:
        origin.close()
    _fsync(temporary)
    return version


def _copy_key(key_file: Path, key_copy: Path) -> None:
    temporary = key_copy.with_name(f".{key_copy.name}.{os.getpid()}.partial")
    descriptor = _create_private(temporary)
    try:
        try:
            with open(key_file, "rb") as original:
                os.write(descriptor, original.read())
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, key_copy)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def _create_private(path: Path) -> int:
    """A new file, 0600; never one that is already there, nor through a symlink someone left at the name."""
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise BackupRefused(f"{path} is in the way (left by an earlier attempt?); remove it") from None


def _move_into_place(temporary: Path, target: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(temporary, target)
    else:
        try:
            os.link(temporary, target)  # fails if target appeared meanwhile: never clobbers
        except FileExistsError:
            raise BackupRefused(f"{target} exists; pass --force to replace it") from None
    _fsync(target.parent)


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def restore_hint(target: Path) -> str:
    """How to put a backup back (the README says the same)."""
    return (
        f"to restore: stop the bot, copy {target} to DATABASE_PATH (and {key_file_beside(target)} to "
        "DATABASE_PATH.key), delete any DATABASE_PATH-wal and -shm left beside it, start the bot"
    )

