"""SECURITY.md names the test behind every threat: each name must exist, so the page can't promise a lost test."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_test_and_test_file_named_in_security_md_exists() -> None:
    text = (ROOT / "SECURITY.md").read_text()
    sources = "\n".join(path.read_text() for path in (ROOT / "tests").rglob("test_*.py"))
    missing_files = [name for name in re.findall(r"`((?:unit|integration|e2e|browser)/test_\w+\.py)", text)
                     if not (ROOT / "tests" / name).is_file()]
    missing_tests = [name for name in set(re.findall(r"\b(test_\w+)\b(?!\.py)", text))
                     if f"def {name}(" not in sources]
    assert (missing_files, sorted(missing_tests)) == ([], [])
