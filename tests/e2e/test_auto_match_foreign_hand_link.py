"""Auto-match isn't blocked by another campaign's link by hand (review 5, R5-5), against the real bot and the fakes.

Eve's server follows her own campaign B; Bob pays Bronze in the creator's campaign A and also sits in her server.
Eve hand-links Bob's Discord account to one of B's patrons: that link is only her word and counts only in her
server, so once Patreon shows Bob's Discord connected to his Patreon account, A's auto-match links the pair Patreon
proves and Bob gets A's roles (and loses what Eve's link gave him), while Eve's server hears nothing of A's patron.
A link by hand made in A's own server stands, and a pair the patron unlinked himself is not linked again.
"""

from __future__ import annotations

from bot.store.links import ADMIN_SOURCE
from fakes.world import SEED, FakeWorld
from tests.e2e.connect_world import B_ROLE, B_TIER, CAMPAIGN_B, EVE, OTHER, OTHER_LOG, link_in
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin
from tests.e2e.test_hand_link_squat import two_campaigns  # noqa: F401 (fixture)
from tests.e2e.test_trust_servers import roles_in


def log_of(world: FakeWorld, channel: int) -> list[str]:
    return [message["content"] for message in world.discord.messages(channel)]


def add_b_patron(world: FakeWorld, patreon_id: str, name: str) -> None:
    campaign = world.patreon.state.directory.campaigns[CAMPAIGN_B]
    campaign.add_user(patreon_id, name, None)
    campaign.set_membership(patreon_id, patron_status="active_patron", tier_ids=[B_TIER])


async def eve_links(world: FakeWorld, member: int, patreon_id: str) -> None:
    text = await admin(world, ["link-user"], {"member": member, "patreon_user_id": patreon_id}, EVE, OTHER)
    assert text.strip().startswith("✅"), text


async def bobs_discord_linked_by_eve(world: FakeWorld) -> None:
    """Eve maps her tier and hand-links Bob to her patron Ben; then A turns auto-match on and Bob connects
    Discord on Patreon."""
    assert "now get" in await admin(world, ["map"], {"tier": B_TIER, "role": B_ROLE}, EVE, OTHER)
    await eve_links(world, SEED.bob, "p-ben")
    assert roles_in(world, OTHER, SEED.bob) == {B_ROLE}
    await world.bot.services.admin.update_settings(SEED.guild_id, auto_match_discord=True)
    world.patreon.add_user("p-bob", "Bob", discord_id=SEED.bob)


async def only_alice_is_matched(world: FakeWorld) -> None:
    """A turns auto-match on and Alice and Bob connect Discord on Patreon; a refresh matches Alice (Eve's link by
    hand of her gives way) and no one else."""
    await world.bot.services.admin.update_settings(SEED.guild_id, auto_match_discord=True)
    world.patreon.add_user("p-alice", "Alice", discord_id=SEED.alice)
    world.patreon.add_user("p-bob", "Bob", discord_id=SEED.bob)
    report = await world.refresh()
    assert report.ok and report.auto_linked == 1
    alice = await world.store.get_link_by_discord(SEED.alice)
    assert alice is not None and (alice.patreon_user_id, alice.source) == ("p-alice", "auto")


async def assert_bob_matched_in_a(world: FakeWorld, *, pledges_to_b: bool = False) -> None:
    link = await world.store.get_link_by_discord(SEED.bob)
    assert link is not None
    assert (link.patreon_user_id, link.linked_in_guild_id, link.source) == ("p-bob", SEED.guild_id, "auto")
    assert await world.store.get_link_by_patreon("p-ben") is None
    await wait_for(lambda: SEED.bronze_role in world.roles_of(SEED.bob))
    if not pledges_to_b:  # what Eve's link gave goes with it
        await wait_for(lambda: B_ROLE not in roles_in(world, OTHER, SEED.bob))
    line = f"Linked <@{SEED.bob}> to Patreon p-bob automatically"
    await wait_for(lambda: any(line in text for text in log_of(world, SEED.log_channel)))


def assert_eve_learns_nothing_of_a(world: FakeWorld) -> None:
    """Her link is gone and so are its roles (the roles line says only "not a member of the campaign"), but nothing
    names A's patron or how he was linked."""
    told = log_of(world, OTHER_LOG)
    assert any("Removed" in text and f"<@{SEED.bob}>" in text for text in told), told
    leaks = ("p-bob", "Bronze", "automatically", "Patreon shows", "replaced the link")
    assert not any(leak in text for text in told for leak in leaks), f"Eve learns of A's patron: {told}"


async def test_a_foreign_hand_link_gives_way_to_a_refreshs_auto_match(two_campaigns):  # noqa: F811
    world: FakeWorld = two_campaigns
    await bobs_discord_linked_by_eve(world)
    report = await world.refresh()
    assert report.ok and report.auto_linked == 1
    await assert_bob_matched_in_a(world)
    assert_eve_learns_nothing_of_a(world)


async def test_a_foreign_hand_link_gives_way_to_a_webhooks_auto_match(two_campaigns):  # noqa: F811
    world: FakeWorld = two_campaigns
    await bobs_discord_linked_by_eve(world)
    status, _ = await world.send_webhook("members:update", "p-bob")
    assert status == 202
    await wait_for(lambda: world.store.get_link_by_patreon("p-bob"))
    await world.settle()
    await assert_bob_matched_in_a(world)
    assert_eve_learns_nothing_of_a(world)


async def test_the_old_server_is_told_when_its_own_campaign_holds_the_patron(two_campaigns):  # noqa: F811
    world: FakeWorld = two_campaigns
    campaign = world.patreon.state.directory.campaigns[CAMPAIGN_B]
    campaign.set_membership("p-bob", patron_status="active_patron", tier_ids=[B_TIER])  # Bob pledges to B too
    await world.refresh()
    await bobs_discord_linked_by_eve(world)
    report = await world.refresh()
    assert report.ok and report.auto_linked == 1
    await assert_bob_matched_in_a(world, pledges_to_b=True)
    line = f"replaced the link by hand of <@{SEED.bob}> to Patreon p-ben made in this server"
    await wait_for(lambda: any(line in text for text in log_of(world, OTHER_LOG)))


async def test_a_hand_link_made_in_a_server_of_the_same_campaign_stands(two_campaigns):  # noqa: F811
    world: FakeWorld = two_campaigns
    await eve_links(world, SEED.alice, "p-ben")  # Eve's word about Alice, another campaign's server: gives way
    text = await admin(world, ["link-user"], {"member": SEED.bob, "patreon_user_id": "p-carol"})
    assert "Linked" in text, text  # A's owner's word about Bob, in A's own server: stands
    await only_alice_is_matched(world)
    bob = await world.store.get_link_by_discord(SEED.bob)
    assert bob is not None
    assert (bob.patreon_user_id, bob.linked_in_guild_id, bob.source) == ("p-carol", SEED.guild_id, ADMIN_SOURCE)
    assert await world.store.get_link_by_patreon("p-bob") is None
    assert SEED.bronze_role not in world.roles_of(SEED.bob)


async def test_a_pair_the_patron_unlinked_is_not_linked_again_over_a_foreign_hand_link(two_campaigns):  # noqa: F811
    world: FakeWorld = two_campaigns
    add_b_patron(world, "p-bea", "Bea")
    await world.bot.services.admin.update_settings(SEED.guild_id, auto_match_discord=True)
    world.patreon.add_user("p-bob", "Bob", discord_id=SEED.bob)
    assert (await world.refresh()).auto_linked == 1
    await world.bot.services.linking.unlink(SEED.bob)  # Bob unlinks himself: auto-match must not undo it
    assert await world.store.auto_match_optouts() == {(SEED.bob, "p-bob")}
    await eve_links(world, SEED.bob, "p-ben")
    await eve_links(world, SEED.alice, "p-bea")  # the control: Alice never unlinked, her pair gives way
    world.patreon.add_user("p-alice", "Alice", discord_id=SEED.alice)
    report = await world.refresh()
    assert report.ok and report.auto_linked == 1
    alice = await world.store.get_link_by_discord(SEED.alice)
    assert alice is not None and (alice.patreon_user_id, alice.source) == ("p-alice", "auto")
    bob = await world.store.get_link_by_discord(SEED.bob)
    assert bob is not None and (bob.patreon_user_id, bob.linked_in_guild_id) == ("p-ben", OTHER)
    assert await world.store.get_link_by_patreon("p-bob") is None
    assert SEED.bronze_role not in world.roles_of(SEED.bob)


async def test_a_link_the_member_signed_in_to_himself_stands(two_campaigns):  # noqa: F811
    world: FakeWorld = two_campaigns
    add_b_patron(world, "p-bea", "Bea")
    await world.refresh()
    status, _ = await link_in(world, OTHER, SEED.bob, "bob", "p-ben")  # Bob's own word, in Eve's server
    assert status == 200
    await eve_links(world, SEED.alice, "p-bea")  # the control: a link by hand of Eve's gives way
    await only_alice_is_matched(world)
    bob = await world.store.get_link_by_discord(SEED.bob)
    assert bob is not None and (bob.patreon_user_id, bob.source) == ("p-ben", "oauth")
    assert await world.store.get_link_by_patreon("p-bob") is None
