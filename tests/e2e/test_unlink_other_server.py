"""An admin's `unlink-user` never reaches past their own server (review 2, R3), against the real bot and the fakes.

A patron's own link counts in every server, whichever server's `/patreon link` button they used, so unlinking it
takes back the roles it gave everywhere; the invoker's rank is known only in their own server. Eve owns the second
server of the creator's (a plain member of the creator's own): she can't unlink Alice while the bot gives Alice Gold
in the creator's server (Alice can), but with roles only in Eve's server the link is still Eve's to remove.
"""

from fakes.world import SEED
from tests.e2e.connect_world import link_in
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin
from tests.e2e.test_trust_servers import EVE, OTHER, OTHER_GOLD, roles_in, two_servers  # noqa: F401  (fixture)

REFUSED = "❌ " + (
    "That member linked their own Patreon account and has roles from it in another server, so only they can unlink "
    "it, with `/patreon unlink`."
)


async def test_eve_cannot_unlink_a_patron_who_linked_from_her_server(two_servers):  # noqa: F811
    world = two_servers
    world.discord.guild(OTHER).add_member(SEED.alice, username="alice")
    status, _ = await link_in(world, OTHER, SEED.alice, "alice", "p-alice")  # Alice signs in from Eve's server
    assert status == 200
    await wait_for(lambda: SEED.gold_role in roles_in(world, SEED.guild_id, SEED.alice), timeout=10)
    await wait_for(lambda: OTHER_GOLD in roles_in(world, OTHER, SEED.alice), timeout=10)

    assert (await admin(world, ["unlink-user"], {"member": SEED.alice}, EVE, OTHER)).strip() == REFUSED
    assert (await world.store.get_link_by_discord(SEED.alice)) is not None, "the link stays"
    assert SEED.gold_role in roles_in(world, SEED.guild_id, SEED.alice), "Alice still pays for Gold"
    assert OTHER_GOLD in roles_in(world, OTHER, SEED.alice)


async def test_an_own_link_with_roles_only_here_is_still_the_admins_to_remove(two_servers):  # noqa: F811
    world = two_servers
    # Alice left the creator's server and signs in from Eve's: the bot gives her nothing anywhere else.
    world.guild.remove_member(SEED.alice)
    world.discord.guild(OTHER).add_member(SEED.alice, username="alice")
    status, _ = await link_in(world, OTHER, SEED.alice, "alice", "p-alice")
    assert status == 200
    await wait_for(lambda: OTHER_GOLD in roles_in(world, OTHER, SEED.alice), timeout=10)

    text = await admin(world, ["unlink-user"], {"member": SEED.alice}, EVE, OTHER)
    assert "Unlinked" in text and "@Eve Gold" in text
    assert await world.store.get_link_by_discord(SEED.alice) is None
    assert OTHER_GOLD not in roles_in(world, OTHER, SEED.alice)
