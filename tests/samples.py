"""The real Patreon JSON the tests check against: vendored in `tests/data/patreon/`, each origin in its SOURCES.md.

A missing sample is a failing test, never a skip: the contract checks are only as good as the evidence they read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SAMPLES = Path(__file__).resolve().parent / "data" / "patreon"


def sample_paths(prefixes: tuple[str, ...] = ("",)) -> list[Path]:
    """Every vendored sample whose name starts with one of the prefixes; raises when the folder is gone."""
    if not SAMPLES.is_dir():
        raise FileNotFoundError(f"the vendored Patreon samples are missing: {SAMPLES}")
    return sorted(path for path in SAMPLES.glob("*.json") if path.name.startswith(prefixes))


def sample_bytes(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def sample(name: str) -> Any:
    return json.loads(sample_bytes(name))
