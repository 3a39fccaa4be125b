"""The real bot against fake Patreon documents seen in the wild: deleted accounts, v1 deliveries, blank identities."""

from __future__ import annotations

import logging

from bot.store import WEBHOOK_LAST_SEEN, patron_subject
from fakes.world import SEED, page_text
from tests.e2e.polling import wait_for
from tests.e2e.test_refresh import check_text


async def linked(world) -> None:
    """Alice (Gold) and Bob (Bronze) linked, and a first refresh has given them their roles."""
    store = world.bot.services.store
    await store.save_link(SEED.alice, "p-alice", SEED.guild_id, "oauth")
    await store.save_link(SEED.bob, "p-bob", SEED.guild_id, "oauth")
    report = await world.refresh("setup")
    assert report.ok, report.detail
    await wait_for(lambda: SEED.gold_role in world.roles_of(SEED.alice))
    await wait_for(lambda: SEED.bronze_role in world.roles_of(SEED.bob))


async def test_a_refresh_with_deleted_accounts_completes_removes_nothing_wrongly_and_check_says_so(world) -> None:
    await linked(world)
    world.patreon.add_user("p-erin", "Erin")
    world.patreon.set_membership("p-erin", "active_patron", tier_ids=[SEED.gold_tier])
    world.patreon.state.delete_account("p-erin")  # a stranger's deleted account: listed, counted, no user
    world.patreon.state.delete_account("p-bob")  # Bob's account is gone too, but his membership is still listed
    world.patreon.remove_membership("p-alice")  # a real departure the refresh must still act on
    report = await world.refresh("deleted accounts")
    assert report.ok, report.detail
    assert report.members_without_user == 1 and report.snapshots_forgotten == 1
    await wait_for(lambda: SEED.gold_role not in world.roles_of(SEED.alice))
    assert SEED.bronze_role in world.roles_of(SEED.bob)
    text = await check_text(world)
    assert "1 member(s) without a Patreon account (deleted) can't be linked" in text


async def test_a_v1_delivery_logs_one_warning_and_changes_nothing(world, caplog) -> None:
    await linked(world)
    world.patreon.remove_membership("p-alice")  # applied, this would take Alice's Gold
    world.discord.clear_calls()
    caplog.set_level(logging.INFO)
    first = await world.send_webhook("pledges:delete", "p-alice", uri=world.webhook_url)
    second = await world.send_webhook("pledges:update", "p-bob", uri=world.webhook_url)
    third = await world.send_webhook("pledges:delete", "p-alice", uri=world.webhook_url)
    assert [answer[0] for answer in (first, second, third)] == [200, 200, 200]
    legacy = [r for r in caplog.records if r.levelno >= logging.WARNING and "API v1" in r.getMessage()]
    assert [r.getMessage().split()[1] for r in legacy] == ["pledges:delete", "pledges:update"]  # once per trigger
    assert all("members:create" in r.getMessage() and "portal" in r.getMessage() for r in legacy)
    store = world.bot.services.store
    assert await store.webhook_event_counts() == {}
    assert await store.get_fact(WEBHOOK_LAST_SEEN) is None
    await world.settle()
    assert world.role_calls() == []
    assert SEED.gold_role in world.roles_of(SEED.alice)


async def test_a_sign_in_whose_identity_names_nobody_fails_clearly_and_stores_nothing(world) -> None:
    world.patreon.state.blank_identity("p-alice", "empty")
    status, html = await world.link(SEED.alice)
    assert status == 502
    assert "Patreon sent an answer the bot can't use" in page_text(html)
    store = world.bot.services.store
    assert await store.get_link_by_discord(SEED.alice) is None
    assert await store.get_link_by_patreon("") is None
    assert await store.get_tokens(patron_subject("")) is None
    assert world.role_calls(SEED.alice) == [] and SEED.gold_role not in world.roles_of(SEED.alice)
