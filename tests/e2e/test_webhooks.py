"""Webhooks end to end: fake Patreon delivers signed events to the real bot, roles change in the fake guild."""

import asyncio
from datetime import UTC, datetime, timedelta

from bot.store import WEBHOOK_LAST_SEEN
from fakes.world import SEED
from tests.e2e.polling import wait_for


async def test_a_pledge_webhook_grants_the_role_within_a_second(world):
    await world.link(SEED.dave)  # a free member, linked, no role yet
    assert world.roles_of(SEED.dave) == set()
    world.patreon.set_membership("p-dave", "active_patron", tier_ids=[SEED.gold_tier])
    status, _ = await world.send_webhook("members:pledge:create", "p-dave")
    assert 200 <= status < 300
    took = await wait_for(lambda: SEED.gold_role in world.roles_of(SEED.dave), timeout=1.0)
    assert took < 1.0
    assert world.roles_of(SEED.dave) == {SEED.gold_role}
    calls = world.role_calls(SEED.dave)
    assert len(calls) == 1 and "webhook members:pledge:create" in (calls[0].reason or "")
    assert await world.store.get_fact(WEBHOOK_LAST_SEEN)
    await wait_for(lambda: any("Gave @Gold Patron" in m["content"] for m in world.discord.messages(SEED.log_channel)))


async def test_a_pledge_delete_removes_only_granted_roles_once_the_paid_period_ends(world):
    await world.link(SEED.alice)
    assert world.roles_of(SEED.alice) == {SEED.vip_role, SEED.gold_role}
    paid_until = datetime.now(UTC) + timedelta(days=20)
    world.patreon.set_membership("p-alice", "former_patron", tier_ids=[], next_charge_date=paid_until)
    status, _ = await world.send_webhook("members:pledge:delete", "p-alice")
    assert status == 202
    await world.settle()
    assert world.roles_of(SEED.alice) == {SEED.vip_role, SEED.gold_role}, "paid-through: roles stay for now"
    snapshot = await world.store.get_membership("p-alice")
    assert snapshot is not None and snapshot.patron_status == "former_patron"

    world.clock.advance(days=21)
    status, _ = await world.send_webhook("members:pledge:delete", "p-alice")
    assert status == 202
    await wait_for(lambda: SEED.gold_role not in world.roles_of(SEED.alice))
    assert world.roles_of(SEED.alice) == {SEED.vip_role}, "the hand-given VIP role survives"
    assert await world.store.granted_roles(SEED.guild_id, SEED.alice) == frozenset()


async def test_members_delete_removes_the_membership_and_the_role(world):
    await world.link(SEED.bob)
    assert world.roles_of(SEED.bob) == {SEED.bronze_role}
    world.patreon.remove_membership("p-bob")
    status, _ = await world.send_webhook("members:delete", "p-bob")
    assert status == 202
    await wait_for(lambda: world.roles_of(SEED.bob) == set())
    assert await world.store.get_membership("p-bob") is None


async def test_duplicate_deliveries_cost_one_discord_call(world):
    await world.link(SEED.dave)
    world.patreon.set_membership("p-dave", "active_patron", tier_ids=[SEED.bronze_tier])
    world.discord.clear_calls()
    results = await asyncio.gather(*(world.send_webhook("members:pledge:create", "p-dave") for _ in range(5)))
    assert all(status == 202 for status, _ in results)
    await world.settle()
    assert world.roles_of(SEED.dave) == {SEED.bronze_role}
    assert len(world.role_calls(SEED.dave)) == 1
    counts = await world.store.webhook_event_counts()
    assert counts.get("done") == 5 and not counts.get("pending")


async def test_patreon_down_keeps_the_event_pending_and_removes_nothing(world):
    await world.link(SEED.bob)
    world.discord.clear_calls()
    world.patreon.set_membership("p-bob", "former_patron", tier_ids=[])
    world.patreon.fail_next(r"/members/", status=503, count=1000)
    status, _ = await world.send_webhook("members:pledge:delete", "p-bob")
    assert status == 202, "Patreon is answered at once even though the re-fetch fails"

    async def refetch_failed() -> bool:  # the applier tried (and its client retried), and put the event back
        events = await world.store.due_webhook_events(datetime.now(UTC) + timedelta(days=1))
        return len(events) == 1 and events[0].attempts >= 1

    await wait_for(refetch_failed)
    await world.settle()
    assert world.roles_of(SEED.bob) == {SEED.bronze_role}
    assert world.role_calls(SEED.bob) == []
    assert (await world.store.webhook_event_counts()).get("pending") == 1
    world.patreon.faults.clear()
    world.bot.services.webhook_applier.wake()
    await wait_for(lambda: world.roles_of(SEED.bob) == set(), timeout=5)


async def test_send_test_delivery_is_accepted_and_changes_nothing(world):
    await world.link(SEED.alice)
    world.discord.clear_calls()
    body = {"data": {"id": None, "type": "member", "attributes": {"pledge_amount_cents": 100}}, "included": []}
    status, text = await world.patreon.send_webhook("members:create", None, body_override=body)
    assert status == 200 and "ignored" in text
    await world.settle()
    assert world.role_calls(SEED.alice) == []
    assert await world.store.get_fact(WEBHOOK_LAST_SEEN)


async def test_auto_match_links_a_member_whose_discord_is_connected_on_patreon(world):
    await world.bot.services.admin.update_settings(SEED.guild_id, auto_match_discord=True)
    world.patreon.add_user("p-bob", "Bob", discord_id=SEED.bob)
    world.patreon.set_membership("p-bob", "active_patron", tier_ids=[SEED.bronze_tier])
    status, _ = await world.send_webhook("members:update", "p-bob")
    assert status == 202
    await wait_for(lambda: world.roles_of(SEED.bob) == {SEED.bronze_role})
    link = await world.store.get_link_by_discord(SEED.bob)
    assert link is not None and link.source == "auto" and link.patreon_user_id == "p-bob"


async def test_auto_match_never_overrides_an_existing_link(world):
    await world.link(SEED.alice)
    await world.bot.services.admin.update_settings(SEED.guild_id, auto_match_discord=True)
    world.patreon.add_user("p-bob", "Bob", discord_id=SEED.alice)  # Bob's Patreon claims Alice's Discord
    world.patreon.set_membership("p-bob", "active_patron", tier_ids=[SEED.bronze_tier])
    await world.send_webhook("members:update", "p-bob")
    await world.settle()
    link = await world.store.get_link_by_discord(SEED.alice)
    assert link is not None and link.patreon_user_id == "p-alice" and link.source == "oauth"
    assert await world.store.get_link_by_patreon("p-bob") is None
    assert world.roles_of(SEED.alice) == {SEED.vip_role, SEED.gold_role}
