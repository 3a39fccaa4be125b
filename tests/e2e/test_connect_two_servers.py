"""Two servers connect two campaigns through `/patreon-admin connect` (issue 10, "Done when"): each campaign's
patrons get roles only in the server that follows it, in links, refreshes and webhooks, and each webhook's
secret opens only its own campaign's URL."""

from datetime import UTC, datetime, timedelta

from fakes.world import SEED
from tests.e2e.connect_world import (
    B_ROLE,
    B_TIER,
    BEN,
    CAMPAIGN_B,
    EVE,
    OTHER,
    connect_both,
    hooks_at,
    link_in,
    no_env_world,
)
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin
from tests.e2e.test_campaign_two_servers import roles_in


async def test_two_servers_on_two_connected_campaigns_never_see_each_others_patrons(tmp_path):
    world = await no_env_world(tmp_path)
    try:
        campaign_a = world.patreon.campaign.id
        await connect_both(world)
        assert "✅" in await admin(world, ["map"], {"tier": B_TIER, "role": B_ROLE}, EVE, OTHER)
        assert "Gold" not in await admin(world, ["tiers"], {}, EVE, OTHER)

        status, _ = await world.link(SEED.alice)
        assert status == 200
        status, _ = await link_in(world, OTHER, BEN, "ben", "p-ben")
        assert status == 200
        await world.refresh()
        await wait_for(lambda: B_ROLE in roles_in(world, OTHER, BEN))
        assert SEED.gold_role in world.roles_of(SEED.alice)
        assert roles_in(world, OTHER, SEED.alice) == set(), "Alice pledges to A, not to Eve"
        assert world.roles_of(BEN) == set(), "Ben pledges to Eve, not to A"

        (hook_a,) = hooks_at(world, campaign_a)
        (hook_b,) = hooks_at(world, CAMPAIGN_B)
        assert hook_a.secret != hook_b.secret
        world.patreon.campaigns[CAMPAIGN_B].set_membership(
            "p-ben", patron_status="former_patron", tier_ids=[], last_charge_date=datetime.now(UTC) - timedelta(90)
        )
        (delivery,) = await world.patreon.deliver_event("members:pledge:delete", "p-ben", campaign_id=CAMPAIGN_B)
        assert delivery.status == 202
        await wait_for(lambda: B_ROLE not in roles_in(world, OTHER, BEN))
        assert SEED.gold_role in world.roles_of(SEED.alice), "A's server is untouched"

        body = world.patreon.render_member_webhook_body("members:update", "p-ben", CAMPAIGN_B)
        status, _ = await world.patreon.send_webhook(
            "members:update", None, uri=hook_a.uri, body_override=body, secret=hook_b.secret
        )
        assert status == 401, "B's secret doesn't open A's URL"
    finally:
        await world.close()
