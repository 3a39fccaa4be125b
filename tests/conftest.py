"""The test session sets up logging the way the entry point does (`python -m bot` calls the same function), so a
test that logs at DEBUG sees what a deployment with LOG_LEVEL=DEBUG would log, and nothing more."""

import os

import pytest
from hypothesis import settings

from bot.__main__ import keep_secrets_out_of_logs

# Hypothesis profiles. The default (local runs) keeps hypothesis' example database on, so a failure found once is
# tried first next time. `ci` is hypothesis' own (derandomized, no database, no deadline, the failing example's
# blob printed); hypothesis loads it whenever CI is set, and .ci/run sets CI=true. `long` is for a run by hand
# (`--hypothesis-profile=long`). tests/convergence sizes its state machine by the profile's name.
settings.register_profile("long", print_blob=True)


def pytest_configure(config: pytest.Config) -> None:
    keep_secrets_out_of_logs()
    if os.environ.get("CI") and not config.getoption("hypothesis_profile", None):
        settings.load_profile("ci")  # as hypothesis does on import; said here so the choice is visible
