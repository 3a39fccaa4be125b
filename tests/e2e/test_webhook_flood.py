"""A charge day's flood of webhook deliveries for one campaign, against the fake Patreon's real limits (100 requests
per 2 s per client and 100 per minute per token, both on by default): the bot answers it with a listing of the
campaign instead of a look-up per member (bot/sync/webhook_flood.py), so it earns no 429 and every patron has the
right roles at the end; a small flood keeps the per-member look-ups; a failed listing loses and removes nothing;
and one campaign's flood never slows another campaign's webhooks (each creator token has its own window)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.guild_settings import GuildSettings
from bot.domain.models import TokenPair
from bot.store import LAST_REFRESH, Store
from bot.store.campaigns import OAUTH_SOURCE, campaign_token_subject
from bot.sync.webhook_flood import flood_wanted, listing_pages
from bot.web.webhook_receiver import MEMBER_TRIGGERS
from fakes.patreon import CREATOR_SCOPES
from fakes.world import SEED, FakeWorld
from tests.e2e.polling import wait_for

FAN_BASE = 771000000000000000
FLOOD = 400  # well above the token's 100 a minute
LOOKUP_PATH = "/api/oauth2/v2/members/"


def members_pages(world: FakeWorld, since: int, campaign_id: str) -> int:
    return sum(1 for _m, path, _q in world.patreon.calls[since:] if path.endswith(f"/campaigns/{campaign_id}/members"))


def lookups(world: FakeWorld, since: int) -> int:
    return sum(1 for _m, path, _q in world.patreon.calls[since:] if path.startswith(LOOKUP_PATH))


def fans_of(first: int, count: int) -> list[tuple[int, str]]:
    return [(FAN_BASE + n, f"p-flood{n}") for n in range(first, first + count)]


@pytest.fixture
async def make_world(tmp_path):
    """`make(free=…, gold=…)`: the world with that many more linked members of the creator's server, free members
    or Gold patrons at Patreon, all there before the bot starts (so its start-up refresh stores them and Discord's
    member list has them); returns (world, free fans, gold fans)."""
    made: list[FakeWorld] = []

    async def make(free: int = 0, gold: int = 0) -> tuple[FakeWorld, list[tuple[int, str]], list[tuple[int, str]]]:
        world = await FakeWorld(tmp_path / "bot.sqlite3").start(start_bot=False)
        made.append(world)
        free_fans, gold_fans = fans_of(0, free), fans_of(free, gold)
        for discord_id, patreon_id in free_fans + gold_fans:
            world.guild.add_member(discord_id, username=f"fan{discord_id - FAN_BASE}")
            world.patreon.add_user(patreon_id, f"Fan {discord_id - FAN_BASE}")
        for _d, patreon_id in free_fans:
            world.patreon.set_membership(patreon_id, None, tier_ids=[], last_charge_status=None)
        for _d, patreon_id in gold_fans:
            world.patreon.set_membership(
                patreon_id, "active_patron", tier_ids=[SEED.gold_tier], last_charge_status="Paid"
            )
        await world.seed_store()
        store = await world.open_store()
        try:
            for discord_id, patreon_id in free_fans + gold_fans:
                await store.save_link(discord_id, patreon_id, SEED.guild_id, "admin")
        finally:
            await store.close()
        await world.start_bot()
        await world.settle(timeout=30)
        return world, free_fans, gold_fans

    yield make
    for world in made:
        await world.close()


async def pledge_gold_and_deliver(world: FakeWorld, fans: list[tuple[int, str]]) -> None:
    for _discord_id, patreon_id in fans:
        world.patreon.set_membership(patreon_id, "active_patron", tier_ids=[SEED.gold_tier], last_charge_status="Paid")
    for _discord_id, patreon_id in fans:
        status, _ = await world.send_webhook("members:pledge:create", patreon_id)
        assert status == 202


def test_the_threshold_lists_only_a_flood_of_a_campaign_cheap_to_list() -> None:
    pages = listing_pages(3_000)
    assert pages == 4
    assert not flood_wanted(5, 0, 100, pages), "a few look-ups with a fresh token: looked up"
    assert not flood_wanted(10, 40, 100, pages), "half the token's minute at most: looked up"
    assert flood_wanted(1, 50, 100, pages), "past half the token's minute in look-ups: a listing answers"
    assert not flood_wanted(500, 90, 100, listing_pages(100_000)), "101 pages cost more than the token's quarter"
    assert not flood_wanted(500, None, None, pages), "tokens not budgeted: nobody waits, nothing to coalesce"


async def test_a_flood_is_answered_by_a_listing_with_no_429_and_every_role_right(make_world):
    world, fans, _ = await make_world(free=FLOOD)
    assert world.store is not None
    campaign_id = world.patreon.campaign.id
    before = len(world.patreon.calls)
    await pledge_gold_and_deliver(world, fans)
    await wait_for(lambda: all(world.roles_of(d) == {SEED.gold_role} for d, _ in fans), timeout=90)
    await world.settle(timeout=30)
    assert world.patreon.http_429 == 0, "neither Patreon limit was reached"
    requests = len(world.patreon.calls) - before
    assert requests < FLOOD / 3, f"{requests} Patreon requests for {FLOOD} deliveries"
    assert members_pages(world, before, campaign_id) >= 1, "a listing answered the flood"
    assert world.bot is not None and world.bot.services.webhook_applier.floods.listings >= 1
    counts = await world.store.webhook_event_counts()
    assert not counts.get("pending") and not counts.get("failed"), counts
    assert counts.get("superseded", 0) > FLOOD / 2, "most events were answered by the listing"


async def test_a_small_flood_keeps_the_per_member_look_ups_and_a_big_one_lists(make_world):
    world, fans, _ = await make_world(free=205)
    small, big = fans[:5], fans[5:]
    campaign_id = world.patreon.campaign.id
    before = len(world.patreon.calls)
    await pledge_gold_and_deliver(world, small)
    await wait_for(lambda: all(world.roles_of(d) == {SEED.gold_role} for d, _ in small), timeout=10)
    await world.settle()
    assert lookups(world, before) == 5, "one fresh look-up per member"
    assert members_pages(world, before, campaign_id) == 0, "no listing for five"
    before = len(world.patreon.calls)
    await pledge_gold_and_deliver(world, big)
    await wait_for(lambda: all(world.roles_of(d) == {SEED.gold_role} for d, _ in big), timeout=90)
    await world.settle(timeout=30)
    assert members_pages(world, before, campaign_id) >= 1 and lookups(world, before) < 100
    assert world.patreon.http_429 == 0


async def test_a_listing_that_fails_during_a_flood_leaves_the_events_pending_and_removes_no_role(make_world):
    world, _, fans = await make_world(gold=150)
    assert all(world.roles_of(d) == {SEED.gold_role} for d, _ in fans)
    assert world.store is not None and world.bot is not None
    for _d, patreon_id in fans:  # they cancel, and Patreon goes down for members (look-ups and listings alike)
        world.patreon.set_membership(patreon_id, "former_patron", tier_ids=[], last_charge_status=None)
    world.patreon.fail_next(r"/members", status=503, count=100_000)
    for _d, patreon_id in fans:
        status, _ = await world.send_webhook("members:pledge:delete", patreon_id)
        assert status == 202

    async def listing_failed() -> bool:
        fact = await world.store.get_fact(LAST_REFRESH)
        return isinstance(fact, dict) and fact.get("cause", "").startswith("webhook flood") and not fact.get("ok")

    # Failing look-ups (each retried) may have spent the token's minute before the flood was seen: the listing's
    # first page then waits for the window, as it must, before Patreon fails it.
    await wait_for(listing_failed, timeout=180)
    counts = await world.store.webhook_event_counts()
    assert counts.get("pending") == len(fans), f"every event waits for Patreon: {counts}"
    assert all(world.roles_of(d) == {SEED.gold_role} for d, _ in fans), "upstream failure removed no role"
    for _d, patreon_id in fans:
        assert await world.store.get_membership(patreon_id) is not None, "nobody was forgotten"
    # Patreon is back: nothing was lost. The next refresh (its look-ups may be in a long back-off by now) answers
    # every event still pending, and the cancels take the roles.
    world.patreon.faults.clear()
    assert (await world.refresh()).ok
    assert all(world.roles_of(d) == set() for d, _ in fans)
    counts = await world.store.webhook_event_counts()
    assert not counts.get("pending"), counts
    assert world.patreon.http_429 == 0


@pytest.fixture
async def two_campaigns(tmp_path):
    """The creator's `.env` campaign A (the world's) and Eve's connected campaign B with 300 linked patrons."""
    world = await FakeWorld(tmp_path / "bot.sqlite3").start(start_bot=False)
    try:
        other = world.discord.add_guild(OTHER, name="Eve's Server", owner_id=EVE)
        other.add_role(B_ROLE, "Eve Patron", position=10)
        other.add_member(EVE, username="eve")
        campaign = world.patreon.add_creator("p-eve", "Eve", CAMPAIGN_B)
        campaign.add_tier(B_TIER, "Eve's tier", 700)
        token = world.patreon.issue_tokens("p-eve", CREATOR_SCOPES)
        hook_url = f"{world.bot_url}/patreon/webhook/{CAMPAIGN_B}"
        world.patreon.add_webhook(hook_url, sorted(MEMBER_TRIGGERS), SECRET_B, campaign_id=CAMPAIGN_B)
        await world.seed_store()
        store = await Store.open(world.db_path)
        try:  # what `/patreon-admin connect` leaves behind once Eve approved on Patreon
            subject = campaign_token_subject(CAMPAIGN_B)
            expires = datetime.now(UTC) + timedelta(days=30)
            await store.save_tokens(subject, TokenPair(token.access_token, token.refresh_token, expires))
            await store.save_campaign(CAMPAIGN_B, token_subject=subject, source=OAUTH_SOURCE, webhook_secret=SECRET_B)
            await store.bind_guild(OTHER, CAMPAIGN_B, by=EVE)
            await store.map_tier_role(OTHER, B_TIER, B_ROLE)
            await store.save_settings(GuildSettings(guild_id=OTHER, enabled=True))
            for n in range(B_FANS):
                discord_id, patreon_id = FAN_BASE + 10_000 + n, f"p-eve-fan{n}"
                other.add_member(discord_id, username=f"evefan{n}")
                campaign.add_user(patreon_id, f"Eve fan {n}", None)
                campaign.set_membership(patreon_id, patron_status=None, tier_ids=[])
                await store.save_link(discord_id, patreon_id, OTHER, "admin")
        finally:
            await store.close()
        await world.start_bot()
        yield world
    finally:
        await world.close()


EVE = 750000000000000077
OTHER = 710000000000000077
B_ROLE = 730000000000000077
CAMPAIGN_B = "9100001"
B_TIER = "9200001"
SECRET_B = "campaign-b-webhook-secret"
B_FANS = 300


async def test_campaign_bs_flood_and_listing_never_slow_campaign_as_webhooks(two_campaigns):
    world = two_campaigns
    b = world.patreon.campaigns[CAMPAIGN_B]
    fans = [(FAN_BASE + 10_000 + n, f"p-eve-fan{n}") for n in range(B_FANS)]
    for _d, patreon_id in fans:
        b.set_membership(patreon_id, patron_status="active_patron", tier_ids=[B_TIER])
    # B's listing is slow at Patreon: each of its pages takes 3 s, so it is still under way when A's webhook comes.
    world.patreon.delay_next(rf"/campaigns/{CAMPAIGN_B}/members", seconds=3.0, count=20)
    before = len(world.patreon.calls)
    for _d, patreon_id in fans:
        deliveries = await world.patreon.deliver_event("members:pledge:create", patreon_id, campaign_id=CAMPAIGN_B)
        assert [d.status for d in deliveries] == [202]
    await wait_for(lambda: members_pages(world, before, CAMPAIGN_B) >= 1, timeout=30)
    assert world.bot is not None and world.bot.services.webhook_applier.floods.active, "B's listing is under way"

    await world.link(SEED.dave)  # a free member of A, linked
    world.patreon.set_membership("p-dave", "active_patron", tier_ids=[SEED.gold_tier])
    status, _ = await world.send_webhook("members:pledge:create", "p-dave")
    assert status == 202
    took = await wait_for(lambda: SEED.gold_role in world.roles_of(SEED.dave), timeout=5)
    assert took < 1.0, f"A's webhook took {took:.2f}s while B's listing ran"

    guild = world.discord.guild(OTHER)
    await wait_for(lambda: all(B_ROLE in guild.member(d).role_ids for d, _ in fans), timeout=90)
    assert world.patreon.http_429 == 0
    assert len(world.patreon.calls) - before < B_FANS / 2, "B's flood was answered by a listing"


async def test_a_replayed_flood_costs_a_listing_and_rolls_nothing_back(make_world):
    """Deliveries are signed but carry no timestamp, so whoever captured a charge day's flood can send it again.
    The replay is answered from what Patreon says now (never from the old bodies), by a listing, not a look-up
    each, and within Patreon's limits."""
    world, fans, _ = await make_world(free=150)
    for _d, patreon_id in fans:
        world.patreon.set_membership(patreon_id, "active_patron", tier_ids=[SEED.gold_tier], last_charge_status="Paid")
    captured = [world.patreon.render_member_webhook_body("members:pledge:create", p) for _d, p in fans]
    for body in captured:
        assert (await world.patreon.send_webhook("members:pledge:create", None, body_override=body))[0] == 202
    await wait_for(lambda: all(world.roles_of(d) == {SEED.gold_role} for d, _ in fans), timeout=60)
    await pledge_bronze_and_deliver(world, fans)
    await wait_for(lambda: all(world.roles_of(d) == {SEED.bronze_role} for d, _ in fans), timeout=60)
    await world.settle(timeout=30)

    before = len(world.patreon.calls)
    for _replay in range(2):
        for body in captured:  # byte for byte what Patreon sent, with its valid signature
            assert (await world.patreon.send_webhook("members:pledge:create", None, body_override=body))[0] == 202
    assert world.store is not None

    async def all_answered() -> bool:
        return not (await world.store.webhook_event_counts()).get("pending")

    await wait_for(all_answered, timeout=90)
    await world.settle(timeout=30)
    assert all(world.roles_of(d) == {SEED.bronze_role} for d, _ in fans), "the old Gold bodies changed nothing"
    assert world.patreon.http_429 == 0
    requests = len(world.patreon.calls) - before
    assert requests < len(captured) * 2 / 3, f"{requests} Patreon requests for {len(captured) * 2} replayed deliveries"


async def pledge_bronze_and_deliver(world: FakeWorld, fans: list[tuple[int, str]]) -> None:
    for _discord_id, patreon_id in fans:
        world.patreon.set_membership(
            patreon_id, "active_patron", tier_ids=[SEED.bronze_tier], last_charge_status="Paid"
        )
    for _discord_id, patreon_id in fans:
        assert (await world.send_webhook("members:pledge:update", patreon_id))[0] == 202


async def test_a_flood_waits_for_another_process_listing_the_campaign_then_lists_it_again(make_world):
    """Shards: any process applies events, but one campaign is listed by one process at a time (its refresh lock,
    `Store.exclusive`). While another holder lists it (that listing may have begun before the flood), the flood's
    events stay pending, deferred, with no role given from a guess; once the lock is free the flood is listed."""
    world, fans, _ = await make_world(free=150)
    assert world.store is not None and world.bot is not None
    applier, campaign = world.bot.services.webhook_applier, world.bot.services.campaign
    # "Another process" lists it: the bot's own store takes the lock (on SQLite the lock is the store's, in-process:
    # a second Store on the same file would not hold the bot's listing back, and the flood would list at once).
    async with world.bot.services.store.exclusive(f"refresh {campaign.token_subject}") as held:
        assert held
        before = len(world.patreon.calls)
        await pledge_gold_and_deliver(world, fans)
        await wait_for(lambda: applier.floods.active, timeout=30)
        counts = await world.store.webhook_event_counts()
        # None given up, none answered by a guess: pending (deferred to the listing) or looked up before the flood
        # showed. (Counted by state, read while the applier writes: under load a read here once showed a None key,
        # not yet explained; see the closing note. The rule the test holds is that nothing failed or was ignored.)
        assert not counts.get("failed") and not counts.get("ignored") and not counts.get("superseded"), counts
        assert members_pages(world, before, world.patreon.campaign.id) == 0, "nobody else lists it meanwhile"
        assert applier.floods.active and await applier.busy(), "the applier counts the waiting listing as work"
    await wait_for(lambda: all(world.roles_of(d) == {SEED.gold_role} for d, _ in fans), timeout=90)
    await world.settle(timeout=30)
    assert members_pages(world, before, world.patreon.campaign.id) >= 1
    assert not (await world.store.webhook_event_counts()).get("pending")
    assert world.patreon.http_429 == 0


async def test_a_flood_that_came_by_the_legacy_url_is_done_after_one_listing_not_listed_forever(make_world):
    """Events recorded without a campaign id (the `.env` campaign's legacy URL, before the process knew the id)
    are answered by the campaign's flood listing like any: marked done by id once it completed (review 4, R4-1:
    superseded only by campaign id, they were let go pending, flooded again and listed again, forever)."""
    world, fans, _ = await make_world(free=60)
    services = world.bot.services
    floods = services.webhook_applier.floods
    now = services.webhook_applier.clock()
    stored = await world.store.memberships_of([patreon_id for _d, patreon_id in fans[:55]])
    assert len(stored) == 55
    ids = []
    for patreon_id, membership in stored.items():
        event = await world.store.record_webhook_event(
            received_at=now - timedelta(seconds=1),
            trigger="members:pledge:update",
            resource_type="member",
            member_id=membership.member_id,
            patreon_user_id=patreon_id,
            campaign_id=None,
            body_sha256=f"legacy {patreon_id}",
            applicable=True,
            addressed_campaign_id="",
        )
        ids.append(event)
    services.webhook_applier.wake()

    async def all_done() -> bool:
        return not (await world.store.webhook_event_counts()).get("pending")

    assert len(set(ids)) == 55
    await wait_for(all_done, timeout=90)
    assert floods.listings == 1, "one listing answered the flood"
    assert not floods.active
