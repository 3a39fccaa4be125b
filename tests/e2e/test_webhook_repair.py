"""Webhook health in `check` and `/patreon-admin webhook repair` (issue 10, item 5): a paused hook is unpaused (read
back) and Patreon re-sends what it queued; a hook Patreon lost is made again with a new secret; a Patreon failure
is "couldn't ask", never an error; the .env campaign's hand-made hook is not the bot's to repair."""

from datetime import UTC, datetime, timedelta

from fakes.world import SEED, FakeWorld, page_text
from tests.e2e.connect_world import connect, hooks_at, no_env_world
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin


async def connected(tmp_path) -> FakeWorld:
    world = await no_env_world(tmp_path)
    status, html = await connect(world, SEED.owner_id, "creator", world.patreon.owner_id)
    assert status == 200, page_text(html)
    await world.link(SEED.alice)
    await wait_for(lambda: SEED.gold_role in world.roles_of(SEED.alice))
    return world


async def test_a_paused_webhook_is_shown_and_unpaused_and_patreon_resends_its_queue(tmp_path):
    world = await connected(tmp_path)
    try:
        campaign_a = world.patreon.campaign.id
        (hook,) = hooks_at(world, campaign_a)
        correct_uri = hook.uri
        hook.uri = correct_uri.replace("/patreon/webhook/", "/patreon/nowhere/")  # deliveries fail: 404 at the bot
        for _ in range(3):
            await world.patreon.deliver_event("members:update", "p-alice", campaign_id=campaign_a)
        hook.uri = correct_uri
        assert hook.paused and hook.num_consecutive_times_failed == 3
        world.patreon.set_membership(
            "p-alice", patron_status="former_patron", tier_ids=[], last_charge_date=datetime.now(UTC) - timedelta(90)
        )
        (queued,) = await world.patreon.deliver_event("members:pledge:delete", "p-alice", campaign_id=campaign_a)
        assert queued.queued

        check = await admin(world, ["check"])
        assert "Patreon paused the webhook after 3 failed deliveries in a row" in check, check

        text = await admin(world, ["webhook", "repair"])
        assert "unpaused" in text, text
        await world.patreon.drain()
        assert not hook.paused
        await wait_for(lambda: SEED.gold_role not in world.roles_of(SEED.alice))
        assert "✅ Patreon's webhook is active (0 failed deliveries in a row)." in await admin(world, ["check"])
        assert "is fine" in await admin(world, ["webhook", "repair"])
    finally:
        await world.close()


async def test_a_webhook_patreon_lost_is_made_again_with_a_new_secret(tmp_path):
    world = await connected(tmp_path)
    try:
        campaign_a = world.patreon.campaign.id
        (old,) = hooks_at(world, campaign_a)
        del world.patreon.webhooks.hooks[old.id]
        assert "Patreon has no webhook for this campaign" in await admin(world, ["check"])

        text = await admin(world, ["webhook", "repair"])
        assert "a new one is registered" in text, text
        (new,) = hooks_at(world, campaign_a)
        assert new.id != old.id and new.secret != old.secret
        record = await world.bot.services.store.get_campaign(campaign_a)
        assert (record.webhook_id, record.webhook_secret) == (new.id, new.secret)
        (delivery,) = await world.patreon.deliver_event("members:update", "p-alice", campaign_id=campaign_a)
        assert delivery.status == 202
    finally:
        await world.close()


async def test_check_says_it_could_not_ask_when_patreon_fails(tmp_path):
    world = await connected(tmp_path)
    try:
        world.patreon.fail_next(r"/webhooks", status=500, count=20)
        check = await admin(world, ["check"])
        assert "Couldn't ask Patreon about the webhook just now." in check, check
        text = await admin(world, ["webhook", "repair"])
        assert "couldn't be asked" in text and "nothing was changed" in text
    finally:
        await world.close()


async def test_the_env_campaigns_hook_is_not_the_bots_to_repair(world):
    text = await admin(world, ["webhook", "repair"])
    assert "made by hand" in text
    assert len(world.patreon.webhooks.hooks) == 1, "nothing was created"
