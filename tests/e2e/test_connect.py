"""`/patreon-admin connect` (issue 10, item 1) against the real bot and the fakes, in a world whose .env has no
campaign: the owner connects, the creator approves on (fake) Patreon, the token pair is stored, the server bound,
the tiers read and the webhook registered through the API with the secret Patreon returned."""

from urllib.parse import parse_qs, urlsplit

from bot.store.campaigns import campaign_token_subject
from fakes.patreon import CREATOR_SCOPES
from fakes.world import SEED, page_text
from tests.e2e.connect_world import (
    CAMPAIGN_B,
    browser,
    connect,
    connect_button,
    hooks_at,
    no_env_world,
    picker,
)
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin


async def test_the_owner_connects_the_campaign_and_the_webhook_is_registered(tmp_path):
    world = await no_env_world(tmp_path)
    try:
        store = world.bot.services.store
        campaign_a = world.patreon.campaign.id
        assert await store.guild_binding(SEED.guild_id) is None
        check = await admin(world, ["check"])
        assert "doesn't follow a Patreon campaign yet" in check, check

        status, html = await connect(world, SEED.owner_id, "creator", world.patreon.owner_id)
        text = page_text(html)
        assert status == 200, text
        assert "Creator's Server is connected to" in text and f"campaign {campaign_a}" in text, text

        binding = await store.guild_binding(SEED.guild_id)
        assert (binding.campaign_id, binding.bound_by) == (campaign_a, SEED.owner_id)
        assert await store.get_tokens(campaign_token_subject(campaign_a)) is not None
        (hook,) = hooks_at(world, campaign_a)
        members = ("members:create", "members:update", "members:delete")
        assert sorted(hook.triggers) == sorted([*members, *(m.replace(":", ":pledge:") for m in members)])
        record = await store.get_campaign(campaign_a)
        assert (record.webhook_id, record.webhook_secret) == (hook.id, hook.secret)
        assert {tier.id for tier in (await store.get_tiers(campaign_a)).values()} >= {SEED.gold_tier}

        # A patron links and gets the role; a pledge webhook reaches the bot, signed with the registered secret.
        status, _ = await world.link(SEED.alice)
        assert status == 200
        await wait_for(lambda: SEED.gold_role in world.roles_of(SEED.alice))
        deliveries = await world.patreon.deliver_event("members:pledge:update", "p-alice", campaign_id=campaign_a)
        assert [d.status for d in deliveries if d.webhook_id == hook.id] == [202]
        assert "✅ Patreon's webhook is active (0 failed deliveries in a row)." in await admin(world, ["check"])
    finally:
        await world.close()


async def test_connecting_again_keeps_the_one_webhook(tmp_path):
    """A second connect of the same campaign (a reconnect) finds Patreon's hook for that URL and keeps it."""
    world = await no_env_world(tmp_path)
    try:
        campaign_a = world.patreon.campaign.id
        for _ in range(2):
            status, html = await connect(world, SEED.owner_id, "creator", world.patreon.owner_id)
            assert status == 200, page_text(html)
        (hook,) = hooks_at(world, campaign_a)
        record = await world.bot.services.store.get_campaign(campaign_a)
        assert record.webhook_id == hook.id
    finally:
        await world.close()


async def test_a_creator_with_two_campaigns_picks_one_on_a_single_use_form(tmp_path):
    world = await no_env_world(tmp_path)
    try:
        second = world.patreon.add_campaign("9100002", "p-eve")
        second.add_tier("9200002", "Podcast tier", 300)
        _, url = await connect_button(world, SEED.owner_id)
        world.patreon.approve_next_as("p-eve")
        own = browser(world, "creator")
        status, html = await own.open(url)
        assert status == 200
        action, fields, offered = picker(html)
        assert sorted(offered) == [CAMPAIGN_B, "9100002"]
        assert "Creator&#x27;s Server" in html or "Creator's Server" in page_text(html)

        status, html = await own.post_form(world.bot_url + action, {**fields, "campaign": "9100002"})
        assert status == 200, page_text(html)
        assert "campaign 9100002" in page_text(html)
        assert (await world.bot.services.store.guild_binding(SEED.guild_id)).campaign_id == "9100002"
        assert len(hooks_at(world, "9100002")) == 1 and hooks_at(world, CAMPAIGN_B) == []

        # The same form again (replayed, or another campaign picked with it) binds nothing more.
        status, html = await own.post_form(world.bot_url + action, {**fields, "campaign": CAMPAIGN_B})
        assert status == 400 and "already" in page_text(html)
        assert (await world.bot.services.store.guild_binding(SEED.guild_id)).campaign_id == "9100002"
        assert hooks_at(world, CAMPAIGN_B) == []
    finally:
        await world.close()


async def test_a_picked_campaign_must_be_one_offered(tmp_path):
    """The pick token lists what Patreon offered: a campaign id typed into the form is refused."""
    world = await no_env_world(tmp_path)
    try:
        world.patreon.add_campaign("9100002", "p-eve")
        _, url = await connect_button(world, SEED.owner_id)
        world.patreon.approve_next_as("p-eve")
        own = browser(world, "creator")
        _, html = await own.open(url)
        action, fields, _ = picker(html)
        status, html = await own.post_form(world.bot_url + action, {**fields, "campaign": world.patreon.campaign.id})
        assert status == 400 and "wasn't one of the choices" in page_text(html)
        assert await world.bot.services.store.guild_binding(SEED.guild_id) is None
    finally:
        await world.close()


async def test_the_creator_scopes_are_asked_and_no_email(tmp_path):
    world = await no_env_world(tmp_path)
    try:
        _, url = await connect_button(world, SEED.owner_id)
        where = await browser(world, "creator").url_before(url, world.patreon.base_url)
        scopes = parse_qs(urlsplit(where).query)["scope"][0].split()
        assert scopes == list(CREATOR_SCOPES) and not any("email" in scope for scope in scopes)
    finally:
        await world.close()
