"""Convergence (issue 15): whatever order webhooks arrive in, whatever crashes, outages and hands in between, after
each drain every member holds exactly the roles the independent oracle gives, and hand-given roles stay.

The machine's size follows the hypothesis profile (tests/conftest.py): `ci` is fixed and small, the default is a
little larger with hypothesis' example database on, `--hypothesis-profile=long` runs thousands of steps by hand.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

from tests.convergence.machine import ConvergenceMachine

#: (examples, steps per example) for the machine on the scaled member-role window, and for the one on the real.
BUDGETS = {
    "ci": ((12, 25), (1, 6)),
    "long": ((int(os.environ.get("CONVERGENCE_LONG_EXAMPLES", "200")), 50), (3, 20)),
}
DEFAULT_BUDGET = ((8, 20), (1, 8))
(scaled, real) = BUDGETS.get(settings.get_current_profile_name(), DEFAULT_BUDGET)


#: bench/seeded_bugs.py only asks whether a bug is caught, not for its smallest example: it skips the shrinking.
PHASES = (Phase.explicit, Phase.reuse, Phase.generate) if os.environ.get("CONVERGENCE_NO_SHRINK") else tuple(Phase)


def machine_settings(examples: int, steps: int) -> settings:
    return settings(
        max_examples=examples,
        stateful_step_count=steps,
        phases=PHASES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


class RealLimitsMachine(ConvergenceMachine):
    """The same machine on Discord's real 10-second member-role window: fewer steps, as it waits for real."""

    role_window = None


TestConvergence = ConvergenceMachine.TestCase
TestConvergence.settings = machine_settings(*scaled)
TestConvergenceOnRealLimits = RealLimitsMachine.TestCase
TestConvergenceOnRealLimits.settings = machine_settings(*real)
