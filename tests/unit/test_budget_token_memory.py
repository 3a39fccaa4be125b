"""What the Patreon budget keeps of tokens stays bounded (bot/patreon/token_windows.py): a refreshed creator token
carried into its predecessor's window, and every token used once (a link's), are forgotten once they can no longer
count, however long the bot runs. Before, one id was kept per refresh and per token ever used, forever."""

from __future__ import annotations

import asyncio

from bot.patreon.budget import Priority, RequestBudget
from tests.e2e.polling import wait_for


class ManualClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def budget_on(clock: ManualClock, limit: int = 10) -> RequestBudget:
    return RequestBudget(token_limit=limit, token_window_seconds=60.0, margin_seconds=0.0, monotonic=clock)


async def request(budget: RequestBudget, token: str) -> None:
    async with budget.slot(Priority.LOOKUP, token=token):
        pass


async def test_a_busy_campaigns_token_refreshed_a_thousand_times_keeps_a_few_ids_and_its_window() -> None:
    """Its window never empties (a request every 30 s), so only ids its requests stopped naming can go."""
    clock = ManualClock()
    budget = budget_on(clock)
    token = "creator-token-0"
    for n in range(1, 1001):
        await request(budget, token)
        renewed = f"creator-token-{n}"
        budget.carry_token_window(token, renewed)
        token = renewed
        clock.now += 30.0
    # The window's, the newest token's, and those of tokens its requests named in the last two minutes.
    assert budget.tokens_kept() <= 6, f"{budget.tokens_kept()} token ids kept after 1,000 refreshes"
    await request(budget, token)
    assert budget.token_room(token) == 8, "the newest token still counts in the window its requests were in"
    assert budget.token_room("creator-token-0") == 8, "and the window is the first one's"


async def test_tokens_used_once_are_forgotten_once_their_window_passed() -> None:
    clock = ManualClock()
    budget = budget_on(clock)
    for n in range(1000):  # a patron's token each second (links, self-refreshes)
        await request(budget, f"patron-token-{n}")
        clock.now += 1.0
    assert budget.tokens_kept() <= 121, "at most two windows' worth (the sweep runs once a window)"


async def test_a_refreshed_token_counts_in_its_predecessors_window_until_that_window_passed() -> None:
    clock = ManualClock()
    budget = budget_on(clock, limit=4)
    for _ in range(4):
        await request(budget, "old-token")
    budget.carry_token_window("old-token", "new-token")
    clock.now = 130.0
    await request(budget, "a-link's-token")  # sweeps nothing that still counts
    clock.now = 159.0
    budget.carry_token_window("unrelated-a", "unrelated-b")  # a sweep, a window after the first
    assert budget.token_room("new-token") == 0, "the old token's four still count for the new one"
    clock.now = 160.0
    assert budget.token_room("new-token") == 4, "and leave the window when their minute is over"
    clock.now = 400.0
    await request(budget, "another")
    assert budget.tokens_kept() == 1, "only the last token used is kept"


async def test_a_carried_id_whose_window_a_request_waits_for_is_kept() -> None:
    """The window is idle, but a request of the new token waits (a 429's pause) to count in it: the new token's
    later requests must count in that same window, not in one of their own."""
    clock = ManualClock()
    budget = budget_on(clock, limit=4)
    await request(budget, "old-token")
    budget.carry_token_window("old-token", "new-token")
    clock.now = 200.0
    budget.pause(10.0)
    waiting = asyncio.create_task(request(budget, "new-token"))
    await wait_for(lambda: budget.waiting() == 1)
    budget.carry_token_window("unrelated-a", "unrelated-b")  # a sweep, the old window idle
    assert budget.token_room("new-token") == 3, "the waiting request counts in the new token's window"
    clock.now = 211.0
    await request(budget, "after-the-pause")  # its turn comes after the waiting one's
    await waiting


async def test_a_token_limit_turned_off_after_start_budgets_no_token() -> None:
    """Tests that run many examples on one world turn the per-token budget off (tests/e2e/test_webhook_property.py)."""
    clock = ManualClock()
    budget = budget_on(clock, limit=1)
    await request(budget, "token")
    assert budget.token_room("token") == 0
    budget.token_limit = None
    assert budget.token_room("token") is None and budget.token_lookups("token") is None
    await asyncio.wait_for(request(budget, "token"), timeout=5)  # not held for the token's minute


def test_without_a_token_limit_no_token_is_kept() -> None:
    budget = RequestBudget()
    budget.carry_token_window("a", "b")
    assert budget.tokens_kept() == 0
