"""`disconnect take_back_roles:True` past a role Discord won't let the bot take (review 5, R5-9), with the real bot.

Alice holds @Gold Patron and Bob @Bronze Patron, both given by the bot. One refused role (moved above the bot's role,
or a 5xx) must not strand every member after it: the rest are taken back, the answer says the server was
disconnected, how many roles were taken and which weren't and why, and a rerun tries only the ones left.
"""

from fakes.world import SEED, FakeWorld
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin
from tests.e2e.test_disconnect import connected_with_alice


async def alice_gold_bob_bronze(tmp_path) -> FakeWorld:
    world = await connected_with_alice(tmp_path)
    await world.link(SEED.bob)
    await wait_for(lambda: SEED.bronze_role in world.roles_of(SEED.bob))
    assert SEED.gold_role in world.roles_of(SEED.alice)
    return world


async def grants(world: FakeWorld) -> dict[int, frozenset[int]]:
    return await world.store.grants_in_guild(SEED.guild_id)


async def test_a_role_moved_above_the_bot_is_reported_and_the_others_are_taken_back(tmp_path):
    world = await alice_gold_bob_bronze(tmp_path)
    try:
        gold = world.guild.role(SEED.gold_role)
        old_position = gold.position
        world.guild.update_role(SEED.gold_role, position=70)  # an admin moves Gold Patron above the bot's role
        first = await admin(world, ["disconnect"], {"take_back_roles": True})
        assert "no longer follows campaign" in first, "the answer says the server was disconnected"
        assert "nothing was changed" not in first
        assert "Took back 1 role(s) the bot gave. 1 couldn't be taken back: @Gold Patron from " in first, first
        assert "above the bot's highest role" in first
        await wait_for(lambda: SEED.bronze_role not in world.roles_of(SEED.bob))
        assert await world.store.guild_binding(SEED.guild_id) is None
        assert SEED.gold_role in world.roles_of(SEED.alice)
        assert (await grants(world)).get(SEED.alice) == frozenset({SEED.gold_role}), "kept, so a rerun retries it"
        assert SEED.bob not in await grants(world)

        world.guild.update_role(SEED.gold_role, position=old_position)  # the admin fixes the order
        again = await admin(world, ["disconnect"], {"take_back_roles": True})
        assert again.strip() == "Took back 1 role(s) the bot gave.", again
        await wait_for(lambda: SEED.gold_role not in world.roles_of(SEED.alice))
        assert await grants(world) == {}
    finally:
        await world.close()


async def test_a_discord_failure_on_one_member_does_not_stop_the_others(tmp_path):
    world = await alice_gold_bob_bronze(tmp_path)
    try:
        world.discord.fail_next("DELETE", rf"/members/{SEED.alice}/roles/\d+$", status=503, count=1)
        first = await admin(world, ["disconnect"], {"take_back_roles": True})
        assert "no longer follows campaign" in first and "Took back 1 role(s) the bot gave." in first, first
        assert "1 couldn't be taken back: @Gold Patron from " in first and "503" in first
        await wait_for(lambda: SEED.bronze_role not in world.roles_of(SEED.bob))
        assert SEED.gold_role in world.roles_of(SEED.alice)

        again = await admin(world, ["disconnect"], {"take_back_roles": True})
        assert again.strip() == "Took back 1 role(s) the bot gave.", again
        await wait_for(lambda: SEED.gold_role not in world.roles_of(SEED.alice))
        assert SEED.vip_role in world.roles_of(SEED.alice), "a hand-given role stays"
    finally:
        await world.close()
