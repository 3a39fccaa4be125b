"""An unlink is final for auto-match: neither a refresh nor a webhook links the pair again, until the user (OAuth)
or an admin links it on purpose."""

import asyncio

from fakes.world import SEED
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin


async def auto_linked_bob(world):
    """Auto-match is on and Bob connected Discord on Patreon: a refresh links him and gives Bronze."""
    await world.bot.services.admin.update_settings(SEED.guild_id, auto_match_discord=True)
    world.patreon.add_user("p-bob", "Bob", discord_id=SEED.bob)
    report = await world.refresh()
    assert report.auto_linked == 1
    link = await world.store.get_link_by_discord(SEED.bob)
    assert link is not None and link.source == "auto"
    assert world.roles_of(SEED.bob) == {SEED.bronze_role}
    return world


async def assert_stays_unlinked(world):
    """Neither path to auto-match links Bob again: a webhook for his membership, then a full refresh."""
    status, _ = await world.send_webhook("members:update", "p-bob")
    assert status == 202
    await world.settle()
    await asyncio.sleep(0.1)
    assert await world.store.get_link_by_discord(SEED.bob) is None, "a webhook undid the unlink"
    report = await world.refresh()
    assert report.ok and report.auto_linked == 0
    assert await world.store.get_link_by_discord(SEED.bob) is None, "a refresh undid the unlink"
    assert world.roles_of(SEED.bob) == set()


async def test_a_users_unlink_is_not_undone_by_auto_match(world):
    await auto_linked_bob(world)
    interaction = await world.discord.invoke_slash(SEED.guild_id, SEED.bob, "patreon", ["unlink"])
    await interaction.wait_response(timeout=5)
    await wait_for(lambda: "Unlinked" in (interaction.content or ""))
    await assert_stays_unlinked(world)
    # Linking again on purpose works, and lifts the opt-out.
    status, _ = await world.link(SEED.bob)
    assert status == 200
    link = await world.store.get_link_by_discord(SEED.bob)
    assert link is not None and link.source == "oauth"
    assert world.roles_of(SEED.bob) == {SEED.bronze_role}
    assert await world.store.auto_match_optouts() == set()


async def test_an_admins_unlink_is_not_undone_by_auto_match_even_after_a_link_by_hand(world):
    """A link by hand of the pair works, but leaves the opt-out: only the patron's own sign-in lifts it (a link by
    hand is its server's word, and another campaign's admin could use one to undo a patron's own unlink)."""
    await auto_linked_bob(world)
    text = await admin(world, ["unlink-user"], {"member": SEED.bob})
    assert "Unlinked" in text
    await assert_stays_unlinked(world)
    text = await admin(world, ["link-user"], {"member": SEED.bob, "patreon_user_id": "p-bob"})
    assert "roles are up to date" in text
    assert await world.store.auto_match_optouts() == {(SEED.bob, "p-bob")}
    await world.store.delete_link(SEED.bob)  # the link lost some other way: auto-match still leaves the pair
    assert (await world.refresh()).auto_linked == 0
    status, _ = await world.link(SEED.bob)  # his own sign-in lifts it
    assert status == 200 and await world.store.auto_match_optouts() == set()


async def test_an_opt_out_is_for_that_pair_only(world):
    await auto_linked_bob(world)
    await world.bot.services.linking.unlink(SEED.bob)
    assert await world.store.auto_match_optouts() == {(SEED.bob, "p-bob")}
    # Carol connected Discord on Patreon too, and never unlinked: she is matched as before.
    world.patreon.add_user("p-carol", "Carol", discord_id=SEED.carol)
    report = await world.refresh()
    assert report.auto_linked == 1
    carol = await world.store.get_link_by_discord(SEED.carol)
    assert carol is not None and carol.patreon_user_id == "p-carol"
    assert await world.store.get_link_by_discord(SEED.bob) is None
