"""A creator revokes the app (issue 10, item 7): Patreon answers `invalid_grant` to the campaign's refresh token.
The bound server's log channel is told once (not at every refresh), roles are held, `check` says to reconnect
with `/patreon-admin connect`, and reconnecting clears it."""

from fakes.world import page_text
from tests.e2e.connect_world import (
    B_ROLE,
    B_TIER,
    BEN,
    CAMPAIGN_B,
    EVE,
    OTHER,
    OTHER_LOG,
    connect,
    link_in,
    no_env_world,
)
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin
from tests.e2e.test_campaign_two_servers import roles_in

RECONNECT = "reconnect with `/patreon-admin connect`"


def alerts(world) -> list[str]:
    return [m["content"] for m in world.discord.messages(OTHER_LOG) if "refused" in m["content"]]


async def test_a_revoked_creator_is_told_once_roles_are_held_and_reconnecting_clears_it(tmp_path):
    world = await no_env_world(tmp_path)
    try:
        status, html = await connect(world, EVE, "eve", "p-eve", OTHER)
        assert status == 200, page_text(html)
        assert "✅" in await admin(world, ["map"], {"tier": B_TIER, "role": B_ROLE}, EVE, OTHER)
        status, html = await link_in(world, OTHER, BEN, "ben", "p-ben")
        assert status == 200, page_text(html)
        await world.refresh()
        await wait_for(lambda: B_ROLE in roles_in(world, OTHER, BEN))

        world.patreon.revoke("p-eve")
        for _ in range(3):
            report = await world.refresh()
            assert not report.ok
        await wait_for(lambda: len(alerts(world)) >= 1)
        assert len(alerts(world)) == 1, alerts(world)
        assert "/patreon-admin connect" in alerts(world)[0]
        assert B_ROLE in roles_in(world, OTHER, BEN), "roles are held"
        record = await world.bot.services.store.get_campaign(CAMPAIGN_B)
        assert record.state == "revoked"
        check = await admin(world, ["check"], {}, EVE, OTHER)
        assert RECONNECT in check, check

        status, html = await connect(world, EVE, "eve", "p-eve", OTHER)
        assert status == 200, page_text(html)
        assert (await world.bot.services.store.get_campaign(CAMPAIGN_B)).state == "active"
        check = await admin(world, ["check"], {}, EVE, OTHER)
        assert RECONNECT not in check, check
        assert (await world.refresh()).ok
        assert B_ROLE in roles_in(world, OTHER, BEN)
    finally:
        await world.close()
