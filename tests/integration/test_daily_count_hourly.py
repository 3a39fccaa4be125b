"""The daily patron count's hourly pass (bot/guild_admin/stats.py `take_due`) reads a campaign's memberships only
for a server not yet counted today: counting a campaign of 100,000 decodes every stored membership (1.4 to 3.7 s of
the event loop), and the pass runs after start-up and every hour, while the store keeps only a day's first count."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.models import MembershipSnapshot, PatronStatus
from bot.guild_admin.stats import DailyCounts
from bot.store import Store

G1, G2 = 101, 102


class CountingStore(Store):
    """The real store, noting how often a count walks a campaign's memberships."""

    walks = 0

    async def memberships_to_count(
        self, campaign_id: str | None, chunk: int = 1000
    ) -> AsyncIterator[MembershipSnapshot]:
        self.walks += 1
        async for membership in super().memberships_to_count(campaign_id, chunk):
            yield membership


class Servers:
    async def guild_ids(self) -> list[int]:
        return [G1, G2]


@pytest.fixture
async def store(tmp_path):
    opened = await CountingStore.open(tmp_path / "bot.sqlite3")
    yield opened
    await opened.close()


async def test_a_server_counted_today_is_passed_over_until_the_next_day(store):
    now = [datetime(2026, 12, 1, 9, tzinfo=UTC)]
    active = [MembershipSnapshot(f"m{i}", "c1", f"p{i}", patron_status=PatronStatus.ACTIVE) for i in (1, 2)]
    await store.save_memberships(active, campaign_id="c1")
    await store.save_link(7001, "p1", G1, "oauth")

    async def campaign_of(_guild_id: int) -> str:
        return "c1"

    counts = DailyCounts(store, Servers(), campaign_of, lambda: now[0])  # type: ignore[arg-type]
    assert await counts.take_due() == [G1, G2] and store.walks == 2
    for hour in range(1, 4):  # the hourly passes of the same day
        now[0] += timedelta(hours=1)
        assert await counts.take_due() == [] and store.walks == 2, hour
    totals = [(await store.day_counts(guild, now[0].date()))[0].total for guild in (G1, G2)]
    assert [(t.patrons, t.linked) for t in totals if t] == [(2, 1), (2, 1)]
    now[0] += timedelta(days=1)
    assert await counts.take_due() == [G1, G2] and store.walks == 4, "the next day counts again"
