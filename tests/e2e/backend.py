"""Which database the e2e worlds keep the bot's data in: a fresh SQLite file each, or, with E2E_POSTGRES_DSN set (a
PostgreSQL server, e.g. `postgresql://postgres@127.0.0.1:5432/postgres`), a fresh database each on that server."""

from __future__ import annotations

import os

POSTGRES_SETTING = "E2E_POSTGRES_DSN"


def postgres_server() -> str | None:
    """For `FakeWorld(..., postgres_server=...)`: the `world` fixture and helpers that build their own world."""
    return os.environ.get(POSTGRES_SETTING) or None
