"""Contract: every advisory lock of a process lives on one PostgreSQL session (bot/store/postgres_db.py
`advisory_lock`), so one failed unlock must not end that session, and a session that ends anyway must be noticed by
the holders: `still_holds` says so, and a sharded process whose shard lock went stops (bot/discord_io/runner.py
`run_while_held`) rather than run a shard another process may now take (review 2, R2).

The failing unlock is the server's doing: a `pg_advisory_unlock(bigint)` in the store's schema, ahead of
pg_catalog's on the role's search_path, refuses the keys listed in `unlock_faults` (SQLSTATE 57014, as a statement
timeout does) and passes every other key to the real one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from bot.discord_io.runner import run_while_held
from bot.store.claims import lock_key
from tests.e2e.polling import wait_for

SHARD_0, SHARD_1, REFRESH = "shard 0 of 2", "shard 1 of 2", "refresh campaign:x"

FAULTY_UNLOCK = """
CREATE TABLE public.unlock_faults (lock_key BIGINT PRIMARY KEY);
CREATE FUNCTION public.pg_advisory_unlock(key BIGINT) RETURNS BOOLEAN LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM public.unlock_faults WHERE lock_key = key) THEN
        RAISE EXCEPTION 'canceling statement due to statement timeout' USING ERRCODE = '57014';
    END IF;
    RETURN pg_catalog.pg_advisory_unlock(key);
END $$;
ALTER ROLE CURRENT_USER SET search_path = public, pg_catalog;
"""


@pytest.fixture
async def server(postgres_dsn, open_store) -> AsyncIterator[asyncpg.Connection]:  # type: ignore[no-untyped-def]
    """A connection of the test's own (not a process's) to the contract database, after `open_store` emptied it."""
    connection = await asyncpg.connect(postgres_dsn)
    try:
        yield connection
    finally:
        await connection.execute("ALTER ROLE CURRENT_USER RESET search_path")
        await connection.close()


async def kill_lock_sessions(server: asyncpg.Connection) -> None:
    """What a failover or `pg_terminate_backend` does to the sessions holding advisory locks."""
    pids = [
        row["pid"]
        for row in await server.fetch(
            "SELECT DISTINCT pid FROM pg_locks WHERE locktype = 'advisory' AND pid != pg_backend_pid()"
        )
    ]
    assert pids, "somebody holds a lock"
    for pid in pids:
        await server.fetchval("SELECT pg_terminate_backend($1)", pid)

    async def gone() -> bool:
        return not await server.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])", pids)

    await wait_for(gone, timeout=10)


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_one_failed_unlock_keeps_every_other_lock_held(open_store, server):
    a, b = await open_store(), await open_store()
    await server.execute(FAULTY_UNLOCK)  # before the stores' lock sessions open: they get the search_path
    async with a.exclusive(SHARD_0) as shard_held:
        assert shard_held
        await server.execute("INSERT INTO unlock_faults VALUES ($1)", lock_key(REFRESH))
        async with a.exclusive(REFRESH) as held:
            assert held
        async with b.exclusive(SHARD_0) as other:
            assert not other, "the first process still runs shard 0"
        assert await a.still_holds(SHARD_0)
        async with b.exclusive(REFRESH) as other:
            assert not other, "the refresh lock whose unlock failed is still on the first process's session"

        await server.execute("DELETE FROM unlock_faults")
        async with a.exclusive("something else") as held:  # the next lock unlocks what failed first
            assert held
        async with b.exclusive(REFRESH) as other:
            assert other, "let go once the server answered"
    async with b.exclusive(SHARD_0) as other:
        assert other


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_lost_lock_session_is_noticed_and_the_lock_taken_again_from_scratch(open_store, server):
    a, b = await open_store(), await open_store()
    async with a.exclusive(SHARD_1) as shard_held:
        assert shard_held and await a.still_holds(SHARD_1)
        await kill_lock_sessions(server)
        assert not await a.still_holds(SHARD_1), "its holder learns the lock is gone"
        async with b.exclusive(SHARD_1) as other:
            assert other  # which is why the holder must stop (next test)
        async with a.exclusive("refresh campaign:y") as held:  # a new session for the locks taken from now on
            assert held and await a.still_holds("refresh campaign:y")
        assert not await a.still_holds(SHARD_1), "a new session doesn't bring the old one's locks back"


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_sharded_process_stops_when_its_shard_lock_is_lost(open_store, server, capsys):
    store = await open_store()
    stopped = asyncio.Event()

    async def bot() -> int:
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()
        return 0

    async with store.exclusive(SHARD_1) as held:
        assert held
        running = asyncio.ensure_future(run_while_held(store, [SHARD_1], bot(), every=0.05))
        await kill_lock_sessions(server)
        assert await asyncio.wait_for(running, timeout=10) == 2
    assert stopped.is_set()
    assert "error: shard 1 of 2 was lost (its PostgreSQL session ended); stopping" in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
async def test_still_holds_while_inside_exclusive_only(store):
    assert not await store.still_holds(SHARD_0)
    async with store.exclusive(SHARD_0) as held:
        assert held and await store.still_holds(SHARD_0)
    assert not await store.still_holds(SHARD_0)
    assert await run_while_held(store, [], _answer(7)) == 7


async def _answer(value: int) -> int:
    return value
