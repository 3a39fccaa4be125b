"""Auto-match isn't blocked by another campaign's link by hand of the patron's Patreon account (review 5, R5-5),
against the real bot and the fakes.

Eve's server follows her own campaign B; Bob pays Bronze in the creator's campaign A and follows B for free, so
Eve may hand-link his Patreon account p-bob to a sock of hers (that link counts only in her server). A refresh
offers auto-match only Patreon accounts linked to nobody, so A never matched p-bob to the Discord account Patreon
names (Bob's own). Now the sock's link gives way to the pair Patreon proves, as on the Discord side
(test_auto_match_foreign_hand_link.py): the sock is reconciled everywhere, and Eve's server is told only while her
campaign holds the patron. A link by hand made in A's own server, the patron's own sign-in and a pair he unlinked
himself stand; Eve can't make it take a Discord account its owner linked himself.
"""

from __future__ import annotations

from bot.store.links import ADMIN_SOURCE
from fakes.world import SEED, FakeWorld
from tests.e2e.connect_world import B_ROLE, B_TIER, CAMPAIGN_B, EVE, OTHER, OTHER_LOG, link_in
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin
from tests.e2e.test_auto_match_foreign_hand_link import eve_links, log_of
from tests.e2e.test_hand_link_squat import two_campaigns  # noqa: F401 (fixture)
from tests.e2e.test_trust_servers import roles_in

SOCK = 750000000000000091  # Eve's sock, in her server
ALICES_SOCK = 750000000000000092
A_SOCK = 750000000000000093  # someone in A's own server
#: What would tell Eve about A's patron: its tier, how he was linked, the line of a replaced link.
LEAKS = ("Bronze", "automatically", "Patreon shows", "replaced the link")


def follows_b(world: FakeWorld, patreon_id: str, *, pays: bool = False) -> None:
    """The patron joins campaign B too (a free follower unless `pays`): Eve may then hand-link him."""
    campaign = world.patreon.state.directory.campaigns[CAMPAIGN_B]
    if pays:
        campaign.set_membership(patreon_id, patron_status="active_patron", tier_ids=[B_TIER])
    else:
        campaign.set_membership(patreon_id, patron_status=None, tier_ids=[])


async def add_socks(world: FakeWorld) -> None:
    other = world.discord.guild(OTHER)
    other.add_member(SOCK, username="sock")
    other.add_member(ALICES_SOCK, username="alices-sock")
    world.guild.add_member(A_SOCK, username="a-sock")
    assert "now get" in await admin(world, ["map"], {"tier": B_TIER, "role": B_ROLE}, EVE, OTHER)


async def auto_match_on_and_connected(world: FakeWorld, *patreon_ids: str) -> None:
    """A turns auto-match on; these patrons connect Discord on Patreon (Patreon's own word of whose they are)."""
    await world.bot.services.admin.update_settings(SEED.guild_id, auto_match_discord=True)
    for patreon_id in patreon_ids:
        discord_id = {"p-bob": SEED.bob, "p-alice": SEED.alice}[patreon_id]
        world.patreon.add_user(patreon_id, patreon_id[2:].title(), discord_id=discord_id)


async def assert_matched_in_a(world: FakeWorld, discord_id: int, patreon_id: str) -> None:
    link = await world.store.get_link_by_patreon(patreon_id)
    assert link is not None
    assert (link.discord_user_id, link.linked_in_guild_id, link.source) == (discord_id, SEED.guild_id, "auto")
    line = f"Linked <@{discord_id}> to Patreon {patreon_id} automatically"
    await wait_for(lambda: any(line in text for text in log_of(world, SEED.log_channel)))


async def test_a_foreign_hand_link_of_the_patreon_account_gives_way_to_a_refreshs_auto_match(
    two_campaigns,  # noqa: F811
):
    world: FakeWorld = two_campaigns
    await add_socks(world)
    follows_b(world, "p-bob", pays=True)
    await world.refresh()
    await eve_links(world, SOCK, "p-bob")
    assert roles_in(world, OTHER, SOCK) == {B_ROLE}
    await auto_match_on_and_connected(world, "p-bob")
    report = await world.refresh()
    assert report.ok and report.auto_linked == 1
    await assert_matched_in_a(world, SEED.bob, "p-bob")
    assert await world.store.get_link_by_discord(SOCK) is None
    await wait_for(lambda: SEED.bronze_role in world.roles_of(SEED.bob))
    await wait_for(lambda: B_ROLE not in roles_in(world, OTHER, SOCK))  # the sock loses what Eve's link gave
    await wait_for(lambda: B_ROLE in roles_in(world, OTHER, SEED.bob))  # Patreon's pair counts everywhere
    # Her campaign holds the patron: she is told her link was replaced (settle_replaced_hand_link), of A nothing.
    line = f"replaced the link by hand of <@{SOCK}> to Patreon p-bob made in this server"
    await wait_for(lambda: any(line in text for text in log_of(world, OTHER_LOG)))
    assert not any("Bronze" in text for text in log_of(world, OTHER_LOG))


async def test_eves_log_learns_nothing_once_her_campaign_no_longer_holds_the_patron(two_campaigns):  # noqa: F811
    world: FakeWorld = two_campaigns
    await add_socks(world)
    follows_b(world, "p-bob")
    await world.refresh()
    await eve_links(world, SOCK, "p-bob")
    world.patreon.state.directory.campaigns[CAMPAIGN_B].remove_membership("p-bob")  # Bob leaves B
    await world.refresh()
    await auto_match_on_and_connected(world, "p-bob")
    before = len(log_of(world, OTHER_LOG))  # her own "An admin linked <@sock> to Patreon p-bob" among them
    report = await world.refresh()
    assert report.ok and report.auto_linked == 1
    await assert_matched_in_a(world, SEED.bob, "p-bob")
    assert await world.store.get_link_by_discord(SOCK) is None
    await wait_for(lambda: SEED.bronze_role in world.roles_of(SEED.bob))
    await world.settle()
    told = log_of(world, OTHER_LOG)[before:]
    assert not any(leak in text for text in told for leak in LEAKS), f"Eve learns of A's patron: {told}"
    assert not any("p-bob" in text or f"<@{SEED.bob}>" in text for text in told), told


async def test_a_hand_link_of_the_patreon_account_made_in_a_server_of_the_same_campaign_stands(
    two_campaigns,  # noqa: F811
):
    world: FakeWorld = two_campaigns
    await add_socks(world)
    follows_b(world, "p-alice")
    await world.refresh()
    await eve_links(world, ALICES_SOCK, "p-alice")  # the control: Eve's word about A's patron gives way
    text = await admin(world, ["link-user"], {"member": A_SOCK, "patreon_user_id": "p-bob"})
    assert "Linked" in text, text  # A's owner's word about his own patron, in A's own server: stands
    await auto_match_on_and_connected(world, "p-alice", "p-bob")
    report = await world.refresh()
    assert report.ok and report.auto_linked == 1
    await assert_matched_in_a(world, SEED.alice, "p-alice")
    bob = await world.store.get_link_by_patreon("p-bob")
    assert bob is not None
    assert (bob.discord_user_id, bob.linked_in_guild_id, bob.source) == (A_SOCK, SEED.guild_id, ADMIN_SOURCE)
    assert await world.store.get_link_by_discord(SEED.bob) is None
    assert SEED.bronze_role not in world.roles_of(SEED.bob)


async def test_a_pair_the_patron_unlinked_is_not_linked_again_over_a_foreign_hand_link_of_his_patreon_account(
    two_campaigns,  # noqa: F811
):
    world: FakeWorld = two_campaigns
    await add_socks(world)
    await auto_match_on_and_connected(world, "p-bob")
    assert (await world.refresh()).auto_linked == 1
    await world.bot.services.linking.unlink(SEED.bob)  # Bob unlinks himself: auto-match must not undo it
    assert await world.store.auto_match_optouts() == {(SEED.bob, "p-bob")}
    follows_b(world, "p-bob")
    follows_b(world, "p-alice")
    await world.refresh()
    await eve_links(world, SOCK, "p-bob")
    await eve_links(world, ALICES_SOCK, "p-alice")  # the control: Alice never unlinked, her pair gives way
    await auto_match_on_and_connected(world, "p-alice")
    report = await world.refresh()
    assert report.ok and report.auto_linked == 1
    await assert_matched_in_a(world, SEED.alice, "p-alice")
    bob = await world.store.get_link_by_patreon("p-bob")
    assert bob is not None and (bob.discord_user_id, bob.linked_in_guild_id) == (SOCK, OTHER)
    assert await world.store.get_link_by_discord(SEED.bob) is None
    assert SEED.bronze_role not in world.roles_of(SEED.bob)


async def test_a_sign_in_of_the_patreon_account_stands(two_campaigns):  # noqa: F811
    world: FakeWorld = two_campaigns
    await add_socks(world)
    follows_b(world, "p-bob")
    follows_b(world, "p-alice")
    await world.refresh()
    status, _ = await link_in(world, OTHER, SOCK, "sock", "p-bob")  # whoever holds p-bob's password: his word
    assert status == 200
    await eve_links(world, ALICES_SOCK, "p-alice")  # the control: a link by hand of Eve's gives way
    await auto_match_on_and_connected(world, "p-alice", "p-bob")
    report = await world.refresh()
    assert report.ok and report.auto_linked == 1
    await assert_matched_in_a(world, SEED.alice, "p-alice")
    bob = await world.store.get_link_by_patreon("p-bob")
    assert bob is not None and (bob.discord_user_id, bob.source) == (SOCK, "oauth")
    assert await world.store.get_link_by_discord(SEED.bob) is None


async def test_eve_cant_make_the_match_take_a_discord_account_its_owner_linked_himself(two_campaigns):  # noqa: F811
    world: FakeWorld = two_campaigns
    await add_socks(world)
    follows_b(world, "p-bob")
    follows_b(world, "p-alice")
    await world.refresh()
    status, _ = await link_in(world, OTHER, SEED.bob, "bob", "p-ben")  # Bob's Discord: his own word, to p-ben
    assert status == 200
    await eve_links(world, SOCK, "p-bob")  # Patreon names Bob's Discord for p-bob: would the match take it?
    await eve_links(world, ALICES_SOCK, "p-alice")  # the control
    await auto_match_on_and_connected(world, "p-alice", "p-bob")
    report = await world.refresh()
    assert report.ok and report.auto_linked == 1
    await assert_matched_in_a(world, SEED.alice, "p-alice")
    bob = await world.store.get_link_by_discord(SEED.bob)
    assert bob is not None and (bob.patreon_user_id, bob.source) == ("p-ben", "oauth")
    sock = await world.store.get_link_by_patreon("p-bob")
    assert sock is not None and (sock.discord_user_id, sock.linked_in_guild_id) == (SOCK, OTHER)


async def test_a_foreign_hand_link_of_the_patreon_account_gives_way_to_a_webhooks_auto_match(two_campaigns):  # noqa: F811
    """A webhook about p-bob weighs the match as a refresh does: his Patreon account linked only by hand in Eve's
    server doesn't keep him from the Discord account Patreon names."""
    world: FakeWorld = two_campaigns
    await add_socks(world)
    follows_b(world, "p-bob")
    await world.refresh()
    await eve_links(world, SOCK, "p-bob")
    await auto_match_on_and_connected(world, "p-bob")
    status, _ = await world.send_webhook("members:update", "p-bob")
    assert status == 202
    await wait_for(lambda: world.store.get_link_by_discord(SEED.bob))
    await world.settle()
    await assert_matched_in_a(world, SEED.bob, "p-bob")
    assert await world.store.get_link_by_discord(SOCK) is None
    await wait_for(lambda: SEED.bronze_role in world.roles_of(SEED.bob))


async def test_eves_links_by_hand_of_bobs_own_pair_dont_undo_his_unlink(two_campaigns):  # noqa: F811
    """Bob unlinked p-bob himself (an opt-out). Eve, whose server follows B, hand-links him to p-bob in her server,
    then re-points him to p-ben: had her first link lifted his opt-out, A's auto-match would link the pair again
    against his own unlink. Only his own sign-in lifts it (helper 71's finding)."""
    world: FakeWorld = two_campaigns
    follows_b(world, "p-bob")
    await auto_match_on_and_connected(world, "p-bob")
    assert (await world.refresh()).auto_linked == 1
    await world.bot.services.linking.unlink(SEED.bob)
    assert await world.store.auto_match_optouts() == {(SEED.bob, "p-bob")}
    await eve_links(world, SEED.bob, "p-bob")
    await eve_links(world, SEED.bob, "p-ben")
    assert await world.store.auto_match_optouts() == {(SEED.bob, "p-bob")}
    report = await world.refresh()
    assert report.ok and report.auto_linked == 0
    link = await world.store.get_link_by_discord(SEED.bob)
    assert link is not None and (link.patreon_user_id, link.source) == ("p-ben", ADMIN_SOURCE)
    assert SEED.bronze_role not in world.roles_of(SEED.bob)
