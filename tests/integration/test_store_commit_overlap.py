"""Two store calls on the one aiosqlite connection, interleaved: one call's commit must never land while another
call's write statement is still open (SQLite: "cannot commit transaction - SQL statements in progress").

aiosqlite runs every call on one worker thread, in the order the calls were queued. `record_webhook_event` used to
run `INSERT ... RETURNING id` and read the row in a second thread call; a commit queued in between (the refresh's
page commit, the applier's) ran while the INSERT was still active and failed (campaigns_bench: refreshes and
role jobs failed so). The order here is not luck: two coroutines that await nothing but store calls each have one
call queued at a time, so the worker thread takes theirs strictly in turn, whatever the machine's speed; with
these two the refresh's page commit comes right after a receipt's INSERT on every run.
"""

import asyncio
from datetime import UTC, datetime

import pytest

from bot.domain.models import MembershipSnapshot, PatronStatus
from bot.store import Store

T0 = datetime(2026, 11, 1, tzinfo=UTC)
EVENT = {"trigger": "members:update", "resource_type": "member", "campaign_id": "c", "body_sha256": "x"}


@pytest.fixture
async def store(tmp_path):
    opened = await Store.open(tmp_path / "bot.sqlite3")
    yield opened
    await opened.close()


async def test_a_refresh_page_and_webhook_receipts_side_by_side_lose_nothing(store):
    pages = [
        [
            MembershipSnapshot(f"m{p}-{n}", "c", f"u{p}-{n}", patron_status=PatronStatus.ACTIVE, observed_at=T0)
            for n in range(50)
        ]
        for p in range(5)
    ]

    async def refresh() -> None:
        for page in pages:
            await store.save_membership_page(page, campaign_id="c")

    async def receipts() -> list[int]:
        return [
            await store.record_webhook_event(
                received_at=T0, member_id=f"w{n}", patreon_user_id=f"wu{n}", applicable=True, **EVENT
            )
            for n in range(20)
        ]

    _, ids = await asyncio.gather(refresh(), receipts())
    assert await store.membership_count("c") == 250
    assert len(set(ids)) == 20 and len(await store.due_webhook_events(T0)) == 20
