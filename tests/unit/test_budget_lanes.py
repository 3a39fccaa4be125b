"""The Patreon request budget's lanes on its own (bot/patreon/budget.py): round-robin between campaigns' refresh
work, look-ups never held, and urgent work holding refresh requests back only for a bounded time."""

from __future__ import annotations

import asyncio
import time

from bot.patreon.budget import Priority, RequestBudget


async def test_one_campaigns_many_waiters_never_starve_the_others() -> None:
    budget = RequestBudget(limit=2, window_seconds=0.05, refresh_share=0.5, margin_seconds=0.0)
    served: list[str] = []

    async def request(key: str) -> None:
        async with budget.slot(Priority.REFRESH, key):
            served.append(key)

    hog = [asyncio.create_task(request("big")) for _ in range(20)]
    await asyncio.sleep(0)  # the big campaign's 20 are queued first
    others = [asyncio.create_task(request(f"c{i}")) for i in range(5)]
    await asyncio.gather(*hog, *others)
    for index in range(5):
        assert served.index(f"c{index}") <= 2 * (index + 1) + 1  # every other turn at most, not after all 20


async def test_urgent_work_holds_refresh_requests_but_not_lookups() -> None:
    budget = RequestBudget(refresh_hold_seconds=5.0)
    order: list[str] = []

    async def request(priority: Priority, name: str) -> None:
        async with budget.slot(priority, name):
            order.append(name)

    async with budget.urgent():
        page = asyncio.create_task(request(Priority.REFRESH, "page"))
        await request(Priority.LOOKUP, "look-up")
        await asyncio.sleep(0.05)
        assert order == ["look-up"] and not page.done()  # the page waits while the webhook's pass runs
    await page
    assert order == ["look-up", "page"]


async def test_urgent_work_never_holds_a_refresh_request_longer_than_the_hold() -> None:
    budget = RequestBudget(refresh_hold_seconds=0.2)
    async with budget.urgent():
        started = time.monotonic()
        async with budget.slot(Priority.REFRESH, "campaign"):
            waited = time.monotonic() - started
    assert 0.15 <= waited < 1.0
