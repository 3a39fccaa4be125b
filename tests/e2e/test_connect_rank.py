"""Who may connect a server that already follows a campaign, and the tokens of one attempt used in another
(issue 10 leftovers, item 4).

Which campaign a server follows decides whose patrons get every role its policy hands out: re-binding it takes
the old campaign's roles back at the next sync and gives the new one's. So, as for `link-user`, an admin with
Manage Server but below one of those roles may not connect it (the owner is exempt); a server with nothing
mapped hands out nothing, so any owner or Manage Server admin connects it. The attacker angles: a pick token of
one server's attempt posted from another server's attempt in another browser, and a pick token replayed.
"""


from bot.guild_admin.rank import InvokerRank
from fakes.world import SEED, FakeWorld, page_text
from tests.e2e.connect_world import (
    CAMPAIGN_B,
    EVE,
    MANAGE_GUILD,
    OTHER,
    browser,
    connect,
    connect_button,
    hooks_at,
    no_env_world,
    picker,
)

MANAGERS = 730000000000000095
MANAGER = 750000000000000095


def low_manager(world: FakeWorld) -> InvokerRank:
    """A Manage Server admin whose top role sits below the mapped Gold and Bronze roles, as the cog reads her."""
    world.guild.add_role(MANAGERS, "Managers", position=5, permissions=MANAGE_GUILD)
    world.guild.add_member(MANAGER, username="manager", roles=[MANAGERS])
    return InvokerRank(user_id=MANAGER, owner=False, roles_below=frozenset(), top_role_name="@Managers")


async def test_an_admin_below_the_mapped_roles_may_not_connect_a_server_another_admin_set_up(tmp_path):
    world = await no_env_world(tmp_path)
    try:
        status, _ = await connect(world, SEED.owner_id, "creator", world.patreon.owner_id)
        assert status == 200
        connections = world.bot.services.connections
        refusal = await connections.connect_refusal(SEED.guild_id, low_manager(world))
        assert refusal is not None and "@Gold Patron" in refusal and "@Bronze Patron" in refusal, refusal
        assert f"campaign {world.patreon.campaign.id} was connected here by <@{SEED.owner_id}>" in refusal
        assert refusal.count(".") == 1, "one sentence"

        above = InvokerRank(MANAGER, False, frozenset({SEED.gold_role, SEED.bronze_role, SEED.vip_role}), "@Head")
        assert await connections.connect_refusal(SEED.guild_id, above) is None
        owner = InvokerRank(SEED.owner_id, True, frozenset())
        assert await connections.connect_refusal(SEED.guild_id, owner) is None, "the owner is exempt"
        nobody_mapped = InvokerRank(EVE, False, frozenset(), "@everyone")
        assert await connections.connect_refusal(OTHER, nobody_mapped) is None, "nothing handed out there yet"
    finally:
        await world.close()


async def test_the_connect_command_refuses_an_admin_below_the_mapped_roles(tmp_path):
    world = await no_env_world(tmp_path)
    try:
        await connect(world, SEED.owner_id, "creator", world.patreon.owner_id)
        low_manager(world)
        interaction, url = await connect_button(world, MANAGER, bypass=True)
        assert url == "" and "change who gets" in (interaction.content or ""), interaction.content
    finally:
        await world.close()


async def test_a_pick_token_of_one_servers_attempt_binds_nothing_from_another_browser(tmp_path):
    """The owner's picker (his server, Eve approving her two campaigns) and Eve's own attempt in her server: Eve
    posts the owner's pick token from her browser, whose cookie holds her attempt's proof, not his. Refused, and
    neither server is bound; the owner's own pick then works, once."""
    world = await no_env_world(tmp_path)
    try:
        world.patreon.add_campaign("9100002", "p-eve")
        _, url = await connect_button(world, SEED.owner_id)
        world.patreon.approve_next_as("p-eve")
        status, html = await browser(world, "creator").open(url)
        assert status == 200
        action, owners_fields, _ = picker(html)

        _, url = await connect_button(world, EVE, OTHER)
        world.patreon.approve_next_as("p-eve")
        status, html = await browser(world, "eve").open(url)
        assert status == 200 and picker(html)
        status, html = await browser(world, "eve").post_form(
            world.bot_url + action, {**owners_fields, "campaign": CAMPAIGN_B}
        )
        assert status == 403 and "another browser" in page_text(html)
        store = world.bot.services.store
        assert await store.guild_binding(SEED.guild_id) is None and await store.guild_binding(OTHER) is None
        assert hooks_at(world, CAMPAIGN_B) == []

        form = {**owners_fields, "campaign": CAMPAIGN_B}
        status, html = await browser(world, "creator").post_form(world.bot_url + action, form)
        assert status == 200, page_text(html)
        assert (await store.guild_binding(SEED.guild_id)).campaign_id == CAMPAIGN_B
        status, html = await browser(world, "creator").post_form(world.bot_url + action, form)
        assert status == 400 and "already" in page_text(html), "a replayed pick binds nothing more"
        assert await store.guild_binding(OTHER) is None
    finally:
        await world.close()
