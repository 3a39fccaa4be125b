"""Does the convergence machine catch real bugs? Seed three into a copy of the tree and see.

`python -m bench.seeded_bugs` copies the working tree to a temporary folder (never touching the real one), runs
tests/convergence with the CI profile on the unchanged copy (it must pass), then, each in a fresh copy, applies one
small patch to product code and runs it again:

1. a grace day off by one: a declined payment keeps its roles a day longer (bot/domain/billing.py);
2. a lost job on restart: start-up drops the role jobs a killed bot left pending (bot/store/role_job_queue.py);
3. a stale-cache write: role changes PATCH the whole role list from discord.py's cache instead of one
   PUT/DELETE per role (bot/discord_io/roles.py).

A patch that no longer applies (the code moved on) stops the bench with the file and the text it looked for.
Prints one line per bug and `RESULT caught=N seeded=3`.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IGNORED = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", ".hypothesis", ".mypy_cache", ".ruff_cache", ".pytest_cache", "data", "*.sqlite3*"
)
TEST = "tests/convergence/test_convergence.py"


@dataclass(frozen=True)
class SeededBug:
    name: str
    path: str
    old: str
    new: str
    #: How many times `old` must occur (every one is replaced).
    count: int = 1


BUGS = (
    SeededBug(
        "grace day off by one",
        "bot/domain/billing.py",
        "return add_days(as_utc(membership.last_charge_date), grace_days)",
        "return add_days(as_utc(membership.last_charge_date), grace_days + 1)",
    ),
    SeededBug(
        "lost job on restart",
        "bot/store/role_job_queue.py",
        '"UPDATE role_jobs SET next_attempt_at = ? WHERE state = ? AND next_attempt_at > ?",',
        '"DELETE FROM role_jobs WHERE ? IS NOT NULL AND state = ? AND ? IS NOT NULL",',
    ),
    SeededBug(
        "stale-cache PATCH",
        "bot/discord_io/roles.py",
        "reason=reason, atomic=True)",
        "reason=reason, atomic=False)",  # discord.py then PATCHes member.roles (its cache) plus or minus the role
        count=2,
    ),
)


class PatchDoesNotApply(Exception):
    pass


def copy_tree(into: Path) -> Path:
    target = into / "tree"
    shutil.copytree(REPO, target, ignore=IGNORED)
    return target


def apply(bug: SeededBug, tree: Path) -> None:
    path = tree / bug.path
    text = path.read_text()
    found = text.count(bug.old)
    if found != bug.count:
        raise PatchDoesNotApply(
            f"{bug.name}: expected {bug.count} occurrence(s) of {bug.old!r} in {bug.path}, found {found}; "
            "update bench/seeded_bugs.py to the current code"
        )
    path.write_text(text.replace(bug.old, bug.new))


def run_machine(tree: Path, timeout: float) -> tuple[int, str, float]:
    env = {
        **{key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG")},
        "PYTHONPATH": str(tree),
        "CI": "true",
        "CONVERGENCE_NO_SHRINK": "1",  # caught or not is decided before shrinking; the smallest example isn't needed
    }
    started = time.monotonic()
    process = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", TEST],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return process.returncode, process.stdout + process.stderr, time.monotonic() - started


def failure_summary(output: str) -> str:
    """The machine's own complaint (the oracle's diff or the queue's leftovers), one line."""
    for pattern in (r"AssertionError: (roles differ from the oracle:\n.*)", r"AssertionError: (.*)"):
        match = re.search(pattern, output)
        if match:
            return " ".join(match.group(1).split())[:300]
    return "(no assertion message)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per run of the machine")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copies (their paths are printed)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="seeded-bugs-") as scratch:
        root = Path(scratch)
        for bug in BUGS:  # fail loudly before spending minutes: every patch must apply to the current code
            apply(bug, copy_tree(root / "check"))
            shutil.rmtree(root / "check")
        control = copy_tree(root / "control")
        code, output, seconds = run_machine(control, args.timeout)
        print(f"unchanged tree: {'passes' if code == 0 else 'FAILS'} ({seconds:.0f} s)", flush=True)
        if code != 0:
            print(output[-4000:])
            print("RESULT caught=0 seeded=3 (the machine fails on the unchanged tree)")
            return 1
        caught = 0
        for index, bug in enumerate(BUGS, 1):
            tree = copy_tree(root / f"bug{index}")
            apply(bug, tree)
            code, output, seconds = run_machine(tree, args.timeout)
            failed = code == 1 and f"FAILED {TEST}" in output
            if code not in (0, 1):
                print(output[-4000:])
                raise SystemExit(f"{bug.name}: pytest exited {code}, which is neither a pass nor a test failure")
            caught += failed
            verdict = f"caught: {failure_summary(output)}" if failed else "NOT caught"
            print(f"{bug.name} ({bug.path}): {verdict} ({seconds:.0f} s)", flush=True)
            if args.keep:
                kept = Path(tempfile.mkdtemp(prefix=f"seeded-bug{index}-"))
                shutil.copytree(tree, kept / "tree", dirs_exist_ok=True)
                (kept / "pytest.out").write_text(output)
                print(f"  kept in {kept}")
        print(f"RESULT caught={caught} seeded={len(BUGS)}")
        return 0 if caught == len(BUGS) else 1


if __name__ == "__main__":
    sys.exit(main())
