"""Contract: a comp renewed between the expiry sweep's read (`due_comps`) and its write (`end_comps`) stays active.

CompExpiry.work awaits the role jobs' enqueue between the two calls, so an admin's renewal can land there; ending
the renewed row would take a role the admin just extended (review C2)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from bot.domain.comps import Comp

T0 = datetime(2026, 11, 1, tzinfo=UTC)
G1 = 900_000_000_000_000_001
ANN, BOB = 310_000_000_000_000_001, 310_000_000_000_000_002
GOLD = 700_000_000_000_000_001


async def test_a_comp_renewed_between_the_sweeps_read_and_write_is_not_ended(store):
    comp = Comp(G1, ANN, GOLD, T0 + timedelta(days=7), "contest", BOB, T0)
    await store.save_comp(comp)
    now = T0 + timedelta(days=7, seconds=1)
    [due] = await store.due_comps(now)
    renewed = replace(comp, expires_at=now + timedelta(days=30), granted_at=now)
    await store.save_comp(renewed)  # the renewal lands while the sweep queues the role jobs
    assert await store.end_comps([due], now, "expired") == []
    assert await store.get_comp(G1, ANN, GOLD) == renewed
    assert await store.active_comps(G1, ANN, now) == [renewed]


async def test_a_comp_read_and_not_renewed_still_ends_once(store):
    comp = Comp(G1, ANN, GOLD, T0 + timedelta(days=7), "contest", BOB, T0)
    await store.save_comp(comp)
    current = await store.get_comp(G1, ANN, GOLD)
    assert await store.end_comps([current], T0 + timedelta(days=1), "revoked by 1") == [current], "uncomp ends early"
    assert await store.end_comps([current], T0 + timedelta(days=1), "revoked by 1") == []
