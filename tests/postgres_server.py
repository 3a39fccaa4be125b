"""The PostgreSQL server a suite that needs one runs on: the first of `settings` that names one (.ci/run starts a
server and sets STORE_CONTRACT_POSTGRES_DSN), else a throwaway cluster from Debian's binaries (fakes/postgres.py),
stopped at the end. Without either the suite skips on a developer's machine, saying why, and fails in CI (CI set),
so CI never passes without having run it."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pytest

from fakes.postgres import start_cluster


@contextmanager
def postgres_server(settings: Sequence[str], needed_by: str = "") -> Iterator[str]:
    """`needed_by` ends the skip or failure sentence (e.g. " for the two-process tests")."""
    given = next((os.environ[name] for name in settings if os.environ.get(name)), None)
    if given:
        yield given
        return
    try:
        cluster = start_cluster()
    except RuntimeError as why:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI{needed_by}: {why}")
        pytest.skip(f"no PostgreSQL server{needed_by}: {why}")
    try:
        yield cluster.dsn
    finally:
        cluster.stop()
