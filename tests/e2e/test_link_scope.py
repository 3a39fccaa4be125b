"""A patron's own commands say nothing about the campaign where the server doesn't act for it (issue 8, item 1
follow-up), and a link made by hand elsewhere isn't shown as if it applied here. The real bot against the fakes.

A server that doesn't take part (bot/sync/participation.py) must not become a place where a link starts: the link
would post the patron's Patreon name and the welcome into that server's channels. A button made there before the
server was turned off must not finish either, at any step.
"""

import pytest

from bot.domain.guild_settings import GuildSettings
from bot.store import Store
from fakes.world import SEED, FakeWorld, page_text
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin
from tests.e2e.test_link_identity import nothing_stored_for
from tests.e2e.test_linking import patreon_authorize_url
from tests.e2e.test_trust_servers import EVE, OTHER, OTHER_GOLD, OTHER_LOG, two_servers  # noqa: F401

NOT_HERE = "This server doesn't use the bot for Patreon roles"


@pytest.fixture
async def eves_old_server(tmp_path):
    """Eve's server had the bot set up (turned on, Gold mapped, a log channel, welcomes) before the creator listed
    only their own server in ALLOWED_GUILD_IDS; Alice, a Gold patron, is a member there too."""
    world = await FakeWorld(tmp_path / "bot.sqlite3").start(start_bot=False)
    other = world.discord.add_guild(OTHER, name="Eve's Server", owner_id=EVE)
    other.add_role(OTHER_GOLD, "Eve Gold", position=10)
    other.add_text_channel(OTHER_LOG, name="eve-log")
    other.add_member(EVE, username="eve")
    other.add_member(SEED.alice, username="alice")
    world.guild.add_member(EVE, username="eve")
    world.extra_environment["ALLOWED_GUILD_IDS"] = str(SEED.guild_id)
    await world.seed_store()
    store = await Store.open(world.db_path)
    try:
        await store.map_tier_role(OTHER, SEED.gold_tier, OTHER_GOLD)
        await store.save_settings(
            GuildSettings(guild_id=OTHER, enabled=True, log_channel_id=OTHER_LOG, welcome_on_link=True)
        )
    finally:
        await store.close()
    await world.start_bot()
    try:
        yield world
    finally:
        await world.close()


async def patron(world: FakeWorld, guild_id: int, user_id: int, name: str) -> tuple[str, list]:
    """Run `/patreon <name>` there as that user: the answer's text (once it has some) and its buttons."""
    interaction = await world.discord.invoke_slash(guild_id, user_id, "patreon", [name])
    await interaction.wait_response(timeout=5)
    await wait_for(lambda: bool(interaction.content))
    assert interaction.ephemeral, "a patron's answers are only for them"
    return interaction.content, interaction.link_buttons()


async def test_link_in_a_server_that_does_not_take_part_is_refused_and_posts_nothing_there(eves_old_server):
    world = eves_old_server
    text, buttons = await patron(world, OTHER, SEED.alice, "link")
    assert text == f"{NOT_HERE}, so there's nothing to link here."
    assert buttons == [], "no button to follow"
    await nothing_stored_for(world, SEED.alice)
    assert world.discord.messages(OTHER_LOG) == [], "no 'linked' line, no welcome, no Patreon name in Eve's server"

    # Alice links in the creator's server as ever; Eve's server still hears nothing of it.
    status, _ = await world.link(SEED.alice)
    assert status == 200 and SEED.gold_role in world.roles_of(SEED.alice)
    assert world.discord.messages(OTHER_LOG) == []


async def test_status_in_a_server_that_does_not_take_part_tells_nothing_about_the_patreon_account(eves_old_server):
    world = eves_old_server
    await world.link(SEED.alice)
    text, _ = await patron(world, OTHER, SEED.alice, "status")
    assert text == f"{NOT_HERE}."
    for leaked in ("p-alice", "Gold", "active_patron", "Paid"):
        assert leaked not in text


async def test_a_button_made_before_the_server_was_turned_off_links_nothing(world):
    url = await world.run_link_command(SEED.bob)
    assert "Saved" in await admin(world, ["settings"], {"enabled": False})
    before = list(world.discord.messages(SEED.log_channel))
    world.patreon.next_authorizing_user = "p-bob"
    status, html = await world.open_in_browser(url, as_user=SEED.bob)
    assert status == 403, page_text(html)
    assert NOT_HERE in page_text(html) and "Nothing was linked" in page_text(html)
    await nothing_stored_for(world, SEED.bob)
    assert world.discord.oauth.visits == [], "the browser wasn't sent on to Discord"
    assert world.discord.messages(SEED.log_channel) == before


async def test_a_server_turned_off_while_the_patron_is_at_patreon_links_nothing(world):
    world.patreon.next_authorizing_user = "p-bob"
    patreon_url = await patreon_authorize_url(world, SEED.bob)  # Discord has said it's Bob
    assert "Saved" in await admin(world, ["settings"], {"enabled": False})
    before = list(world.discord.messages(SEED.log_channel))
    status, html = await world.browser_of(SEED.bob).open(patreon_url)
    assert status == 403, page_text(html)
    assert NOT_HERE in page_text(html)
    await nothing_stored_for(world, SEED.bob)
    assert world.patreon.count("/api/oauth2/token") == 0, "the code was never exchanged"
    assert world.discord.messages(SEED.log_channel) == before


async def test_status_says_a_link_by_hand_in_another_server_gives_nothing_here(two_servers):  # noqa: F811
    world = two_servers
    await admin(world, ["link-user"], {"member": EVE, "patreon_user_id": "p-alice"}, EVE, OTHER)

    text, _ = await patron(world, SEED.guild_id, EVE, "status")
    assert "linked by hand in another server" in text and "gives no roles here" in text
    assert "/patreon link" in text, "how to make the link count everywhere"
    for leaked in ("p-alice", "tier: **Gold**", "active_patron"):
        assert leaked not in text, "the other server's admin's word is not shown as the patron's account"

    text, _ = await patron(world, OTHER, EVE, "status")  # where it was made, it is the link that counts
    assert "**Linked** to Patreon user `p-alice`" in text and "active_patron" in text


async def test_a_server_that_stopped_taking_part_is_not_told_whose_sign_in_replaced_its_link_by_hand(
    two_servers,  # noqa: F811
):
    world = two_servers
    await admin(world, ["link-user"], {"member": EVE, "patreon_user_id": "p-alice"}, EVE, OTHER)
    assert "Saved" in await admin(world, ["settings"], {"enabled": False}, EVE, OTHER)
    before = list(world.discord.messages(OTHER_LOG))

    status, _ = await world.link(SEED.alice)  # Alice's own sign-in replaces the link Eve made
    assert status == 200
    assert (await world.store.get_link_by_patreon("p-alice")).discord_user_id == SEED.alice
    await world.settle()
    assert world.discord.messages(OTHER_LOG) == before, "no line naming Alice's Patreon account in Eve's server"
    text, _ = await patron(world, OTHER, EVE, "unlink")
    assert "isn't linked" in text
