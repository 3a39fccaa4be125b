"""The test session sets up logging the way the entry point does (`python -m bot` calls the same function), so a
test that logs at DEBUG sees what a deployment with LOG_LEVEL=DEBUG would log, and nothing more."""

import pytest

from bot.__main__ import keep_secrets_out_of_logs


def pytest_configure(config: pytest.Config) -> None:
    keep_secrets_out_of_logs()
