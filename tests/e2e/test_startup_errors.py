"""A start-up state the bot can't work with stops `python -m bot` within seconds with one line naming the setting:
never a traceback, never a process that hangs with its web server and Discord down (a supervisor would wait on it
forever instead of restarting it).

Read-only files are made with `chattr +i` when the tests run as root, because root writes through file modes;
where chattr isn't available to root those two cases are skipped (see `read_only`).
"""

import asyncio
import contextlib
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.domain.models import TokenPair
from bot.store import CREATOR_SUBJECT, Store
from bot.store.files import exclusive_use
from bot.store.token_cipher import key_file_beside, new_key
from fakes.world import free_port
from tests.e2e.test_entrypoint import clean_env

#: Comfortably above a cold start of the interpreter and discord.py on a busy machine; the old code never exited.
EXIT_WITHIN_SECONDS = 30


def settings(database: Path, port: int | None = None, **extra: str) -> dict[str, str]:
    """Discord and Patreon point at a closed loopback port: none of these cases may get as far as calling them."""
    return clean_env(
        DISCORD_TOKEN="fake-bot-token",
        PATREON_CLIENT_ID="c",
        PATREON_CLIENT_SECRET="s",
        PATREON_REDIRECT_URI="http://127.0.0.1:9/patreon/callback",
        PATREON_CREATOR_ACCESS_TOKEN="creator-access",
        PATREON_CREATOR_REFRESH_TOKEN="creator-refresh",
        PATREON_WEBHOOK_SECRET="w",
        DATABASE_PATH=str(database),
        WEB_HOST="127.0.0.1",
        PORT=str(port or free_port()),
        PATREON_BASE_URL="http://127.0.0.1:9",
        DISCORD_BASE_URL="http://127.0.0.1:9",
        **extra,
    )


async def run_bot_expecting_refusal(env: dict[str, str], cwd: Path, *args: str) -> str:
    """Run `python -m bot`, require a non-zero exit in time, and return its single stderr line."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), EXIT_WITHIN_SECONDS)
    except TimeoutError:
        process.kill()
        _, stderr = await process.communicate()
        pytest.fail(f"python -m bot still running after {EXIT_WITHIN_SECONDS} s; stderr: {stderr.decode()[-1500:]}")
    text = stderr.decode()
    assert process.returncode == 2, text
    assert "Traceback" not in text + stdout.decode()
    lines = text.splitlines()
    assert len(lines) == 1, text
    return lines[0]


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make a file or folder read-only for this process's user, root included (root ignores file modes, not the
    immutable attribute); skip when that can't be done honestly here."""
    if os.geteuid() != 0:
        original = path.stat().st_mode
        path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            path.chmod(original)
        return
    made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"root can't make {path} read-only here (chattr: {made.stderr.decode().strip()})")
    try:
        assert not os.access(path, os.W_OK), "the immutable attribute holds for root"
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def sqlite_database(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(path)) as raw:
        raw.execute("PRAGMA journal_mode=WAL")
        raw.execute("CREATE TABLE t (x)")


async def test_a_file_that_is_not_sqlite(tmp_path):
    database = tmp_path / "bot.sqlite3"
    database.write_text("these are my notes, not a database\n" * 50)
    line = await run_bot_expecting_refusal(settings(database), tmp_path)
    assert line == f"error: DATABASE_PATH {database}: is not an SQLite database"
    assert database.read_text().startswith("these are my notes"), "a foreign file is left as it was"


async def test_a_database_path_that_is_a_folder(tmp_path):
    database = tmp_path / "bot.sqlite3"
    database.mkdir()
    line = await run_bot_expecting_refusal(settings(database), tmp_path)
    assert line == f"error: DATABASE_PATH {database}: is a folder, not a database file"


async def test_a_database_whose_parent_is_a_file(tmp_path):
    (tmp_path / "data").write_text("")
    database = tmp_path / "data" / "bot.sqlite3"
    line = await run_bot_expecting_refusal(settings(database), tmp_path)
    assert line == f"error: DATABASE_PATH {database}: {tmp_path / 'data'} is a file, not a folder"


async def test_a_read_only_database_file(tmp_path):
    database = tmp_path / "bot.sqlite3"
    sqlite_database(database)
    with read_only(database):
        line = await run_bot_expecting_refusal(settings(database), tmp_path)
    assert line == f"error: DATABASE_PATH {database}: the file is read-only"


@pytest.mark.parametrize("existing", [False, True], ids=["new-database", "existing-database"])
async def test_a_database_in_a_read_only_folder(tmp_path, existing):
    folder = tmp_path / "data"
    folder.mkdir()
    database = folder / "bot.sqlite3"
    if existing:
        sqlite_database(database)
    with read_only(folder):
        line = await run_bot_expecting_refusal(settings(database), tmp_path)
    assert line.startswith(f"error: DATABASE_PATH {database}: its folder {folder} is read-only"), line


async def test_a_port_already_in_use(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        line = await run_bot_expecting_refusal(settings(tmp_path / "bot.sqlite3", port), tmp_path)
    assert line == f"error: PORT {port} is already in use (WEB_HOST 127.0.0.1)"


async def test_a_second_bot_on_the_same_database(tmp_path):
    """Two processes on one database would both refresh the single-use creator token; the second one stops."""
    database = tmp_path / "bot.sqlite3"
    with exclusive_use(database):
        line = await run_bot_expecting_refusal(settings(database), tmp_path)
    assert line == f"error: DATABASE_PATH {database}: another `python -m bot` is using this database (stop it first)"


async def seal_tokens_with_the_key_file(database: Path) -> list[tuple]:
    store = await Store.open(database)
    try:
        await store.save_tokens(CREATOR_SUBJECT, TokenPair("stored-access", "stored-refresh", datetime.now(UTC)))
    finally:
        await store.close()
    return raw_token_rows(database)


def raw_token_rows(database: Path) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(database)) as raw:
        return raw.execute("SELECT * FROM tokens").fetchall()


async def test_a_wrong_token_encryption_key_exits_and_leaves_the_tokens_alone(tmp_path):
    """The crash loop to avoid: a bot that can't read its tokens must not forget them, however often it restarts."""
    database = tmp_path / "bot.sqlite3"
    rows = await seal_tokens_with_the_key_file(database)
    key_file = key_file_beside(database).read_bytes()
    for _ in range(2):  # a supervisor restarting it changes nothing either
        line = await run_bot_expecting_refusal(settings(database, TOKEN_ENCRYPTION_KEY=new_key()), tmp_path)
        assert line == (
            "error: TOKEN_ENCRYPTION_KEY does not decrypt the stored tokens (wrong key?);"
            " the stored tokens were left as they are"
        )
        assert raw_token_rows(database) == rows and key_file_beside(database).read_bytes() == key_file


async def test_a_malformed_token_encryption_key_is_a_config_error(tmp_path):
    line = await run_bot_expecting_refusal(settings(tmp_path / "bot.sqlite3", TOKEN_ENCRYPTION_KEY="hunter2"), tmp_path)
    assert line.startswith("config error: TOKEN_ENCRYPTION_KEY key 1 is not a Fernet key") and "hunter2" not in line
    assert not (tmp_path / "bot.sqlite3").exists()


async def test_rotate_key_command_re_encrypts_under_a_new_key_file(tmp_path):
    database = tmp_path / "bot.sqlite3"
    rows = await seal_tokens_with_the_key_file(database)
    old_key = key_file_beside(database).read_text().strip()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "rotate-key", cwd=tmp_path, env=settings(database),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), EXIT_WITHIN_SECONDS)
    assert process.returncode == 0, stderr.decode()
    assert stdout.decode().startswith("re-encrypted 1 token pair(s) under a new key in ")
    assert raw_token_rows(database) != rows
    assert key_file_beside(database).read_text().strip() != old_key
    line = await run_bot_expecting_refusal(settings(database, TOKEN_ENCRYPTION_KEY=old_key), tmp_path)
    assert "TOKEN_ENCRYPTION_KEY does not decrypt the stored tokens" in line
    store = await Store.open(database)
    try:
        assert (await store.get_tokens(CREATOR_SUBJECT)).access_token == "stored-access"
    finally:
        await store.close()
