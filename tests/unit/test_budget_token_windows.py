"""The per-token side of the Patreon budget (bot/patreon/budget.py) that the webhook flood handling reads: how much
room a token has now, when it frees, and a refreshed token counting in its predecessor's window (Patreon says
refreshing doesn't reset the limit)."""

from __future__ import annotations

import contextlib

from bot.patreon.budget import Priority, RequestBudget


class ManualClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_token_room_counts_running_ended_and_the_refresh_lanes_share() -> None:
    clock = ManualClock()
    budget = RequestBudget(token_limit=10, token_window_seconds=60.0, margin_seconds=0.0, monotonic=clock)
    assert budget.token_room("a") == 10 and budget.token_room("a", Priority.REFRESH) == 8
    for _ in range(3):
        async with budget.slot(Priority.REFRESH, "c", token="a"):
            pass
    async with contextlib.AsyncExitStack() as held:
        await held.enter_async_context(budget.slot(Priority.LOOKUP, token="a"))
        assert budget.token_room("a") == 6, "three ended and one running of ten"
        assert budget.token_room("a", Priority.REFRESH) == 5, "refresh work may hold eight and has three"
        assert budget.token_room("b") == 10, "another token's window is its own"
    assert budget.token_frees_in("a") == 0.0
    for _ in range(6):
        async with budget.slot(Priority.LOOKUP, token="a"):
            clock.now += 1.0
    assert budget.token_room("a") == 0
    assert budget.token_frees_in("a") == 54.0, "at 106 s: the first of the ten ended at 100 s, it leaves at 160 s"
    clock.now = 160.0
    assert budget.token_room("a") == 4 and budget.token_frees_in("a") == 0.0, "the four that ended at 100 s left"


async def test_a_refreshed_token_counts_in_its_predecessors_window() -> None:
    clock = ManualClock()
    budget = RequestBudget(token_limit=4, token_window_seconds=60.0, margin_seconds=0.0, monotonic=clock)
    for _ in range(4):
        async with budget.slot(Priority.LOOKUP, token="token-old-8c1f"):
            pass
    budget.carry_token_window("token-old-8c1f", "token-new-3e9d")
    assert budget.token_room("token-new-3e9d") == 0, "refreshing didn't reset the window"
    budget.carry_token_window("token-new-3e9d", "token-newer-77aa")
    assert budget.token_room("token-newer-77aa") == 0, "nor did the next refresh"
    kept = repr(budget.__dict__)
    assert "token-old-8c1f" not in kept and "token-newer-77aa" not in kept, "only hashes are kept"


def test_without_a_token_limit_there_is_no_room_to_weigh() -> None:
    budget = RequestBudget()
    assert budget.token_room("a") is None and budget.token_frees_in("a") == 0.0
