"""`link-user` reaches only the patrons of the server's own campaign (review 1, F3), against the real bot and fakes.

Eve connected her own campaign B to her server, so it acts; Alice and Bob are patrons of the creator's campaign A
only. Eve's `link-user` with their Patreon ids (public in profile URLs) must not tell her whose Discord account holds
one or whether it is linked, must store nothing (so it can't block A's admins), and a hand link of a foreign patron
made before this rule must not get the patron's later sign-in posted in Eve's log channel.
"""

from __future__ import annotations

import pytest

from bot.guild_admin.hand_links import NOT_OUR_PATRON
from bot.store.links import ADMIN_SOURCE
from fakes.world import SEED, FakeWorld
from tests.e2e.connect_world import BEN, EVE, OTHER, OTHER_LOG, connect_both, no_env_world
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin


@pytest.fixture
async def two_campaigns(tmp_path):
    world = await no_env_world(tmp_path)
    try:
        await connect_both(world)
        yield world
    finally:
        await world.close()


def texts(world: FakeWorld, channel: int) -> list[str]:
    return [message.get("content", "") for message in world.discord.messages(channel)]


async def test_link_user_from_another_campaigns_server_reveals_nothing_and_stores_nothing(two_campaigns):
    world = two_campaigns
    status, _ = await world.link(SEED.alice)
    assert status == 200
    answers = {
        patreon_id: (
            await admin(world, ["link-user"], {"member": EVE, "patreon_user_id": patreon_id}, EVE, OTHER)
        ).strip()
        for patreon_id in ("p-alice", "p-bob", "p-nobody")  # linked in A, unlinked in A, nobody at all
    }
    assert set(answers.values()) == {f"❌ {NOT_OUR_PATRON}"}, "one answer whatever the id's link state"
    assert str(SEED.alice) not in answers["p-alice"]
    assert await world.store.get_link_by_discord(EVE) is None
    assert (await world.store.get_link_by_patreon("p-bob")) is None, "nothing blocks A's admins"
    # The creator's admin links Bob by hand in A's server; Eve links her own patron Ben in hers.
    assert "roles are up to date" in await admin(world, ["link-user"], {"member": SEED.bob, "patreon_user_id": "p-bob"})
    text = await admin(world, ["link-user"], {"member": BEN, "patreon_user_id": "p-ben"}, EVE, OTHER)
    assert text.strip().startswith("✅"), text


async def test_a_foreign_hand_link_never_tells_eves_log_who_signed_in(two_campaigns):
    world = two_campaigns
    # A hand link of campaign A's Bob made in Eve's server before link-user was scoped to its campaign.
    await world.store.save_link(EVE, "p-bob", OTHER, ADMIN_SOURCE)
    world.patreon.next_authorizing_user = "p-bob"
    status, _ = await world.link(SEED.bob)
    assert status == 200
    link = await world.store.get_link_by_patreon("p-bob")
    assert link is not None and link.discord_user_id == SEED.bob and not link.by_hand, "his own sign-in wins"
    await wait_for(lambda: any(f"<@{SEED.bob}> linked Patreon account" in t for t in texts(world, SEED.log_channel)))
    await world.settle()
    assert not [t for t in texts(world, OTHER_LOG) if str(SEED.bob) in t or "Bob" in t]
