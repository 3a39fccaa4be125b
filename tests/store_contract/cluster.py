"""A throwaway PostgreSQL cluster for the contract suite: Debian's initdb/pg_ctl, a temp folder, a free local port.

Used when the tests are not given a server (STORE_CONTRACT_POSTGRES_DSN, which .ci/run sets). PostgreSQL refuses to
run as root, so under root the cluster runs as the `postgres` system user (Debian's package makes it).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


def postgres_bin() -> Path | None:
    """The folder holding initdb and pg_ctl (on PATH, or Debian's /usr/lib/postgresql/<version>/bin)."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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


def start_cluster() -> Cluster:
    """Start one (RuntimeError naming why not); the caller stops it."""
    binaries = postgres_bin()
    if binaries is None:
        raise RuntimeError("no PostgreSQL binaries (initdb, pg_ctl) on this machine")
    runner: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="store-contract-pg-"))
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(folder, ignore_errors=True)
            raise RuntimeError("running as root and there is no `postgres` user to run the server as") from None
        os.chown(folder, user.pw_uid, user.pw_gid)
        runner = ["runuser", "-u", "postgres", "--"]
    data = folder / "data"
    cluster = Cluster(folder, binaries, runner, _free_port())
    try:
        _run([*runner, str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
              "--no-sync", "--no-instructions"])
        options = f"-p {cluster.port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
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
