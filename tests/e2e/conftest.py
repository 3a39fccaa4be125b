"""The `world` fixture: the real bot against the fakes, on a fresh SQLite file, or with E2E_POSTGRES_DSN set (a
PostgreSQL server, tests/e2e/backend.py) on a fresh database of its own there.

.ci/run sets it for a chosen subset (the link, unlink, webhook, refresh and connect tests), so the bot's whole path
runs on PostgreSQL too, not only the store contract; with E2E_POSTGRES_REPORT set, how many tests passed on
PostgreSQL is written to that file at the end (.ci/run prints it).
"""

import os
from pathlib import Path

import pytest

from fakes.world import FakeWorld
from tests.e2e.backend import postgres_server

_passed: set[str] = set()
_on_postgres: set[str] = set()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "world_env(settings): more .env settings for the `world` fixture's bot")


@pytest.fixture
async def world(tmp_path, request: pytest.FixtureRequest):
    made = FakeWorld(tmp_path / "bot.sqlite3", postgres_server=postgres_server())
    marker = request.node.get_closest_marker("world_env")
    made.extra_environment.update(marker.args[0] if marker else {})
    started = await made.start()
    try:
        yield started
    finally:
        await started.close()


@pytest.fixture(autouse=True)
def _note_postgres(request: pytest.FixtureRequest):
    """Marks the test as run on PostgreSQL when a world it started made a database there."""
    before = FakeWorld.postgres_databases_made
    yield
    if FakeWorld.postgres_databases_made > before:
        _on_postgres.add(request.node.nodeid)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and report.passed:
        _passed.add(report.nodeid)


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = os.environ.get("E2E_POSTGRES_REPORT")
    if target:
        Path(target).write_text(f"{len(_passed & _on_postgres)}\n")
