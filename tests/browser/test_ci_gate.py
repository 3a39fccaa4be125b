"""The browser test may skip on a developer's machine without chromium, never in CI: a skip there reads as green."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.chromium import require_browser


@pytest.mark.parametrize("ci", ["true", "True", "1", "yes"])
def test_ci_without_chromium_fails_rather_than_skips(tmp_path: Path, ci: str) -> None:
    with pytest.raises(pytest.fail.Exception, match="must run in CI") as failed:
        require_browser({"CI": ci}, paths=(str(tmp_path / "chromium"),))
    assert "apt-get install chromium chromium-driver" in str(failed.value)


@pytest.mark.parametrize("env", [{}, {"CI": "false"}, {"CI": ""}, {"CI": "0"}])
def test_a_machine_outside_ci_without_chromium_skips(tmp_path: Path, env: dict[str, str]) -> None:
    with pytest.raises(pytest.skip.Exception, match="chromedriver not installed"):
        require_browser(env, paths=(str(tmp_path / "chromedriver"),))


def test_ci_with_chromium_and_its_driver_runs(tmp_path: Path) -> None:
    for name in ("chromium", "chromedriver"):
        (tmp_path / name).write_text("#!/bin/sh\n")
        (tmp_path / name).chmod(0o755)
    assert require_browser({"CI": "true"}, paths=(str(tmp_path / "chromium"), str(tmp_path / "chromedriver"))) is None
