"""`/patreon-admin disconnect` (issue 10, item 2): the webhook deleted at Patreon, the creator tokens forgotten, roles
no longer managed but kept until the admin takes them back; Patreon unreachable still disconnects; nobody else's
server is touched; a delivery to a disconnected campaign's URL is refused before it is read."""

from bot.store.campaigns import campaign_token_subject
from fakes.world import SEED, page_text
from tests.e2e.connect_world import EVE, OTHER, connect, connect_button, hooks_at, no_env_world
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin


async def connected_with_alice(tmp_path):
    world = await no_env_world(tmp_path)
    status, html = await connect(world, SEED.owner_id, "creator", world.patreon.owner_id)
    assert status == 200, page_text(html)
    await world.link(SEED.alice)
    await wait_for(lambda: SEED.gold_role in world.roles_of(SEED.alice))
    return world


async def test_disconnect_deletes_the_webhook_forgets_the_tokens_and_keeps_the_roles(tmp_path):
    world = await connected_with_alice(tmp_path)
    try:
        store = world.bot.services.store
        campaign_a = world.patreon.campaign.id
        (hook,) = hooks_at(world, campaign_a)
        text = await admin(world, ["disconnect"])
        assert f"no longer follows campaign {campaign_a}" in text and "webhook at Patreon is deleted" in text
        assert "take_back_roles:True" in text, "the reply offers the final sync"
        assert hooks_at(world, campaign_a) == []
        assert await store.guild_binding(SEED.guild_id) is None
        assert await store.get_campaign(campaign_a) is None
        assert await store.get_tokens(campaign_token_subject(campaign_a)) is None
        assert SEED.gold_role in world.roles_of(SEED.alice), "roles the bot gave stay"

        # Patreon keeps sending to the URL (as a lingering hook would): refused before parsing, nothing applied.
        body = world.patreon.render_member_webhook_body("members:pledge:delete", "p-alice", campaign_a)
        status, _ = await world.patreon.send_webhook(
            "members:pledge:delete", None, uri=hook.uri, body_override=body, secret=hook.secret
        )
        assert status == 401

        text = await admin(world, ["disconnect"], {"take_back_roles": True})
        assert "Took back 1 role(s)" in text, text
        await wait_for(lambda: SEED.gold_role not in world.roles_of(SEED.alice))
        assert SEED.vip_role in world.roles_of(SEED.alice), "a hand-given role stays"
    finally:
        await world.close()


async def test_disconnect_while_patreon_is_unreachable_still_disconnects_here(tmp_path):
    world = await connected_with_alice(tmp_path)
    try:
        campaign_a = world.patreon.campaign.id
        world.patreon.fail_next(r"/webhooks", status=503, count=50)
        text = await admin(world, ["disconnect"])
        assert "may linger" in text, text
        assert await world.bot.services.store.guild_binding(SEED.guild_id) is None
        (hook,) = hooks_at(world, campaign_a)
        for _ in range(3):  # the lingering hook's deliveries are refused, and Patreon pauses it
            await world.patreon.deliver_event("members:update", "p-alice", campaign_id=campaign_a)
        assert hook.paused and hook.num_consecutive_times_failed == 3
        assert SEED.gold_role in world.roles_of(SEED.alice)
    finally:
        await world.close()


async def test_disconnect_in_another_server_touches_nothing_here(tmp_path):
    """Eve's server follows nothing: her disconnect can't reach the owner's binding. With both servers on one
    campaign, one server leaving keeps the campaign, its tokens and its webhook for the other."""
    world = await connected_with_alice(tmp_path)
    try:
        store = world.bot.services.store
        campaign_a = world.patreon.campaign.id
        text = await admin(world, ["disconnect"], {}, EVE, OTHER)
        assert "isn't connected" in text
        assert (await store.guild_binding(SEED.guild_id)).campaign_id == campaign_a

        status, _ = await connect(world, EVE, "eve", world.patreon.owner_id, OTHER)  # the creator approves
        assert status == 200
        text = await admin(world, ["disconnect"], {}, EVE, OTHER)
        assert "stays connected for 1 other server" in text, text
        assert (await store.guild_binding(SEED.guild_id)).campaign_id == campaign_a
        assert len(hooks_at(world, campaign_a)) == 1
        assert await store.get_tokens(campaign_token_subject(campaign_a)) is not None
    finally:
        await world.close()


async def test_a_manage_roles_moderator_can_not_disconnect(tmp_path):
    world = await connected_with_alice(tmp_path)
    try:
        world.guild.add_role(730000000000000090, "Staff", position=20, permissions=1 << 28)
        world.guild.add_member(750000000000000091, username="mod", roles=[730000000000000090])
        text = await admin(world, ["disconnect"], {}, 750000000000000091)
        assert "Manage Server" in text
        assert await world.bot.services.store.guild_binding(SEED.guild_id) is not None
        _, url = await connect_button(world, 750000000000000091)
        assert url == ""
    finally:
        await world.close()
