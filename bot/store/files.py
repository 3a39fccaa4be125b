"""The database's files on disk: made private before SQLite opens them, and unusable paths named in one line.

The database holds every patron's link and (encrypted) tokens, so it and its -wal/-shm are 0600 and a folder the
bot creates is 0700. A path that can't work (a folder, a file where a folder should be, a read-only or foreign
file) must stop start-up with a sentence, not a traceback and a process that hangs on aiosqlite's thread.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

SIDE_FILES = ("-wal", "-shm")


class StoreUnusable(Exception):
    """The database can't be opened or written; the message is one line starting with the path."""


def is_memory(path: Path) -> bool:
    return str(path) == ":memory:"


def prepare_database_file(path: Path) -> None:
    """Check the path, and create missing folders 0700 and a missing file 0600 (SQLite gives -wal/-shm the same)."""
    if is_memory(path):
        return
    for ancestor in reversed(path.parents):
        if ancestor.exists() and not ancestor.is_dir():
            raise StoreUnusable(f"{path}: {ancestor} is a file, not a folder")
    if path.is_dir():
        raise StoreUnusable(f"{path}: is a folder, not a database file")
    for folder in reversed(path.parents):
        if not folder.exists():
            try:
                folder.mkdir(mode=0o700)
            except FileExistsError:
                pass
            except OSError as error:
                raise StoreUnusable(f"{path}: can't create the folder {folder} ({error.strerror})") from None
    if not path.exists():
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass
        except OSError as error:
            raise StoreUnusable(_cant_create(path, path.name, error)) from None


@contextlib.contextmanager
def exclusive_use(path: Path) -> Iterator[None]:
    """One process at a time runs the bot or rotates the key on this database (an advisory lock on `<path>.lock`):
    a bot still running with the old key in memory would seal new tokens with a key that rotation then drops."""
    prepare_database_file(path)
    if is_memory(path):
        yield
        return
    lock = Path(f"{path}.lock")
    try:
        descriptor = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as error:
        raise StoreUnusable(_cant_create(path, lock.name, error)) from None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreUnusable(f"{path}: another `python -m bot` is using this database (stop it first)") from None
        yield
    finally:
        os.close(descriptor)


def _cant_create(path: Path, name: str, error: OSError) -> str:
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{path}: its folder {path.parent} is read-only (can't create {name} there: {error.strerror})"
    return f"{path}: can't create {name} in {path.parent} ({error.strerror})"


def keep_private(path: Path) -> None:
    """Databases made by older versions were 0644: take group and others' access away, once SQLite has shown the
    file is its own (a foreign file at the path is left as it was)."""
    if not is_memory(path):
        for file in (path, *(Path(f"{path}{suffix}") for suffix in SIDE_FILES)):
            _keep_private(file)


def _keep_private(file: Path) -> None:
    try:
        mode = stat.S_IMODE(file.stat().st_mode)
    except FileNotFoundError:
        return
    if mode & 0o077:
        try:
            os.chmod(file, mode & 0o700)
        except OSError:
            return  # a read-only file: the write check right after names the real problem
        log.info("made %s private (mode %o → %o)", file, mode, mode & 0o700)


def explain(error: sqlite3.Error | OSError, path: Path) -> str:
    """One line for an error SQLite gave while opening or first writing the database."""
    name = getattr(error, "sqlite_errorname", "")
    folder = path.parent
    if name == "SQLITE_NOTADB":
        return f"{path}: is not an SQLite database"
    if name == "SQLITE_CORRUPT":
        return f"{path}: the database file is corrupt ({error})"
    if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM")) or isinstance(error, PermissionError):
        if path.exists() and not os.access(path, os.R_OK):
            return f"{path}: the file can't be read (permission denied)"
        if path.exists() and not os.access(path, os.W_OK):
            return f"{path}: the file is read-only"
        if not os.access(folder, os.W_OK):
            return f"{path}: its folder {folder} is read-only (SQLite must create {path.name}-wal and -shm there)"
        return f"{path}: can't be written ({error})"
    if name == "SQLITE_BUSY":
        return f"{path}: is locked by another process ({error})"
    if name == "SQLITE_FULL":
        return f"{path}: the disk is full"
    return f"{path}: {error}"
