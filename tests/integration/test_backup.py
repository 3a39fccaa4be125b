"""`python -m bot backup PATH`: a copy taken while the bot writes holds exactly the rows committed up to one moment
(every one before the backup began, no gap), the tokens in it stay encrypted and open with the key copied beside
it, a restore brings everything back, and an existing file is never overwritten unless told."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.domain.models import TokenPair
from bot.store import Store, patron_subject
from bot.store.backup import BackupRefused, backup_database

ROOT = Path(__file__).resolve().parents[2]
ACCESS, REFRESH = "patron-access-token-plaintext", "patron-refresh-token-plaintext"

def read(path: Path) -> bytes:
    return path.read_bytes()


def names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def linked_ids(path: Path) -> list[int]:
    with sqlite3.connect(path) as db:
        return sorted(row[0] for row in db.execute("SELECT discord_user_id FROM links"))

async def test_a_backup_taken_while_writes_happen_holds_every_row_committed_before_it(tmp_path):
    db = tmp_path / "bot.sqlite3"
    store = await Store.open(db)
    committed: list[int] = []
    stop = asyncio.Event()

    async def write() -> None:
        number = 0
        while not stop.is_set():
            await store.save_link(1000 + number, f"p-{number}", None, "oauth")  # one commit each
            committed.append(1000 + number)
            number += 1

    writer = asyncio.create_task(write())
    try:
        while len(committed) < 300:
            await asyncio.sleep(0.005)
        before = list(committed)
        result = await asyncio.to_thread(backup_database, db, tmp_path / "copy.sqlite3")
        while len(committed) < len(before) + 50:  # the bot went on writing around the backup
            await asyncio.sleep(0.005)
    finally:
        stop.set()
        await writer
    copied = linked_ids(result.target)
    assert set(before) <= set(copied), "every row committed before the backup is in it"
    assert copied == committed[: len(copied)], "one moment of the database: a prefix of the writes, no gap"
    assert len(copied) < len(committed), "writes went on after the moment the copy shows"
    assert stat.S_IMODE(result.target.stat().st_mode) == 0o600
    with sqlite3.connect(result.target) as copy:
        assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete", "one self-contained file"
    await store.close()

async def test_the_tokens_in_a_backup_stay_encrypted_and_a_restore_brings_everything_back(tmp_path):
    db = tmp_path / "data" / "bot.sqlite3"
    store = await Store.open(db)
    await store.save_link(42, "p-42", None, "oauth")
    expires = datetime(2027, 1, 1, tzinfo=UTC)
    await store.save_tokens(patron_subject("p-42"), TokenPair(ACCESS, REFRESH, expires))
    target = tmp_path / "backups" / "bot-backup.sqlite3"
    target.parent.mkdir()
    result = backup_database(db, target)
    assert result.key_copy == tmp_path / "backups" / "bot-backup.sqlite3.key"
    assert result.key_copy.read_bytes() == read(Path(f"{db}.key"))
    assert stat.S_IMODE(result.key_copy.stat().st_mode) == 0o600
    raw = target.read_bytes()
    assert ACCESS.encode() not in raw and REFRESH.encode() not in raw, "only sealed tokens in the copy"
    await store.save_link(43, "p-43", None, "oauth")  # after the backup: the restore goes back before it
    await store.close()

    # Restore: stop, copy the backup and its key back, start.
    for leftover in (db, Path(f"{db}-wal"), Path(f"{db}-shm"), Path(f"{db}.key")):
        leftover.unlink(missing_ok=True)
    shutil.copy(target, db)
    shutil.copy(result.key_copy, f"{db}.key")
    restored = await Store.open(db)
    try:
        assert (await restored.get_link_by_discord(42)) is not None
        assert (await restored.get_link_by_discord(43)) is None
        tokens = await restored.get_tokens(patron_subject("p-42"))
        assert tokens is not None and (tokens.access_token, tokens.refresh_token) == (ACCESS, REFRESH)
    finally:
        await restored.close()

async def test_an_existing_file_is_refused_unless_told(tmp_path):
    db = tmp_path / "bot.sqlite3"
    store = await Store.open(db)
    await store.save_link(42, "p-42", None, "oauth")
    target = tmp_path / "copy.sqlite3"
    target.write_bytes(b"an older backup")
    with pytest.raises(BackupRefused, match="exists; pass --force"):
        backup_database(db, target)
    assert target.read_bytes() == b"an older backup"
    assert f"{target.name}.key" not in names(tmp_path)
    assert [name for name in names(tmp_path) if name.startswith(".")] == [], "no partial file left"
    with pytest.raises(BackupRefused, match="is the database itself"):
        backup_database(db, db, overwrite=True)
    backup_database(db, target, overwrite=True)
    assert linked_ids(target) == [42]
    await store.close()

def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "DISCORD_TOKEN": "unused",
        "PATREON_CLIENT_ID": "client",
        "PATREON_CLIENT_SECRET": "secret",
        "PATREON_REDIRECT_URI": "https://bot.example.com/patreon/callback",
        "PATREON_CREATOR_ACCESS_TOKEN": "creator-access",
        "PATREON_CREATOR_REFRESH_TOKEN": "creator-refresh",
        "PATREON_WEBHOOK_SECRET": "webhook-secret",
        "DATABASE_PATH": str(tmp_path / "bot.sqlite3"),
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", "backup", *args], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=60,
    )

async def test_the_command_prints_what_it_did_and_refuses_a_second_time(tmp_path):
    store = await Store.open(tmp_path / "bot.sqlite3")
    await store.save_link(42, "p-42", None, "oauth")
    try:
        done = await asyncio.to_thread(run_cli, tmp_path, str(tmp_path / "nightly.sqlite3"))
        assert done.returncode == 0, done.stderr
        assert f"backed up {tmp_path / 'bot.sqlite3'} to {tmp_path / 'nightly.sqlite3'}" in done.stdout
        assert "its key file to" in done.stdout and "to restore: stop the bot" in done.stdout
        again = await asyncio.to_thread(run_cli, tmp_path, str(tmp_path / "nightly.sqlite3"))
        assert again.returncode == 2
        assert again.stderr.strip().endswith("exists; pass --force to replace it; nothing was written")
        forced = await asyncio.to_thread(run_cli, tmp_path, str(tmp_path / "nightly.sqlite3"), "--force")
        assert forced.returncode == 0, forced.stderr
        missing = await asyncio.to_thread(run_cli, tmp_path)
        assert missing.returncode == 2 and "name the backup file" in missing.stderr
    finally:
        await store.close()
    assert linked_ids(tmp_path / "nightly.sqlite3") == [42]


async def test_a_symlink_left_at_the_partial_name_is_not_followed(tmp_path):
    """Someone who can write in the backup folder plants a link where the partial copy will be made, pointing at a
    file of the bot's; the backup refuses rather than write through it."""
    db = tmp_path / "bot.sqlite3"
    store = await Store.open(db)
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    target = tmp_path / "copy.sqlite3"
    (tmp_path / f".copy.sqlite3.{os.getpid()}.partial").symlink_to(victim)
    try:
        with pytest.raises(BackupRefused, match="is in the way"):
            await asyncio.to_thread(backup_database, db, target)
    finally:
        await store.close()
    assert victim.read_text() == "keep me"
    assert "copy.sqlite3" not in names(tmp_path)
