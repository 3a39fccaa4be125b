"""The Linked Roles rows: a durable push queue, tokens sealed like every other, a revoked user stopped alone."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

from bot.domain.models import TokenPair
from bot.store import Store
from bot.store.role_connections import discord_subject

NOW = datetime(2026, 6, 1, tzinfo=UTC)
PAIR = TokenPair(
    "discord-access-secret", "discord-refresh-secret", NOW + timedelta(days=7), ("role_connections.write",)
)


async def test_a_queued_push_survives_a_restart_and_a_newer_value_is_never_lost(tmp_path):
    path = tmp_path / "bot.sqlite3"
    store = await Store.open(path)
    await store.connect_role_connection(1, PAIR, NOW)
    assert await store.want_push(1, {"tier_rank": "2"}, "Alice", NOW)
    await store.close()
    store = await Store.open(path)  # a crash between queueing and pushing
    try:
        [due] = await store.due_pushes(NOW)
        assert due.wanted == {"tier_rank": "2"} and due.pushed is None
        await store.want_push(1, {"tier_rank": "1"}, "Alice", NOW)  # changed while the push was on the wire
        await store.push_done(1, {"tier_rank": "2"}, NOW)
        connection = await store.role_connection(1)
        assert connection is not None and connection.pushed == {"tier_rank": "2"}
        assert connection.wanted == {"tier_rank": "1"}  # still to go
        await store.push_done(1, {"tier_rank": "1"}, NOW)
        assert await store.due_pushes(NOW) == [] and await store.next_push_due() is None
    finally:
        await store.close()


async def test_the_discord_pair_is_sealed_and_a_revoked_user_stops_alone(tmp_path):
    path = tmp_path / "bot.sqlite3"
    store = await Store.open(path)
    try:
        await store.connect_role_connection(1, PAIR, NOW)
        await store.connect_role_connection(2, PAIR, NOW)
        assert await store.get_tokens(discord_subject(1)) == PAIR
        await store.want_push(1, {"tier_rank": "2"}, None, NOW)
        await store.want_push(2, {"tier_rank": "2"}, None, NOW)
        await store.revoke_role_connection(1, "401", NOW)
        assert await store.get_tokens(discord_subject(1)) is None
        assert not await store.want_push(1, {"tier_rank": "3"}, None, NOW)  # nothing queues for a revoked user
        assert [c.discord_user_id for c in await store.due_pushes(NOW)] == [2]
        await store.connect_role_connection(1, PAIR, NOW)  # connecting again lifts it
        assert not (await store.role_connection(1)).revoked
    finally:
        await store.close()
    raw = sqlite3.connect(path).execute("SELECT group_concat(access_token || refresh_token) FROM tokens").fetchone()
    assert "discord-access-secret" not in raw[0] and "discord-refresh-secret" not in raw[0]
