"""The `.env` campaign beside connect (issue 10, "Done when": .env import): the configured creator tokens are
imported at start-up as a campaign of source env followed by the creator's server; connecting that same campaign
is allowed (the page says the .env tokens can go), connecting another one from that server is refused."""

from fakes.world import SEED, page_text
from tests.e2e.connect_world import CAMPAIGN_B, connect, hooks_at
from tests.e2e.test_admin import admin


async def test_the_env_campaign_is_imported_and_can_be_connected_but_not_swapped(world):
    campaign_a = world.patreon.campaign.id
    world.patreon.add_creator("p-eve", "Eve", CAMPAIGN_B)
    store = world.bot.services.store
    record = await store.get_campaign(campaign_a)
    assert record is not None and record.source == "env"
    check = await admin(world, ["check"])
    assert f"It follows campaign {campaign_a}, from the bot's .env creator tokens." in check

    status, html = await connect(world, SEED.owner_id, "creator", "p-eve")
    assert status == 409 and "from the bot's .env settings" in page_text(html)
    assert await store.guild_binding(SEED.guild_id) is None and hooks_at(world, CAMPAIGN_B) == []

    status, html = await connect(world, SEED.owner_id, "creator", world.patreon.owner_id)
    assert status == 200 and "remove those tokens" in page_text(html), page_text(html)
    assert (await store.guild_binding(SEED.guild_id)).campaign_id == campaign_a
    (hook,) = hooks_at(world, campaign_a)
    (delivery, *_) = [
        d for d in await world.patreon.deliver_event("members:update", "p-alice") if d.webhook_id == hook.id
    ]
    assert delivery.status == 202
    status, _ = await world.send_webhook("members:update", "p-alice")
    assert status == 202, "the hand-made hook on the legacy URL still works"
