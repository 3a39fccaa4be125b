"""Another server's admin can't hand out the creator's roles (issue 8, item 1), against the real bot and the fakes.

Eve owns another server the bot is in. A link made by hand counts only in the server whose admin made it, only that
server can remove it, the patron's own sign-in replaces it (and that server is told), and a server acts for the
campaign only when its admin turned the bot on and the bot can tell the server is the creator's.
"""

import pytest

from fakes.world import SEED, FakeWorld
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin

EVE = 750000000000000066
OTHER = 710000000000000066  # Eve's server in the attack; a second server of the creator's where allowed
OTHER_GOLD = 730000000000000066
OTHER_LOG = 740000000000000066


async def world_with_other_server(tmp_path, allowed: tuple[int, ...] = ()) -> FakeWorld:
    """The seeded world plus a second server owned by Eve, where she has a Gold role and a log channel; Eve is a
    plain member of the creator's server too. `allowed` becomes ALLOWED_GUILD_IDS."""
    world = await FakeWorld(tmp_path / "bot.sqlite3").start(start_bot=False)
    other = world.discord.add_guild(OTHER, name="Eve's Server", owner_id=EVE)
    other.add_role(OTHER_GOLD, "Eve Gold", position=10)
    other.add_text_channel(OTHER_LOG, name="eve-log")
    other.add_member(EVE, username="eve")
    world.guild.add_member(EVE, username="eve")
    if allowed:
        world.extra_environment["ALLOWED_GUILD_IDS"] = ",".join(str(guild) for guild in allowed)
    await world.seed_store()
    await world.start_bot()
    return world


@pytest.fixture
async def eves_world(tmp_path):
    """The creator lists only their own server; Eve added the bot to hers anyway."""
    world = await world_with_other_server(tmp_path, allowed=(SEED.guild_id,))
    try:
        yield world
    finally:
        await world.close()


@pytest.fixture
async def two_servers(tmp_path):
    """Both servers are the creator's (listed in ALLOWED_GUILD_IDS); the second one's admin turned the bot on
    and maps Gold to its own role."""
    world = await world_with_other_server(tmp_path, allowed=(SEED.guild_id, OTHER))
    try:
        assert "Saved" in await admin(world, ["settings"], {"enabled": True, "log_channel": OTHER_LOG}, EVE, OTHER)
        assert "now get" in await admin(world, ["map"], {"tier": SEED.gold_tier, "role": OTHER_GOLD}, EVE, OTHER)
        yield world
    finally:
        await world.close()


def first_line(text: str) -> str:
    return text.strip().splitlines()[0]


def roles_in(world: FakeWorld, guild_id: int, user_id: int) -> set[int]:
    return set(world.discord.guild(guild_id).member(user_id).role_ids)


async def test_eve_cannot_link_alices_patreon_from_her_own_server(eves_world):
    world = eves_world
    # The attack: in her server, Eve links herself to Alice's Patreon account while Alice hasn't linked yet.
    text = await admin(world, ["link-user"], {"member": EVE, "patreon_user_id": "p-alice"}, EVE, OTHER)
    assert "isn't one of the creator's servers" in text
    assert await world.store.get_link_by_patreon("p-alice") is None, "nothing was linked"
    # Nor can she turn the bot on there, map a tier, or read the campaign's tiers.
    text = await admin(world, ["settings"], {"enabled": True}, EVE, OTHER)
    assert "isn't one of the creator's servers" in text
    assert not (await world.store.get_settings(OTHER)).enabled
    text = await admin(world, ["map"], {"tier": SEED.gold_tier, "role": OTHER_GOLD}, EVE, OTHER)
    assert "isn't one of the creator's servers" in text
    assert (await world.store.get_tier_roles(OTHER)).roles_by_tier == {}
    assert "isn't one of the creator's servers" in await admin(world, ["sync"], user=EVE, guild=OTHER)
    assert "**Gold**" not in await admin(world, ["tiers"], user=EVE, guild=OTHER)
    choices = await world.discord.autocomplete(OTHER, EVE, "patreon-admin", ["map"], focused="tier", options={})
    assert choices == [], "the campaign's tiers aren't offered in her server"
    check = await admin(world, ["check"], user=EVE, guild=OTHER)
    assert first_line(check).startswith("⚠️ This server isn't one of the creator's servers (ALLOWED_GUILD_IDS)")

    # The next webhook and refresh give Eve nothing in the creator's server; Alice's own link works as ever.
    status, _ = await world.send_webhook("members:pledge:update", "p-alice")
    assert status == 202
    await world.settle()
    assert (await world.refresh()).ok
    assert roles_in(world, SEED.guild_id, EVE) == set()
    status, _ = await world.link(SEED.alice)
    assert status == 200
    assert SEED.gold_role in world.roles_of(SEED.alice)
    assert roles_in(world, OTHER, EVE) == set(), "and nothing in Eve's server either"
    check = await admin(world, ["check"])
    assert first_line(check) == "✅ This server acts for the Patreon campaign."


async def test_with_two_servers_and_no_list_neither_acts_until_the_creator_lists_theirs(tmp_path, caplog):
    world = await world_with_other_server(tmp_path)
    try:
        assert any("ALLOWED_GUILD_IDS is empty" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
        check = await admin(world, ["check"])
        assert first_line(check) == (
            "⚠️ The bot is in 2 servers and can't tell which are the creator's, so it acts in none; the bot's owner "
            "lists them in ALLOWED_GUILD_IDS."
        )
        text = await admin(world, ["link-user"], {"member": EVE, "patreon_user_id": "p-alice"}, EVE, OTHER)
        assert "can't tell which are the creator's" in text
        assert await world.store.get_link_by_patreon("p-alice") is None
        link = await world.discord.invoke_slash(SEED.guild_id, SEED.alice, "patreon", ["link"])
        await link.wait_response(timeout=5)
        assert "doesn't use the bot for Patreon roles" in (link.content or ""), "no server acts, so no link starts"
        assert link.link_buttons() == []

        await world.stop_bot()
        world.extra_environment["ALLOWED_GUILD_IDS"] = str(SEED.guild_id)
        await world.start_bot()
        status, _ = await world.link(SEED.alice)
        assert status == 200 and SEED.gold_role in world.roles_of(SEED.alice)
        assert first_line(await admin(world, ["check"])) == "✅ This server acts for the Patreon campaign."
    finally:
        await world.close()


async def test_a_link_by_hand_gives_roles_only_in_the_server_that_made_it(two_servers):
    world = two_servers
    text = await admin(world, ["link-user"], {"member": EVE, "patreon_user_id": "p-alice"}, EVE, OTHER)
    assert "roles are up to date" in text
    link = await world.store.get_link_by_patreon("p-alice")
    assert (link.discord_user_id, link.source, link.linked_in_guild_id) == (EVE, "admin", OTHER)
    assert roles_in(world, OTHER, EVE) == {OTHER_GOLD}, "the server that made the link gives its roles"

    status, _ = await world.send_webhook("members:pledge:update", "p-alice")
    assert status == 202
    await world.settle()
    assert (await world.refresh()).ok
    assert roles_in(world, SEED.guild_id, EVE) == set(), "the creator's main server gives nothing for it"
    assert f"<@{EVE}>" not in await admin(world, ["sync"])


async def test_only_the_server_that_made_a_link_by_hand_can_remove_it(two_servers):
    world = two_servers
    await admin(world, ["link-user"], {"member": EVE, "patreon_user_id": "p-alice"}, EVE, OTHER)

    text = await admin(world, ["unlink-user"], {"member": EVE})
    assert "linked by hand in another server; only that server's admins can unlink them" in text
    text = await admin(world, ["link-user"], {"member": SEED.alice, "patreon_user_id": "p-alice"})
    assert f"linked by hand to <@{EVE}> in another server" in text and "/patreon link" in text
    assert (await world.store.get_link_by_patreon("p-alice")).discord_user_id == EVE, "nothing changed"

    text = await admin(world, ["unlink-user"], {"member": EVE}, EVE, OTHER)
    assert "Unlinked" in text and "@Eve Gold" in text
    assert await world.store.get_link_by_patreon("p-alice") is None
    assert roles_in(world, OTHER, EVE) == set()


async def test_the_patrons_own_sign_in_replaces_a_link_by_hand_and_that_server_is_told(two_servers):
    world = two_servers
    await admin(world, ["link-user"], {"member": EVE, "patreon_user_id": "p-alice"}, EVE, OTHER)
    assert roles_in(world, OTHER, EVE) == {OTHER_GOLD}

    status, _ = await world.link(SEED.alice)
    assert status == 200, "a link by hand doesn't make the patron's own sign-in a conflict"
    link = await world.store.get_link_by_patreon("p-alice")
    assert (link.discord_user_id, link.source) == (SEED.alice, "oauth")
    assert SEED.gold_role in world.roles_of(SEED.alice)
    await wait_for(lambda: roles_in(world, OTHER, EVE) == set())
    await wait_for(lambda: any("replaced the link by hand" in m["content"] for m in world.discord.messages(OTHER_LOG)))
    (line,) = [m["content"] for m in world.discord.messages(OTHER_LOG) if "replaced the link by hand" in m["content"]]
    assert f"<@{SEED.alice}> signed in to Patreon as Alice themselves" in line and f"<@{EVE}>" in line


async def test_a_link_by_hand_never_replaces_the_patrons_own_link(world):
    await world.link(SEED.alice)
    text = await admin(world, ["link-user"], {"member": SEED.alice, "patreon_user_id": "p-bob"})
    assert "signed in to a Patreon account themselves, and a link by hand never replaces that" in text
    text = await admin(world, ["link-user"], {"member": SEED.alice, "patreon_user_id": "p-alice"})
    assert "Already linked: they signed in to that Patreon account themselves." in text
    link = await world.store.get_link_by_discord(SEED.alice)
    assert (link.patreon_user_id, link.source) == ("p-alice", "oauth"), "neither replaced nor turned into a hand link"
    assert await world.store.get_link_by_patreon("p-bob") is None


async def test_a_server_whose_admin_has_not_turned_the_bot_on_is_left_alone(world):
    await world.link(SEED.bob)
    assert world.roles_of(SEED.bob) == {SEED.bronze_role}
    text = await admin(world, ["settings"], {"enabled": False})
    assert "The bot manages Patreon roles here: off" in text

    check = await admin(world, ["check"])
    assert first_line(check) == (
        "⚠️ The bot doesn't manage Patreon roles in this server yet; an admin turns it on with "
        "`/patreon-admin settings enabled:True`."
    )
    for path, options in (
        (["map"], {"tier": SEED.gold_tier, "role": SEED.vip_role}),
        (["settings"], {"grace_days": 2}),
        (["sync"], {"dry_run": False}),
        (["link-user"], {"member": SEED.dave, "patreon_user_id": "p-dave"}),
        (["unlink-user"], {"member": SEED.bob}),
    ):
        assert "doesn't manage Patreon roles in this server yet" in await admin(world, path, options), path
    assert SEED.vip_role not in (await world.store.get_tier_roles(SEED.guild_id)).roles_by_tier[SEED.gold_tier]
    assert (await world.store.get_settings(SEED.guild_id)).decline_grace_days == 7
    assert await world.store.get_link_by_discord(SEED.dave) is None
    assert await world.store.get_link_by_discord(SEED.bob) is not None

    # Patreon moves Bob to Gold: the webhook is applied, but the server's roles are not touched.
    world.patreon.set_membership("p-bob", "active_patron", tier_ids=[SEED.gold_tier])
    status, _ = await world.send_webhook("members:pledge:update", "p-bob")
    assert status == 202
    await world.settle()
    assert (await world.store.get_membership("p-bob")).entitled_tier_ids == (SEED.gold_tier,)
    assert world.roles_of(SEED.bob) == {SEED.bronze_role}

    assert "Saved" in await admin(world, ["settings"], {"enabled": True})
    assert first_line(await admin(world, ["check"])) == "✅ This server acts for the Patreon campaign."
    assert (await world.refresh()).ok
    assert world.roles_of(SEED.bob) == {SEED.gold_role}
