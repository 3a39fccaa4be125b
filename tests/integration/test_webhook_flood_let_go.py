"""Events a flood listing lets go are due again at once, and the applier is woken for them (review 4, R4-2).

A flood's events are deferred for a lease while its listing runs. Here the lease is an hour and the worker's
longest sleep too, so once the listing failed only the wake its let-go sends can get them looked up: before that
wake the applier slept out the deferral (a minute with the default lease) although the token had room.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.domain.models import PatronStatus
from bot.store import LAST_REFRESH
from bot.store.leases import Claimer
from bot.sync.webhook_apply import WebhookApplier
from fakes.sync_harness import SyncHarness
from tests.e2e.polling import wait_for

HOUR = timedelta(hours=1)
FANS = [f"p-fan{n}" for n in range(60)]  # more than half the creator token's 100 a minute: a flood


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[SyncHarness]:
    harness = await SyncHarness(tmp_path / "bot.sqlite3").start()
    try:
        yield harness
    finally:
        await harness.close()


async def test_events_a_failed_flood_listing_lets_go_are_looked_up_not_left_to_their_deferral(h: SyncHarness) -> None:
    services, store = h.services, h.store
    assert services is not None and store is not None
    h.patreon.add_tier("2001", "Gold", 1000)
    for patreon_id in FANS:
        h.patreon.add_user(patreon_id, patreon_id)
        h.patreon.set_membership(patreon_id, "active_patron", tier_ids=["2001"])
    for patreon_id in FANS:
        status, _ = await h.deliver("members:pledge:create", patreon_id)
        assert status == 202
    h.patreon.fail_next(r"/campaigns/[^/]+/members", status=503, count=1000)  # listings fail, look-ups work
    applier = WebhookApplier(
        store,
        services.patreon,
        services.campaigns,
        services.reconcile,
        services.jobs,
        h.gateway,
        h.clock,
        claimer=Claimer(lease=HOUR),
        list_campaign=services.refresh.refresh_campaign,
    )
    applier.max_sleep = HOUR.total_seconds()  # no look at the store before the deferral ends: only a wake
    applier.retry_base = 0.01
    applier.start()
    try:
        async def all_done() -> bool:
            return await store.webhook_event_counts() == {"done": len(FANS)}

        await wait_for(all_done, timeout=120)
        fact = await store.get_fact(LAST_REFRESH)
        assert isinstance(fact, dict) and fact["cause"].startswith("webhook flood") and not fact["ok"], fact
        assert applier.floods.listings == 0, "the flood's listing failed: its events were looked up after it"
        for patreon_id in FANS:
            stored = await store.get_membership(patreon_id)
            assert stored is not None and stored.patron_status is PatronStatus.ACTIVE
    finally:
        await applier.stop(timeout=1)
