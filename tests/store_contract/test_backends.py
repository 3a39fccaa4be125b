"""The two backends agree on the schema, and choosing one from DATABASE_URL is safe: a PostgreSQL store without a
token key, an unknown scheme or an unreachable server stop start-up with one line that never shows the password."""

from __future__ import annotations

import contextlib
import re
import socket
from pathlib import Path

import asyncpg
import pytest

from bot.store import Store
from bot.store.files import StoreUnusable
from bot.store.opening import open_configured, open_postgres
from bot.store.postgres_db import redacted
from bot.store.schema import MIGRATIONS
from bot.store.schema_postgres import MIGRATIONS_POSTGRES, SQLITE_EQUIVALENT
from bot.store.token_cipher import TokenKeyError
from tests.store_contract.conftest import fresh_postgres

#: DATABASE_PATH when DATABASE_URL names PostgreSQL: never touched.
NEVER_OPENED = Path("/nonexistent/never-opened.sqlite3")


async def _columns(store, backend: str) -> dict[str, list[str]]:
    if backend == "postgres":
        sql = (
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()"
            " AND table_name != 'store_schema' ORDER BY table_name, ordinal_position"
        )
    else:
        sql = (
            "SELECT m.name, p.name FROM sqlite_master AS m JOIN pragma_table_info(m.name) AS p"
            " WHERE m.type = 'table' AND m.name != 'sqlite_sequence' ORDER BY m.name, p.cid"
        )
    found: dict[str, list[str]] = {}
    async with store._db.execute(sql) as cursor:
        for table, column in await cursor.fetchall():
            found.setdefault(table, []).append(column)
    return found


async def test_both_schemas_have_the_same_tables_and_columns_in_the_same_order(tmp_path, postgres_dsn, cipher):
    """Positional INSERTs are shared, so the order matters too; a new SQLite migration needs its PostgreSQL twin."""
    assert len(MIGRATIONS) == SQLITE_EQUIVALENT, "SQLite has a migration schema_postgres.py doesn't mirror yet"
    sqlite_store = await Store.open(tmp_path / "parity.sqlite3", cipher)
    await fresh_postgres(postgres_dsn)
    postgres_store = await open_postgres(postgres_dsn, cipher)
    try:
        assert await _columns(postgres_store, "postgres") == await _columns(sqlite_store, "sqlite")
        assert await postgres_store.schema_version() == len(MIGRATIONS_POSTGRES)
    finally:
        await sqlite_store.close()
        await postgres_store.close()


async def test_reopening_a_postgres_store_keeps_its_rows_and_migrates_nothing_again(postgres_dsn, cipher):
    await fresh_postgres(postgres_dsn)
    first = await open_postgres(postgres_dsn, cipher)
    await first.save_link(1, "p1", None, "oauth")
    await first.close()
    second = await open_postgres(postgres_dsn, cipher)
    try:
        assert (await second.get_link_by_discord(1)).patreon_user_id == "p1"
        assert await second.schema_version() == len(MIGRATIONS_POSTGRES)
    finally:
        await second.close()


async def test_a_failed_statement_rolls_its_transaction_back_and_the_store_goes_on(postgres_dsn, cipher):
    await fresh_postgres(postgres_dsn)
    store = await open_postgres(postgres_dsn, cipher)
    try:
        await store._db.execute("INSERT INTO service_state VALUES ('half', '1')")
        with pytest.raises(asyncpg.PostgresError):
            await store._db.execute("INSERT INTO campaigns VALUES ('c', 's', NULL, NULL, 'stolen', 'now', 'active')")
        await store._db.commit()
        assert await store.get_fact("half") is None, "the write before the failure went with it"
        await store.set_fact("after", 2)
        assert await store.get_fact("after") == 2
    finally:
        await store.close()


async def test_a_write_cancelled_at_any_step_leaves_the_store_usable_and_closable(postgres_dsn, cipher):
    """Shutdown cancels tasks mid-statement: a write stopped during its BEGIN, its statement or its COMMIT must
    neither leave half a transaction for the next caller nor make `close()` fail (CI saw 'cannot rollback; the
    transaction is in error state' when a refresh was cancelled while its transaction was starting)."""
    import asyncio

    await fresh_postgres(postgres_dsn)
    store = await open_postgres(postgres_dsn, cipher)
    stopped_midway = 0
    try:
        for steps in range(40):  # each run lets the write go one more scheduler step before cancelling it
            write = asyncio.ensure_future(store.set_fact(f"cancelled-{steps}", steps))
            for _ in range(steps):
                await asyncio.sleep(0)
            write.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await write
            stopped_midway += write.cancelled()
            await store.set_fact("after", steps)  # the next caller's write is whole and its own
            assert await store.get_fact("after") == steps
            kept = await store.get_fact(f"cancelled-{steps}")
            assert kept in (None, steps)
        assert stopped_midway >= 3, "the sweep never reached the statements it is meant to cancel"
    finally:
        await store.close()
    reopened = await open_postgres(postgres_dsn, cipher)
    try:
        assert await reopened.get_fact("after") == 39
    finally:
        await reopened.close()


async def test_a_write_cancelled_twice_never_leaves_half_of_it_to_the_next_caller(postgres_dsn, cipher, caplog):
    """A second cancel can land while the first one's clean-up ROLLBACK waits (a timeout around a call, a task group
    tearing down): the next, unrelated caller must neither commit the cancelled write's first half with its own,
    nor have its own write refused by an aborted transaction left open."""
    import asyncio

    await fresh_postgres(postgres_dsn)
    store = await open_postgres(postgres_dsn, cipher)

    async def two_rows(n: int) -> None:
        await store._db.execute("INSERT INTO service_state VALUES (?, '1')", (f"first {n}",))
        await store._db.execute("INSERT INTO service_state VALUES (?, '2')", (f"second {n}",))
        await store._db.commit()

    try:
        for first in range(24):
            for second in (0, 1, 2, 4):
                n = first * 10 + second
                write = asyncio.ensure_future(two_rows(n))
                for _ in range(first):
                    await asyncio.sleep(0)
                write.cancel()
                for _ in range(second):
                    await asyncio.sleep(0)
                write.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await write
                await store.set_fact(f"innocent {n}", n)  # an aborted transaction left open would refuse it
                assert await store.get_fact(f"innocent {n}") == n
                halves = (await store.get_fact(f"first {n}"), await store.get_fact(f"second {n}"))
                assert halves in ((None, None), (1, 2)), f"cancelled after {first}+{second} steps: {halves}"
        dropped = [r for r in caplog.records if "reconnected to PostgreSQL" in r.getMessage()]
        assert dropped, "no second cancel landed in a clean-up ROLLBACK: the sweep missed what it is for"
    finally:
        await store.close()


async def test_postgres_without_a_token_key_is_refused_before_connecting():
    with pytest.raises(TokenKeyError, match="TOKEN_ENCRYPTION_KEY"):
        await open_postgres("postgresql://bot:hunter2@127.0.0.1:1/bot", None)


async def test_an_unknown_database_url_is_refused_not_ignored(tmp_path, cipher):
    with pytest.raises(StoreUnusable, match="only postgresql://"):
        await open_configured("mysql://bot@db/bot", tmp_path / "unused.sqlite3", cipher)
    assert not (tmp_path / "unused.sqlite3").exists()


async def test_an_unreachable_server_is_one_line_without_the_password(cipher):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(StoreUnusable) as refused:
        await open_configured(f"postgresql://bot:hunter2@127.0.0.1:{port}/bot", NEVER_OPENED, cipher)
    assert "hunter2" not in str(refused.value) and "***" in str(refused.value) and "\n" not in str(refused.value)
    assert redacted("postgresql://bot@db/bot") == "postgresql://bot@db/bot"


CONFIG = {
    "DISCORD_TOKEN": "discord-token",
    "PATREON_CLIENT_ID": "client-id",
    "PATREON_CLIENT_SECRET": "client-secret",
    "PATREON_REDIRECT_URI": "https://bot.example.com/patreon/callback",
}


def test_database_url_selects_postgres_only_with_a_token_key_and_hides_its_password():
    from bot.config import ConfigError, load_config
    from bot.store.token_cipher import new_key

    url = "postgresql://bot:hunter2@db:5432/bot"
    assert load_config(CONFIG, env_file=None).database_url == ""
    config = load_config({**CONFIG, "DATABASE_URL": url, "TOKEN_ENCRYPTION_KEY": new_key()}, env_file=None)
    assert config.database_url == url and "hunter2" not in repr(config)
    for env, named in (
        ({"DATABASE_URL": url}, "TOKEN_ENCRYPTION_KEY"),
        ({"DATABASE_URL": "sqlite:///x.db", "TOKEN_ENCRYPTION_KEY": new_key()}, "postgresql://"),
    ):
        with pytest.raises(ConfigError, match=named) as refused:
            load_config({**CONFIG, **env}, env_file=None)
        assert "hunter2" not in str(refused.value)


async def test_a_dropped_connection_fails_at_most_one_call_and_the_store_reconnects(postgres_dsn, cipher):
    """A PostgreSQL restart or failover must not leave the bot with a dead store until someone restarts it."""
    await fresh_postgres(postgres_dsn)
    store = await open_postgres(postgres_dsn, cipher)
    try:
        await store.set_fact("before", 1)
        admin = await asyncpg.connect(postgres_dsn)
        try:
            dropped = await admin.fetchval(
                "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE pid != pg_backend_pid() AND datname = current_database()) AS gone"
            )
        finally:
            await admin.close()
        assert dropped >= 1
        # The call that finds the connection gone may fail (if asyncpg hadn't noticed yet); the next one works.
        lost = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError, ConnectionError)
        with contextlib.suppress(*lost):
            await store.get_fact("before")
        assert await store.get_fact("before") == 1
        await store.set_fact("after", 2)
        assert await store.get_fact("after") == 2
    finally:
        await store.close()


#: Statements SQLite takes and PostgreSQL refuses; the store writes the portable form (bot/store/database.py).
SQLITE_ONLY = re.compile(
    r"\b(INSERT|UPDATE) OR (REPLACE|IGNORE)\b|[(\s]\? IS NULL|\bjson_\w+\(|\bstrftime\(|\bAUTOINCREMENT\b"
)
#: Where SQLite's own statements belong: its migrations, its connection set-up, its backup.
SQLITE_FILES = {"schema.py", "opening.py", "backup.py"}


def test_the_stores_shared_statements_use_no_sqlite_only_construct():
    """A new statement in a mixin runs on both engines; the contract cases catch behaviour, this catches a
    statement none of them happens to reach."""
    import ast

    found = []
    for path in sorted((Path(__file__).parents[2] / "bot" / "store").glob("*.py")):
        if path.name in SQLITE_FILES:
            continue
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body and isinstance(node.body[0], ast.Expr)
        }
        for node in ast.walk(tree):
            text = node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else ""
            if text and id(node) not in docstrings and SQLITE_ONLY.search(text):
                found.append(f"{path.name}:{node.lineno}: {text.strip()[:80]}")
    assert found == []
