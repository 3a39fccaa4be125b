"""The store's side of abandoned campaign pickers (issue 10 leftovers, item 2): a pending creator pair is named
with its attempt's end, and `forget_pending_connects` deletes only the ended ones (and any whose name tells no end,
written before names carried it), never another subject's pair."""

from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.models import TokenPair
from bot.store import CREATOR_SUBJECT, Store
from bot.store.campaigns import campaign_token_subject, pending_connect_subject

T0 = datetime(2026, 12, 1, 12, tzinfo=UTC)
PAIR = TokenPair("access", "refresh", T0 + timedelta(days=30))


@pytest.fixture
async def store(tmp_path):
    opened = await Store.open(tmp_path / "bot.sqlite3")
    yield opened
    await opened.close()


async def test_only_ended_attempts_pairs_are_forgotten(store):
    ended = pending_connect_subject("n-old", T0 - timedelta(seconds=1))
    open_ = pending_connect_subject("n-open", T0 + timedelta(minutes=10))
    legacy = "connect-pending:n-legacy"  # named before the end rode in the name
    for subject in (ended, open_, legacy, CREATOR_SUBJECT, campaign_token_subject("9100001")):
        await store.save_tokens(subject, PAIR)

    assert await store.forget_pending_connects(T0) == 2
    assert await store.get_tokens(ended) is None and await store.get_tokens(legacy) is None
    assert await store.get_tokens(open_) == PAIR, "a picker still open keeps its pair"
    assert await store.get_tokens(CREATOR_SUBJECT) == PAIR and await store.get_tokens(campaign_token_subject("9100001"))
    assert await store.forget_pending_connects(T0) == 0
    assert await store.forget_pending_connects(T0 + timedelta(minutes=10)) == 1
