"""The store's refresh-path writes on SQLite and on PostgreSQL, side by side: `python -m bench.store_backends_bench`.

A listing of N members written into an empty store, the same listing again (unchanged: the hash comparison reads
only), and N/4 role jobs queued. On PostgreSQL the second pass runs after ANALYZE, as it would a minute after the
first write (autovacuum); without statistics the planner reads every membership of the campaign for each chunk of
500 ids (100,000 unchanged members: 6.6 s instead of about 0.4 s). PostgreSQL is BENCH_POSTGRES_DSN (an empty
database; its `public` schema is dropped and made anew), or a throwaway cluster from Debian's binaries
(fakes/postgres.py, fsync on), run as the `postgres` user under root.
Last line: `RESULT sqlite_save_s=… postgres_save_s=… sqlite_unchanged_s=… …`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from bot.domain.models import MembershipSnapshot, PatronStatus
from bot.store import Store
from bot.store.opening import open_postgres
from bot.store.token_cipher import TokenCipher, new_key
from fakes.postgres import start_cluster


async def measure(store: Store, members: int, analyze: bool = False) -> dict[str, float]:
    now = datetime.now(UTC)
    listing = [
        MembershipSnapshot(f"m{i}", "c1", f"p{i}", patron_status=PatronStatus.ACTIVE, observed_at=now)
        for i in range(members)
    ]
    started = time.perf_counter()
    await store.save_memberships(listing, campaign_id="c1")
    if analyze:  # PostgreSQL: the statistics autovacuum gathers within a minute of a big write (see the docstring)
        await store._db.executescript("ANALYZE")
    saved = time.perf_counter()
    await store.save_memberships(listing, campaign_id="c1")
    unchanged = time.perf_counter()
    await store.enqueue_role_jobs([(1, i) for i in range(members // 4)], "refresh", now)
    queued = time.perf_counter()
    return {"save_s": saved - started, "unchanged_s": unchanged - saved, "enqueue_s": queued - unchanged}


@contextmanager
def postgres_server() -> Iterator[str]:
    given = os.environ.get("BENCH_POSTGRES_DSN")
    if given:
        yield given
        return
    try:
        cluster = start_cluster(durable=True)
    except RuntimeError as why:
        raise SystemExit(f"no PostgreSQL ({why}): set BENCH_POSTGRES_DSN or install Debian's postgresql") from None
    try:
        yield cluster.dsn
    finally:
        cluster.stop()


async def main(members: int) -> None:
    cipher = TokenCipher([new_key().encode()], "the bench's key")
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        store = await Store.open(Path(folder) / "bench.sqlite3", cipher)
        results["sqlite"] = await measure(store, members)
        await store.close()
    with postgres_server() as dsn:
        connection = await asyncpg.connect(dsn)
        await connection.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public")
        await connection.close()
        store = await open_postgres(dsn, cipher)
        results["postgres"] = await measure(store, members, analyze=True)
        await store.close()
    for backend, figures in results.items():
        print(backend, " ".join(f"{name}={value:.2f}" for name, value in figures.items()))
    print("RESULT " + " ".join(
        f"{backend}_{name}={value:.2f}" for name in ("save_s", "unchanged_s", "enqueue_s") for backend, figures in
        results.items() for value in [figures[name]]
    ) + f" members={members}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000)
    asyncio.run(main(parser.parse_args().members))
