"""The demo stops at a step whose signal never comes, naming the step and the signal (before, `_settle` gave up
silently after 5 s and the next line failed with an IndexError far from the cause)."""

from __future__ import annotations

import pytest

from bot.demo import DemoStepError, _settle


async def test_a_step_without_its_signal_names_the_step_and_what_it_waited_for():
    with pytest.raises(DemoStepError, match=r"^step 7 \(comp\): no /patreon-admin comp's answer after 0 s$"):
        await _settle("7 (comp)", "/patreon-admin comp's answer", lambda: False, timeout=0.1)


async def test_a_signal_already_there_returns_at_once():
    await _settle("1", "anything", lambda: True, timeout=0.0)
