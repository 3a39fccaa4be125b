"""Two processes on one database: an event recorded by the process that just connected a campaign may be claimed
by another whose registry hasn't reloaded yet (every 5 s). That one looks again in the database before giving the
event up, so the new campaign's first webhook is applied, not finished IGNORED for good (review 2, R1).

Process B is the harness (its own registry, real client, fake Patreon over HTTP); process A is a second store and
registry over the same SQLite file, which connects the campaign and records the event as its receiver would.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.models import PatronStatus, TokenPair
from bot.store import Store
from bot.store.campaigns import CampaignRecord
from bot.store.queues import DONE, IGNORED, PENDING
from bot.sync.campaign import CampaignService
from bot.sync.campaign_registry import CampaignRegistry
from bot.sync.webhook_apply import WebhookApplier
from fakes.patreon import CREATOR_SCOPES
from fakes.sync_harness import SyncHarness

NEW_CAMPAIGN = "8100001"


def other_process(store: Store) -> CampaignRegistry:
    def build(record: CampaignRecord) -> CampaignService:
        return CampaignService(
            None,  # type: ignore[arg-type]  # process A asks Patreon nothing here
            store, None, lambda: datetime.now(UTC), record.campaign_id, on_token_rejected=None,
            token_subject=record.token_subject, source=record.source, webhook_secret=record.webhook_secret or "",
        )

    return CampaignRegistry(store, build)


@pytest.fixture
async def h(tmp_path):
    harness = await SyncHarness(tmp_path / "bot.sqlite3").start()
    try:
        yield harness
    finally:
        await harness.close()


async def record(store: Store, member_id: str, user: str, campaign: str) -> int:
    return await store.record_webhook_event(
        received_at=datetime.now(UTC), trigger="members:pledge:create", resource_type="member", member_id=member_id,
        patreon_user_id=user, campaign_id=campaign, body_sha256=hashlib.sha256(member_id.encode()).hexdigest(),
        applicable=True, addressed_campaign_id=campaign,
    )


async def state_of(store: Store, event_id: int) -> tuple[str, str | None]:
    async with store._db.execute("SELECT state, last_error FROM webhook_events WHERE id = ?", (event_id,)) as cur:
        row = await cur.fetchone()
    return row[0], row[1]


async def test_an_event_of_a_campaign_connected_elsewhere_before_the_reload_is_applied(h, tmp_path):
    cora = h.patreon.add_creator("cr-2", "Cora", NEW_CAMPAIGN)
    cora.add_tier("3001", "Silver", 300)
    cora.add_user("p-dan", "Dan", None)
    member = cora.set_membership("p-dan", patron_status="active_patron", tier_ids=["3001"])
    token = h.patreon.issue_tokens("cr-2", CREATOR_SCOPES)
    store_a = await Store.open(tmp_path / "bot.sqlite3")
    try:
        process_a = other_process(store_a)
        await process_a.load()
        pair = TokenPair(token.access_token, token.refresh_token, datetime.now(UTC) + timedelta(days=30))
        await process_a.add(NEW_CAMPAIGN, pair, "cora-secret")  # the connect callback landed on A
        event_id = await record(store_a, member.id, "p-dan", NEW_CAMPAIGN)  # A's receiver verified it
    finally:
        await store_a.close()
    assert h.services is not None and h.store is not None
    assert h.services.campaigns.get(NEW_CAMPAIGN) is None, "B hasn't reloaded yet"
    assert await h.services.webhook_applier.apply_due() == 1
    assert await state_of(h.store, event_id) == (DONE, None)
    stored = await h.store.get_membership("p-dan", NEW_CAMPAIGN)
    assert stored is not None and stored.patron_status is PatronStatus.ACTIVE, "applied with Cora's token"
    assert h.services.campaigns.get(NEW_CAMPAIGN) is not None, "and served here from now on"


async def test_an_event_of_a_campaign_in_no_process_is_still_ignored(h):
    assert h.store is not None and h.services is not None
    event_id = await record(h.store, "m-x", "p-x", "8199999")  # e.g. disconnected before it was applied
    assert await h.services.webhook_applier.apply_due() == 1
    assert await state_of(h.store, event_id) == (IGNORED, "campaign not connected")


async def test_an_event_of_a_connected_campaign_this_process_cannot_serve_yet_is_retried_not_ignored(h, tmp_path):
    """A single-campaign applier can't serve a connected campaign even after a reload (its registry connects
    nothing): the event stays pending for a later try rather than being lost."""
    assert h.store is not None and h.services is not None
    services = h.services
    await services.campaigns.add(NEW_CAMPAIGN, TokenPair("a", "r", datetime.now(UTC) + timedelta(days=1)), "s")
    event_id = await record(h.store, "m-y", "p-y", NEW_CAMPAIGN)
    single = WebhookApplier(
        h.store, services.patreon, services.campaign, services.reconcile, services.jobs, h.gateway, h.clock
    )
    assert await single.apply_due() == 1
    assert await state_of(h.store, event_id) == (PENDING, f"campaign {NEW_CAMPAIGN} is not served here yet")
