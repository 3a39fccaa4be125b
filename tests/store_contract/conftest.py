"""The contract suite's store, once per backend: a fresh SQLite file, and a fresh schema on a PostgreSQL server.

The server is STORE_CONTRACT_POSTGRES_DSN when given (.ci/run starts one), else a throwaway cluster started here
when Debian's binaries exist. Without either the PostgreSQL cases skip on a developer's machine and fail in CI
(CI set), so CI can never pass without having run them. With STORE_CONTRACT_REPORT set, the number of PostgreSQL
cases that passed is written to that file at the end (.ci/run prints it).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from bot.store import Store
from bot.store.opening import open_postgres
from bot.store.token_cipher import TokenCipher, new_key
from tests.postgres_server import postgres_server

DSN_SETTING = "STORE_CONTRACT_POSTGRES_DSN"
_passed = {"postgres": 0}
#: Node ids of the cases that run on PostgreSQL: the `postgres` backend, or asking for the server itself.
_on_postgres: set[str] = set()


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    with postgres_server((DSN_SETTING,)) as dsn:
        yield dsn


@pytest.fixture
def cipher() -> TokenCipher:
    return TokenCipher([new_key().encode()], "the contract suite's key")


async def fresh_postgres(dsn: str) -> None:
    """An empty `public` schema: every case starts from nothing, as a new SQLite file does."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public")
    finally:
        await connection.close()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def open_store(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, cipher: TokenCipher
) -> AsyncIterator[object]:
    """A function opening (again) the same database: the first call starts it empty."""
    opened: list[Store] = []
    dsn = request.getfixturevalue("postgres_dsn") if backend == "postgres" else ""
    if dsn:
        await fresh_postgres(dsn)

    async def reopen(key: TokenCipher | None = None) -> Store:
        if dsn:
            store = await open_postgres(dsn, key or cipher)
        else:
            store = await Store.open(tmp_path / "contract.sqlite3", key or cipher)
        opened.append(store)
        return store

    yield reopen
    for store in opened:
        await store.close()


@pytest.fixture
async def store(open_store) -> Store:  # type: ignore[no-untyped-def]
    return await open_store()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        on_postgres = "[postgres" in item.nodeid or "postgres_dsn" in getattr(item, "fixturenames", ())
        if on_postgres and "store_contract/" in item.nodeid:
            _on_postgres.add(item.nodeid)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and report.passed and report.nodeid in _on_postgres:
        _passed["postgres"] += 1


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = os.environ.get("STORE_CONTRACT_REPORT")
    if target:
        Path(target).write_text(f"{_passed['postgres']}\n")
