"""One campaign's creator-token refresh never holds up another campaign's webhooks in the same applier pass
(review 4, R4-4).

Weighing a campaign's events for a flood reads its creator token, which may refresh it at Patreon first. Campaign
B's token is due for a refresh and Patreon's token endpoint doesn't answer (only the client's 30 s timeout ends
the request); campaign A's event, claimed in the same pass after B's, is applied while B's refresh still hangs.
When the campaigns were weighed one after another, A's look-up started only once B's refresh had given up.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.domain.models import PatronStatus, TokenPair
from bot.store import Store
from fakes.patreon import CREATOR_SCOPES
from fakes.sync_harness import SyncHarness
from tests.e2e.polling import wait_for

CAMPAIGN_B = "8100001"


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[SyncHarness]:
    harness = await SyncHarness(tmp_path / "bot.sqlite3").start()
    try:
        yield harness
    finally:
        await harness.close()


async def record(store: Store, member_id: str, user: str, campaign: str, addressed: str) -> int:
    """What the receiver records for a verified delivery (`addressed`: '' by the `.env` campaign's legacy URL)."""
    return await store.record_webhook_event(
        received_at=datetime.now(UTC), trigger="members:pledge:create", resource_type="member", member_id=member_id,
        patreon_user_id=user, campaign_id=campaign, body_sha256=hashlib.sha256(member_id.encode()).hexdigest(),
        applicable=True, addressed_campaign_id=addressed,
    )


async def test_campaign_bs_hanging_token_refresh_does_not_hold_up_campaign_as_webhook_in_the_same_pass(
    h: SyncHarness,
) -> None:
    services, store = h.services, h.store
    assert services is not None and store is not None
    cora = h.patreon.add_creator("cr-2", "Cora", CAMPAIGN_B)
    cora.add_tier("3001", "Silver", 300)
    cora.add_user("p-dan", "Dan", None)
    dan = cora.set_membership("p-dan", patron_status="active_patron", tier_ids=["3001"])
    token = h.patreon.issue_tokens("cr-2", CREATOR_SCOPES)
    # Due for a refresh (a day left, the margin is a week), still valid: B's weighing refreshes it first.
    pair = TokenPair(token.access_token, token.refresh_token, datetime.now(UTC) + timedelta(days=1))
    await services.campaigns.add(CAMPAIGN_B, pair, "cora-secret")
    h.patreon.add_tier("2001", "Gold", 1000)
    h.patreon.add_user("p-ann", "Ann")
    ann = h.patreon.set_membership("p-ann", "active_patron", tier_ids=["2001"])
    h.patreon.hang_next(r"/api/oauth2/token", count=10)  # Patreon's token endpoint doesn't answer

    await record(store, dan.id, "p-dan", CAMPAIGN_B, CAMPAIGN_B)  # B's first: claimed, and weighed, before A's
    await record(store, ann.id, "p-ann", h.patreon.campaign.id, "")
    applying = asyncio.create_task(services.webhook_applier.apply_due())
    try:

        async def ann_applied() -> bool:
            stored = await store.get_membership("p-ann")
            return stored is not None and stored.patron_status is PatronStatus.ACTIVE

        await wait_for(ann_applied, timeout=20)  # well inside the hanging request's 30 s
        assert h.patreon.count("/api/oauth2/token") >= 1, "B's refresh was asked for"
        assert not applying.done(), "and still hangs: A's webhook didn't wait for it"
        stored_b = await store.get_tokens(services.campaigns.get(CAMPAIGN_B).token_subject)  # type: ignore[union-attr]
        assert stored_b is not None and stored_b.access_token == token.access_token, "B's token not refreshed yet"
    finally:
        applying.cancel()
        await asyncio.gather(applying, return_exceptions=True)
