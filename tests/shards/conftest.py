"""The two-process tests need a PostgreSQL server (several bot processes share one database, which an SQLite file
can't be). The server is the one .ci/run starts (STORE_CONTRACT_POSTGRES_DSN, or E2E_POSTGRES_DSN when given), else
a throwaway cluster from Debian's binaries (fakes/postgres.py). Without either the tests skip on a developer's
machine, saying why, and fail in CI (CI set), so CI never passes without having run them. Each world gets a
fresh database of its own on the server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.postgres_server import postgres_server as running_postgres

SERVER_SETTINGS = ("STORE_CONTRACT_POSTGRES_DSN", "E2E_POSTGRES_DSN")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    with running_postgres(SERVER_SETTINGS, " for the two-process tests") as dsn:
        yield dsn
