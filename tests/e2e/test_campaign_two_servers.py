"""Two servers on two campaigns in one bot (issue 10, item 3), against the real bot and the fakes: the creator's
server follows the `.env` campaign A; Eve's server is bound (through the store API the connect flow uses) to her
own campaign B, whose creator token, tier and webhook live in the fake Patreon. A patron of A gets nothing in B's
server and the other way round, in the refresh and in webhooks; each campaign's deliveries carry its own secret."""

from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.guild_settings import GuildSettings
from bot.domain.models import TokenPair
from bot.store import Store
from bot.store.campaigns import OAUTH_SOURCE, campaign_token_subject
from bot.web.webhook_receiver import MEMBER_TRIGGERS
from fakes.patreon import CREATOR_SCOPES
from fakes.world import SEED, FakeWorld
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin
from tests.e2e.test_trust_servers import first_line

EVE = 750000000000000077
BEN = 750000000000000078  # a patron of Eve's campaign, in both servers
OTHER = 710000000000000077
B_ROLE = 730000000000000077
CAMPAIGN_B = "9100001"
B_TIER = "9200001"
SECRET_B = "campaign-b-webhook-secret"


def roles_in(world: FakeWorld, guild_id: int, user_id: int) -> set[int]:
    return set(world.discord.guild(guild_id).member(user_id).role_ids)


@pytest.fixture
async def two_campaigns(tmp_path):
    world = await FakeWorld(tmp_path / "bot.sqlite3").start(start_bot=False)
    try:
        other = world.discord.add_guild(OTHER, name="Eve's Server", owner_id=EVE)
        other.add_role(B_ROLE, "Eve Patron", position=10)
        other.add_member(EVE, username="eve")
        for guild in (other, world.guild):
            guild.add_member(BEN, username="ben")
        other.add_member(SEED.alice, username="alice")
        campaign = world.patreon.add_creator("p-eve", "Eve", CAMPAIGN_B)
        campaign.add_tier(B_TIER, "Eve's tier", 700)
        campaign.add_user("p-ben", "Ben", None)
        campaign.set_membership("p-ben", patron_status="active_patron", tier_ids=[B_TIER])
        token = world.patreon.issue_tokens("p-eve", CREATOR_SCOPES)
        hook_url = f"{world.bot_url}/patreon/webhook/{CAMPAIGN_B}".replace("localhost", "127.0.0.1")
        hook = world.patreon.add_webhook(hook_url, sorted(MEMBER_TRIGGERS), SECRET_B, campaign_id=CAMPAIGN_B)
        await world.seed_store()
        store = await Store.open(world.db_path)
        try:  # what `/patreon-admin connect` leaves behind once Eve approved on Patreon
            subject = campaign_token_subject(CAMPAIGN_B)
            expires = datetime.now(UTC) + timedelta(days=30)
            await store.save_tokens(subject, TokenPair(token.access_token, token.refresh_token, expires))
            await store.save_campaign(
                CAMPAIGN_B, token_subject=subject, source=OAUTH_SOURCE, webhook_secret=SECRET_B, webhook_id=hook.id
            )
            await store.bind_guild(OTHER, CAMPAIGN_B, by=EVE)
            await store.map_tier_role(OTHER, B_TIER, B_ROLE)
            await store.save_settings(GuildSettings(guild_id=OTHER, enabled=True))
            await store.save_link(BEN, "p-ben", None, "oauth")
            await store.save_link(SEED.alice, "p-alice", None, "oauth")
        finally:
            await store.close()
        await world.start_bot()
        yield world
    finally:
        await world.close()


async def test_the_start_up_refresh_gives_each_patron_roles_only_in_their_campaigns_server(two_campaigns):
    world = two_campaigns
    await wait_for(lambda: B_ROLE in roles_in(world, OTHER, BEN))
    assert SEED.gold_role in world.roles_of(SEED.alice)
    assert roles_in(world, OTHER, SEED.alice) == set(), "Alice pledges to A, not to Eve"
    assert world.roles_of(BEN) == set(), "Ben pledges to Eve, not to A"
    check = await admin(world, ["check"])
    assert first_line(check) == "✅ This server acts for the Patreon campaign."
    assert f"It follows campaign {world.patreon.campaign.id}, from the bot's .env creator tokens." in check
    check = await admin(world, ["check"], {}, EVE, OTHER)
    assert first_line(check) == "✅ This server acts for the Patreon campaign."
    assert f"It follows campaign {CAMPAIGN_B}, connected by <@{EVE}> on " in check


async def test_each_campaigns_webhook_reaches_only_its_own_server(two_campaigns):
    world = two_campaigns
    await wait_for(lambda: B_ROLE in roles_in(world, OTHER, BEN))
    world.patreon.campaigns[CAMPAIGN_B].set_membership(
        "p-ben", patron_status="former_patron", tier_ids=[], last_charge_date=datetime.now(UTC) - timedelta(days=90)
    )
    deliveries = await world.patreon.deliver_event("members:pledge:delete", "p-ben", campaign_id=CAMPAIGN_B)
    assert [d.status for d in deliveries] == [202]
    await wait_for(lambda: B_ROLE not in roles_in(world, OTHER, BEN))
    assert world.roles_of(SEED.alice) >= {SEED.gold_role}, "A's server is untouched"

    # Eve's campaign's secret opens only Eve's URL: the same body at A's URLs is refused before it is read.
    body = world.patreon.render_member_webhook_body("members:update", "p-ben", CAMPAIGN_B)
    for path in ("/patreon/webhook", f"/patreon/webhook/{world.patreon.campaign.id}"):
        status, _ = await world.patreon.send_webhook(
            "members:update", None, uri=f"http://127.0.0.1:{world.web_port}{path}", body_override=body, secret=SECRET_B
        )
        assert status == 401, path
    status, _ = await world.send_webhook("members:update", "p-alice")
    assert status == 202, "A's own hook still works on the legacy URL"


async def test_eves_server_sees_only_her_campaigns_tiers(two_campaigns):
    world = two_campaigns
    text = await admin(world, ["tiers"], {}, EVE, OTHER)
    assert "Eve's tier" in text and "Gold" not in text and "Bronze" not in text
    text = await admin(world, ["tiers"])
    assert "Gold" in text and "Eve's tier" not in text


async def test_eves_server_can_not_reach_campaign_as_tiers_or_patrons(two_campaigns):
    """Eve admins a server bound to her own campaign: every command that exists today stays within it."""
    world = two_campaigns
    await wait_for(lambda: B_ROLE in roles_in(world, OTHER, BEN))
    text = await admin(world, ["map"], {"tier": SEED.gold_tier, "role": B_ROLE}, EVE, OTHER)
    assert "isn't one of this campaign's tiers" in text
    assert (await world.store.get_tier_roles(OTHER)).roles_by_tier == {B_TIER: frozenset({B_ROLE})}
    # Alice (a patron of A) linked herself: Eve can't re-link her by hand, and her link gives nothing in B's server.
    await admin(world, ["link-user"], {"member": SEED.alice, "patreon_user_id": "p-alice"}, EVE, OTHER)
    assert roles_in(world, OTHER, SEED.alice) == set()
    assert SEED.gold_role in world.roles_of(SEED.alice), "and her roles in A's server stay"
    binding = await world.store.guild_binding(OTHER)
    assert binding is not None and binding.campaign_id == CAMPAIGN_B, "no command re-binds a server"
    assert await world.store.guild_binding(SEED.guild_id) is None
