"""The e2e world keeps the bot's data where it was told: the SQLite file, or (E2E_POSTGRES_DSN, tests/e2e/backend.py)
a database of its own on that PostgreSQL server, which the bot really writes to and which is gone after the world."""

from __future__ import annotations

import asyncpg

from fakes.world import SEED, FakeWorld
from tests.e2e.backend import postgres_server


async def test_a_link_lands_in_the_database_the_world_was_given(world):
    status, _ = await world.link(SEED.bob)
    assert status == 200
    server = postgres_server()
    if server is None:
        assert world.config.database_url == "" and world.db_path.exists()
        return
    assert world.config.database_url == world.database_url != server
    assert not world.db_path.exists(), "nothing was written to the SQLite file"
    connection = await asyncpg.connect(world.database_url)
    try:
        rows = await connection.fetch("SELECT discord_user_id, patreon_user_id FROM links")
    finally:
        await connection.close()
    assert [(row[0], row[1]) for row in rows] == [(SEED.bob, "p-bob")]


async def test_each_world_starts_empty_and_its_database_is_dropped_at_close(tmp_path):
    """One world at a time (the bot's Discord URL is per process): the next starts with nothing of the last."""
    server = postgres_server()
    first = await FakeWorld(tmp_path / "a.sqlite3", postgres_server=server).start()
    try:
        await first.link(SEED.alice)
        assert await first.store.get_link_by_discord(SEED.alice) is not None
        used = first.database_url
    finally:
        await first.close()
    second = await FakeWorld(tmp_path / "b.sqlite3", postgres_server=server).start()
    try:
        assert await second.store.get_link_by_discord(SEED.alice) is None
        assert second.database_url != used or server is None
    finally:
        await second.close()
    if server is None:
        assert first.db_path.exists() and second.db_path.exists()
        return
    connection = await asyncpg.connect(server)
    try:
        names = {row[0] for row in await connection.fetch("SELECT datname FROM pg_database")}
    finally:
        await connection.close()
    assert used.rsplit("/", 1)[1] not in names and second.database_url == ""
