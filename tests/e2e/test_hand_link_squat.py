"""A link by hand from another server can't squat a patron (review 5, R5-5), against the real bot and the fakes.

A link by hand is only its server's word, and counts only there. Eve's server follows her own campaign B; Bob pays
Bronze in the creator's campaign A and also sits in Eve's server. Eve hand-links Bob's Discord account to one of
B's patrons: that must not lock A's admins out of linking their own patron for good. Once Patreon shows Bob's
Patreon account connected to his Discord (Patreon's own word, which auto-match trusts), A's `link-user` replaces
Eve's link; Eve can't do the same to A's link, and her server is told nothing about A's patron. Between two servers
of one campaign the same holds on the Patreon side (a link by hand of A's patron to a sock).
"""

import pytest

from bot.guild_admin.hand_links import FOREIGN_HAND_LINK
from fakes.world import SEED, FakeWorld
from tests.e2e.connect_world import EVE, OTHER, OTHER_LOG, connect_both, no_env_world
from tests.e2e.test_admin import admin
from tests.e2e.test_trust_servers import EVE as SECOND_ADMIN
from tests.e2e.test_trust_servers import OTHER as SECOND
from tests.e2e.test_trust_servers import OTHER_GOLD, roles_in, world_with_other_server
from tests.e2e.test_trust_servers import OTHER_LOG as SECOND_LOG


@pytest.fixture
async def two_campaigns(tmp_path):
    world = await no_env_world(tmp_path)
    try:
        await connect_both(world)
        world.discord.guild(OTHER).add_member(SEED.bob, username="bob")
        await world.refresh()
        yield world
    finally:
        await world.close()


@pytest.fixture
async def one_campaign_two_servers(tmp_path):
    """Both servers are the creator's (ALLOWED_GUILD_IDS); the second one's admin maps Gold to its own role."""
    world = await world_with_other_server(tmp_path, allowed=(SEED.guild_id, SECOND))
    try:
        options = {"enabled": True, "log_channel": SECOND_LOG}
        assert "Saved" in await admin(world, ["settings"], options, SECOND_ADMIN, SECOND)
        options = {"tier": SEED.gold_tier, "role": OTHER_GOLD}
        assert "now get" in await admin(world, ["map"], options, SECOND_ADMIN, SECOND)
        yield world
    finally:
        await world.close()


async def test_a_foreign_hand_link_gives_way_to_a_link_patreon_confirms(two_campaigns):
    world: FakeWorld = two_campaigns
    text = await admin(world, ["link-user"], {"member": SEED.bob, "patreon_user_id": "p-ben"}, EVE, OTHER)
    assert text.strip().startswith("✅"), text
    # Patreon doesn't say yet whose Discord Bob is: the creator's owner is told the way out, nothing changes.
    text = await admin(world, ["link-user"], {"member": SEED.bob, "patreon_user_id": "p-bob"})
    assert text.strip() == f"❌ {FOREIGN_HAND_LINK}"
    assert (await world.store.get_link_by_discord(SEED.bob)).patreon_user_id == "p-ben"

    world.patreon.add_user("p-bob", "Bob", discord_id=SEED.bob)  # Bob connects Discord on Patreon
    await world.refresh()
    text = await admin(world, ["link-user"], {"member": SEED.bob, "patreon_user_id": "p-bob"})
    assert "Linked; their roles are up to date" in text, text
    link = await world.store.get_link_by_discord(SEED.bob)
    assert (link.patreon_user_id, link.linked_in_guild_id, link.by_hand) == ("p-bob", SEED.guild_id, True)
    assert SEED.bronze_role in world.roles_of(SEED.bob)
    assert not any("p-bob" in m["content"] for m in world.discord.messages(OTHER_LOG)), "Eve learns nothing of A"

    # Eve can't turn it round: Patreon doesn't say Bob's Discord is p-ben's.
    text = await admin(world, ["link-user"], {"member": SEED.bob, "patreon_user_id": "p-ben"}, EVE, OTHER)
    assert text.strip() == f"❌ {FOREIGN_HAND_LINK}"
    assert (await world.store.get_link_by_discord(SEED.bob)).patreon_user_id == "p-bob"


async def test_a_second_servers_hand_link_of_a_patron_to_a_sock_gives_way_to_patreons_word(one_campaign_two_servers):
    world: FakeWorld = one_campaign_two_servers
    sock = SECOND_ADMIN
    text = await admin(world, ["link-user"], {"member": sock, "patreon_user_id": "p-alice"}, sock, SECOND)
    assert "roles are up to date" in text and roles_in(world, SECOND, sock) == {OTHER_GOLD}
    text = await admin(world, ["link-user"], {"member": SEED.alice, "patreon_user_id": "p-alice"})
    assert f"linked by hand to <@{sock}> in another server" in text, "not without Patreon's word"

    world.patreon.add_user("p-alice", "Alice", discord_id=SEED.alice)  # Alice's Discord, connected on Patreon
    await world.refresh()
    text = await admin(world, ["link-user"], {"member": SEED.alice, "patreon_user_id": "p-alice"})
    assert "Linked; their roles are up to date" in text, text
    assert (await world.store.get_link_by_patreon("p-alice")).discord_user_id == SEED.alice
    assert await world.store.get_link_by_discord(sock) is None
    assert SEED.gold_role in world.roles_of(SEED.alice)
    assert roles_in(world, SECOND, sock) == set(), "the sock loses what the replaced link gave"
    told = [m["content"] for m in world.discord.messages(SECOND_LOG)]
    assert any("replaced the link by hand" in line and "p-alice" in line for line in told), told
