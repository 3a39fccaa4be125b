"""What the applier's flood handling (bot/sync/webhook_flood.py) decides for one campaign's events, weighed by the
budget's view of the campaign's creator token: look up, list, or wait for the token's window. Stand-ins for the
store and the campaign record what was asked; the budget is the real one."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

from bot.patreon.budget import Priority, RequestBudget
from bot.store.leases import Claimer
from bot.store.queues import WebhookEvent
from bot.sync.webhook_flood import FloodListings

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Campaign:
    token_subject = "creator"

    async def creator_access_token(self) -> str:
        return "creator-token"

    async def storage_key(self) -> str:
        return "7654321"

    def known_campaign_id(self) -> str:
        return "7654321"


class Store:
    def __init__(self) -> None:
        self.deferred: list[tuple[list[int], bool]] = []

    async def membership_count(self, campaign_id: str | None = None) -> int:
        return 3_000

    async def defer_webhook_events(self, ids: list[int], until: datetime, *, owner: str, release: bool = False) -> int:
        self.deferred.append((list(ids), release))
        return len(ids)


def events(count: int) -> list[WebhookEvent]:
    return [WebhookEvent(n, "members:pledge:update", f"m{n}", f"p{n}", "7654321", 0, NOW) for n in range(count)]


async def floods_with(budget: RequestBudget) -> tuple[FloodListings, Store, list[str], asyncio.Event]:
    store, listed, release = Store(), [], asyncio.Event()

    async def list_campaign(campaign: Any, cause: str, *, wait: float) -> None:
        listed.append(cause)
        await release.wait()
        return None

    floods = FloodListings(store, budget, list_campaign, lambda: NOW, Claimer())  # type: ignore[arg-type]
    return floods, store, listed, release


async def test_a_webhook_during_its_campaigns_own_listing_is_looked_up() -> None:
    budget = RequestBudget(token_limit=100)
    floods, store, listed, _release = await floods_with(budget)
    async with contextlib.AsyncExitStack() as held:
        for _ in range(80):  # the periodic listing holds all the token's refresh share
            await held.enter_async_context(budget.slot(Priority.REFRESH, "7654321", token="creator-token"))
        assert await floods.take(Campaign(), events(3)) == events(3)  # type: ignore[arg-type]
    assert not listed and not store.deferred and not floods.active


async def test_past_half_the_tokens_minute_in_look_ups_a_listing_answers() -> None:
    budget = RequestBudget(token_limit=100)
    floods, store, listed, release = await floods_with(budget)
    for _ in range(50):
        async with budget.slot(Priority.LOOKUP, token="creator-token"):
            pass
    assert await floods.take(Campaign(), events(1)) == []  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert floods.active and listed == ["webhook flood (1 event(s))"]
    assert store.deferred == [([0], False)], "deferred, still claimed: the listing answers it"
    later = [WebhookEvent(7, "members:update", "m7", "p7", "7654321", 0, NOW)]
    assert await floods.take(Campaign(), later) == [], "while the flood lists, later events join the next listing"
    release.set()
    await asyncio.sleep(0.05)
    assert not floods.active


async def test_a_campaign_too_big_to_list_looks_up_what_the_token_has_room_for_and_defers_the_rest() -> None:
    budget = RequestBudget(token_limit=10)
    floods, store, listed, _release = await floods_with(budget)

    async def huge(campaign_id: str | None = None) -> int:
        return 100_000  # 101 pages: more than a quarter of the token's minute

    store.membership_count = huge  # type: ignore[method-assign]
    for _ in range(7):
        async with budget.slot(Priority.LOOKUP, token="creator-token"):
            pass
    looked_up = await floods.take(Campaign(), events(5))  # type: ignore[arg-type]
    assert [e.id for e in looked_up] == [0, 1, 2], "three slots left in the token's window"
    assert store.deferred == [([3, 4], True)], "the rest wait for the window, let go for whoever is free then"
    assert not listed and floods.deferred_lookups == 2
