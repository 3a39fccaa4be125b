"""A server that turned the bot off isn't told its link by hand was replaced, against the real bot and the fakes.

The line names the patron's Patreon account, and a server that doesn't take part (any more) learns nothing about
the campaign's patrons (bot/accounts/linking.py `_tell`). The patron's sign-in always kept to that; an admin's
`link-user` that Patreon confirms and auto-match now share its one rule (bot/sync/replaced_hand_link.py).
"""

from __future__ import annotations

from fakes.world import SEED, FakeWorld
from tests.e2e.connect_world import B_TIER, CAMPAIGN_B, EVE, OTHER, OTHER_LOG
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin
from tests.e2e.test_auto_match_foreign_hand_link import assert_bob_matched_in_a, bobs_discord_linked_by_eve, log_of
from tests.e2e.test_hand_link_squat import one_campaign_two_servers, two_campaigns  # noqa: F401 (fixtures)
from tests.e2e.test_trust_servers import EVE as SECOND_ADMIN
from tests.e2e.test_trust_servers import OTHER as SECOND
from tests.e2e.test_trust_servers import OTHER_LOG as SECOND_LOG

REPLACED = "replaced the link by hand"


async def test_a_confirmed_link_user_doesnt_tell_a_turned_off_server(one_campaign_two_servers):  # noqa: F811
    world: FakeWorld = one_campaign_two_servers
    sock = SECOND_ADMIN
    text = await admin(world, ["link-user"], {"member": sock, "patreon_user_id": "p-alice"}, sock, SECOND)
    assert "roles are up to date" in text, text
    assert "Saved" in await admin(world, ["settings"], {"enabled": False}, SECOND_ADMIN, SECOND)
    world.patreon.add_user("p-alice", "Alice", discord_id=SEED.alice)  # Alice's Discord, connected on Patreon
    await world.refresh()
    before = len(log_of(world, SECOND_LOG))

    text = await admin(world, ["link-user"], {"member": SEED.alice, "patreon_user_id": "p-alice"})
    assert "Linked; their roles are up to date" in text, text
    assert (await world.store.get_link_by_patreon("p-alice")).discord_user_id == SEED.alice
    assert await world.store.get_link_by_discord(sock) is None
    line = f"linked <@{SEED.alice}> to Patreon p-alice"
    await wait_for(lambda: any(line in text for text in log_of(world, SEED.log_channel)))
    await world.settle()
    told = log_of(world, SECOND_LOG)[before:]
    assert not any(REPLACED in line or "p-alice" in line for line in told), told


async def test_auto_match_doesnt_tell_a_turned_off_server_whose_campaign_holds_the_patron(two_campaigns):  # noqa: F811
    world: FakeWorld = two_campaigns
    campaign = world.patreon.state.directory.campaigns[CAMPAIGN_B]
    campaign.set_membership("p-bob", patron_status="active_patron", tier_ids=[B_TIER])  # Bob pledges to B too
    await world.refresh()
    await bobs_discord_linked_by_eve(world)
    assert "Saved" in await admin(world, ["settings"], {"enabled": False}, EVE, OTHER)

    report = await world.refresh()
    assert report.ok and report.auto_linked == 1
    await assert_bob_matched_in_a(world, pledges_to_b=True)
    await world.settle()
    told = log_of(world, OTHER_LOG)
    assert not any(REPLACED in line or "p-bob" in line for line in told), told
