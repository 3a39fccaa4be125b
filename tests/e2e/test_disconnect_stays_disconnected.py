"""A server that ran `/patreon-admin disconnect` stays disconnected (issue 10 leftovers, item 1).

The `.env` campaign is followed by whichever servers its ownership rule admits at run time (ALLOWED_GUILD_IDS, or
the bot being in one server not bound to a connected campaign). A disconnect used to delete the server's binding
and nothing else, so the rule could take the server straight back: the creator's own server, connected to the
`.env` campaign and disconnected, went on following it; Eve's server, once connected to her campaign B and
disconnected, followed the `.env` creator's campaign as soon as the bot was in no other unbound server. Nobody may
get roles from a campaign the server didn't choose: a disconnected server follows nothing until it connects again.
"""

from bot.domain.guild_settings import GuildSettings
from fakes.world import SEED, FakeWorld, page_text
from tests.e2e.backend import postgres_server
from tests.e2e.connect_world import B_ROLE, B_TIER, BEN, CAMPAIGN_B, EVE, OTHER, OTHER_LOG, connect
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin
from tests.e2e.test_trust_servers import first_line

ACTS = "✅ This server acts for the Patreon campaign."
FOLLOWS_NONE = "doesn't follow a Patreon campaign yet"


async def env_world_with_eve(tmp_path) -> FakeWorld:
    """The seeded world with its `.env` campaign A, plus Eve's server and her campaign B (tier, patron Ben); no
    ALLOWED_GUILD_IDS, so the `.env` campaign goes by the one-server rule."""
    world = FakeWorld(tmp_path / "bot.sqlite3", postgres_server=postgres_server())
    await world.start(start_bot=False)
    other = world.discord.add_guild(OTHER, name="Eve's Server", owner_id=EVE)
    other.add_role(B_ROLE, "Eve Patron", position=10)
    other.add_member(EVE, username="eve")
    other.add_text_channel(OTHER_LOG, name="patreon-log")
    other.add_member(SEED.alice, username="alice")
    for guild in (other, world.guild):
        guild.add_member(BEN, username="ben")
    campaign = world.patreon.add_creator("p-eve", "Eve", CAMPAIGN_B)
    campaign.add_tier(B_TIER, "Eve's tier", 700)
    campaign.add_user("p-ben", "Ben", None)
    campaign.set_membership("p-ben", patron_status="active_patron", tier_ids=[B_TIER])
    await world.seed_store()
    store = await world.open_store()
    try:  # Eve's server turned on and mapping A's Gold tier to her role: if it ever followed A, Alice would get it
        await store.save_settings(GuildSettings(guild_id=OTHER, enabled=True, log_channel_id=OTHER_LOG))
        await store.map_tier_role(OTHER, SEED.gold_tier, B_ROLE)
    finally:
        await store.close()
    await world.start_bot()
    return world


async def test_the_creators_server_disconnected_from_the_env_campaign_stays_disconnected(world):
    await world.link(SEED.alice)
    await wait_for(lambda: SEED.gold_role in world.roles_of(SEED.alice))
    status, html = await connect(world, SEED.owner_id, "creator", world.patreon.owner_id)
    assert status == 200, page_text(html)

    text = await admin(world, ["disconnect"])
    assert f"no longer follows campaign {world.patreon.campaign.id}" in text, text
    check = await admin(world, ["check"])
    assert FOLLOWS_NONE in check, "the .env campaign's one-server rule must not take the server back"

    text = await admin(world, ["disconnect"], {"take_back_roles": True})
    assert "Took back 1 role(s)" in text, text
    await wait_for(lambda: SEED.gold_role not in world.roles_of(SEED.alice))
    status, _ = await world.send_webhook("members:update", "p-alice")  # the .env campaign's hand-made hook
    assert status == 202
    await world.settle()
    assert SEED.gold_role not in world.roles_of(SEED.alice), "a delivery for the .env campaign gives nothing here"

    await world.stop_bot()
    await world.start_bot()
    assert FOLLOWS_NONE in await admin(world, ["check"]), "a restart doesn't bring the .env campaign back"

    status, html = await connect(world, SEED.owner_id, "creator", world.patreon.owner_id)
    assert status == 200, page_text(html)
    assert first_line(await admin(world, ["check"])) == ACTS, "connecting again is how it comes back"
    assert (await world.bot.services.store.guild_binding(SEED.guild_id)) is not None
    await wait_for(lambda: SEED.gold_role in world.roles_of(SEED.alice))


async def test_eves_disconnect_never_hands_her_server_the_env_campaign(tmp_path):
    """Eve connects her campaign B, then disconnects: the creator's server keeps acting for the `.env` campaign
    (before, her unbound server counted as a second candidate and stopped it), and once the bot is in no other
    server her server still follows nothing (before, the one-server rule handed it campaign A's patrons)."""
    world = await env_world_with_eve(tmp_path)
    try:
        status, html = await connect(world, EVE, "eve", "p-eve", OTHER)
        assert status == 200, page_text(html)
        assert first_line(await admin(world, ["check"])) == ACTS
        text = await admin(world, ["disconnect"], {}, EVE, OTHER)
        assert f"no longer follows campaign {CAMPAIGN_B}" in text, text
        assert FOLLOWS_NONE in await admin(world, ["check"], {}, EVE, OTHER)
        assert first_line(await admin(world, ["check"])) == ACTS, "Eve's disconnect doesn't stop the creator's"

        await world.link(SEED.alice)  # a patron of A, in both servers
        await wait_for(lambda: SEED.gold_role in world.roles_of(SEED.alice))
        await world.stop_bot()
        del world.discord.guilds[SEED.guild_id]  # the creator's server removed the bot while it was away
        await world.start_bot()
        check = await admin(world, ["check"], {}, EVE, OTHER)
        assert FOLLOWS_NONE in check, "alone now, Eve's disconnected server still doesn't follow the .env campaign"
        await world.refresh()
        await world.settle()
        assert B_ROLE not in set(world.discord.guild(OTHER).member(SEED.alice).role_ids)
    finally:
        await world.close()
