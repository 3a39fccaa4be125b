"""Once the `.env` campaign's creator connected it, a stranger's server never inherits it (review 1, F2).

ALLOWED_GUILD_IDS is empty, as the README allows for one server. The creator connects his own server to the `.env`
campaign; Eve's server, which never connected, was then the only server not bound to a campaign, and the one-server
rule handed it the creator's campaign (tiers, map, the patrons report with names). The rule no longer applies to a
campaign its creator connected through OAuth: Eve's server follows nothing, may connect her own campaign (no 409),
and neither a later disconnect of the creator's server nor a restart gives her the `.env` campaign.
"""

from __future__ import annotations

import pytest

from bot.sync.participation import NO_CAMPAIGN
from fakes.world import SEED, FakeWorld, page_text
from tests.e2e.connect_world import CAMPAIGN_B, connect
from tests.e2e.test_admin import admin
from tests.e2e.test_trust_servers import EVE, OTHER, OTHER_GOLD, OTHER_LOG, world_with_other_server


@pytest.fixture
async def env_connected(tmp_path):
    """The creator's server connected to the `.env` campaign; Eve's server never connected."""
    world = await world_with_other_server(tmp_path)
    try:
        status, html = await connect(world, SEED.owner_id, "creator", world.patreon.owner_id)
        assert status == 200, page_text(html)
        yield world
    finally:
        await world.close()


async def eve_is_refused(world: FakeWorld) -> None:
    for path, options in (
        (["settings"], {"enabled": True, "log_channel": OTHER_LOG}),
        (["map"], {"tier": SEED.gold_tier, "role": OTHER_GOLD}),
        (["patrons"], {}),
        (["tiers"], {}),
    ):
        text = await admin(world, path, options, EVE, OTHER)
        assert NO_CAMPAIGN in text, (path, text)
        assert "Alice" not in text and "Gold" not in text
    assert not (await world.store.get_settings(OTHER)).enabled
    assert (await world.store.get_tier_roles(OTHER)).roles_by_tier == {}


async def test_a_strangers_server_does_not_inherit_the_env_campaign_its_creator_connected(env_connected):
    world = env_connected
    await eve_is_refused(world)
    # The creator's own server acts for it through its binding.
    assert "now get" in await admin(world, ["map"], {"tier": SEED.gold_tier, "role": SEED.vip_role})


async def test_eve_connects_her_own_campaign_without_a_409(env_connected):
    world = env_connected
    world.patreon.add_creator("p-eve", "Eve", CAMPAIGN_B)
    status, html = await connect(world, EVE, "eve", "p-eve", OTHER)
    assert status == 200, page_text(html)
    assert (await world.store.guild_binding(OTHER)).campaign_id == CAMPAIGN_B


async def test_neither_the_creators_disconnect_nor_a_restart_hands_eve_the_env_campaign(env_connected):
    world = env_connected
    assert "no longer follows" in await admin(world, ["disconnect"])
    await eve_is_refused(world)
    await world.stop_bot()
    await world.start_bot()
    await eve_is_refused(world)
