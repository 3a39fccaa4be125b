"""PostgreSQL for the e2e world and the benches: a throwaway cluster, and a fresh database per world.

A cluster is Debian's initdb/pg_ctl in a temp folder on a free local port, run as the `postgres` system user under
root (PostgreSQL refuses to run as root), stopped and removed by `stop()`. Given a server (its DSN names a database
to connect to, e.g. `postgres`), `fresh_database` creates an empty database of its own beside it, so worlds that
run at once or one after another never see each other's rows, and `drop_database` removes it again.
(The contract suite, tests/shards and the benches all start their cluster here.)
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]


def postgres_bin() -> Path | None:
    """The folder holding initdb and pg_ctl (on PATH, or Debian's /usr/lib/postgresql/<version>/bin)."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


@dataclass
class Cluster:
    folder: Path
    bin: Path
    runner: list[str]
    port: int

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        subprocess.run(
            [*self.runner, str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.folder, ignore_errors=True)


def start_cluster(*, durable: bool = False) -> Cluster:
    """Start one (RuntimeError naming why not); the caller stops it. `durable` keeps fsync on (a bench measuring
    the store's commits wants what a deployment has); the tests run without it."""
    binaries = postgres_bin()
    if binaries is None:
        raise RuntimeError("no PostgreSQL binaries (initdb, pg_ctl) on this machine")
    runner: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="fakes-pg-"))
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(folder, ignore_errors=True)
            raise RuntimeError("running as root and there is no `postgres` user to run the server as") from None
        os.chown(folder, user.pw_uid, user.pw_gid)
        runner = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    cluster = Cluster(folder, binaries, runner, port)
    data = folder / "data"
    try:
        _run([*runner, str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
              "--no-sync", "--no-instructions"])
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
        if not durable:
            options += " -c fsync=off -c full_page_writes=off"
        _run([*runner, str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "server.log"),
              "-w", "-t", "60", "start"])
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tool = next(Path(part).name for part in command if part.endswith(("initdb", "pg_ctl")))
        raise RuntimeError(f"{tool}: {done.stderr.strip() or done.stdout.strip()}")


def with_database(dsn: str, name: str) -> str:
    """The same server and user, another database."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


async def fresh_database(server_dsn: str, prefix: str = "world") -> str:
    """Create an empty database on the server; returns its URL (for DATABASE_URL)."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    connection = await asyncpg.connect(server_dsn)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return with_database(server_dsn, name)


async def drop_database(server_dsn: str, database_url: str) -> None:
    """Drop a database `fresh_database` made, closing any connection still open to it (PostgreSQL 13 or newer)."""
    name = urlsplit(database_url).path.lstrip("/")
    connection = await asyncpg.connect(server_dsn)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()
