"""Several bot processes on one database (shards): what one process changes, another serves; what one process can't
do (a server of another shard), it hands to the owner as a role job in the database.

Two registries over one store stand for two processes' memories of the same database.
"""

from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.guild_settings import GuildSettings
from bot.domain.models import MembershipSnapshot, PatronStatus, TokenPair
from bot.domain.shards import ShardSpec
from bot.store import Store
from bot.store.campaigns import CampaignRecord
from bot.sync.campaign import CampaignService
from bot.sync.campaign_registry import CampaignRegistry
from bot.sync.other_shards import OtherShards
from bot.sync.participation import Participation
from bot.sync.plan_scope import DirtyMembers
from bot.sync.refresh import RefreshService
from fakes.sync_harness import GUILD, SyncHarness

CAMPAIGN, OTHER_CAMPAIGN = "5001", "5002"
BASE = (810000000000000000 >> 22) << 22
SHARD0 = [BASE + (n << 23) for n in range(3)]  # (id >> 22) even
SHARD1 = [BASE + (n << 23) + (1 << 22) for n in range(3)]  # odd
USER, PATRON = 750000000000000001, "p-alice"
HARNESS_CAMPAIGN = "7654321"


def now() -> datetime:
    return datetime.now(UTC)


def pair() -> TokenPair:
    return TokenPair("access", "refresh", now() + timedelta(days=30))


def registry(store: Store) -> CampaignRegistry:
    def build(record: CampaignRecord) -> CampaignService:
        return CampaignService(
            None,  # type: ignore[arg-type]  # nothing here asks Patreon
            store,
            None,
            now,
            record.campaign_id,
            on_token_rejected=None,
            token_subject=record.token_subject,
            source=record.source,
            webhook_secret=record.webhook_secret or "",
        )

    return CampaignRegistry(store, build)


@pytest.fixture
async def store(tmp_path):
    opened = await Store.open(tmp_path / "shared.sqlite3")
    yield opened
    await opened.close()


async def test_a_campaign_connected_rehooked_and_disconnected_elsewhere_is_served_here_after_a_reload(store):
    here, elsewhere = registry(store), registry(store)
    await here.load()
    await elsewhere.load()
    await elsewhere.add(CAMPAIGN, pair(), "first-secret")
    assert here.connected_service(CAMPAIGN) is None and here.webhook_secrets(CAMPAIGN) == []
    await here.reload()
    served = here.connected_service(CAMPAIGN)
    assert served is not None and here.webhook_secrets(CAMPAIGN) == ["first-secret"]

    await elsewhere.set_webhook(CAMPAIGN, "hook-2", "second-secret")  # e.g. webhook repair on another process
    await here.reload()
    assert here.webhook_secrets(CAMPAIGN) == ["second-secret"], "the replaced secret opens nothing any more"
    assert here.connected_service(CAMPAIGN) is served, "the service (its token lock) is kept"

    await elsewhere.remove(CAMPAIGN)
    await here.reload()
    assert here.connected_service(CAMPAIGN) is None and here.webhook_secrets(CAMPAIGN) == []


async def test_a_reload_keeps_what_this_process_just_connected(store):
    here = registry(store)
    await here.load()
    await here.add(CAMPAIGN, pair(), "secret")
    await here.reload()
    assert here.connected_service(CAMPAIGN) is not None


async def seeded(store: Store) -> Participation:
    campaigns = registry(store)
    await campaigns.load()
    await campaigns.add(CAMPAIGN, pair(), "secret")
    await campaigns.add(OTHER_CAMPAIGN, pair(), "other-secret")
    for guild_id in (*SHARD0, *SHARD1):
        await store.save_settings(GuildSettings(guild_id=guild_id, enabled=guild_id != SHARD1[2]))
    for guild_id in (SHARD0[0], SHARD1[0], SHARD1[2]):
        await store.bind_guild(guild_id, CAMPAIGN, None)
    for guild_id in (SHARD0[1], SHARD1[1]):
        await store.bind_guild(guild_id, OTHER_CAMPAIGN, None)
    await store.save_link(USER, PATRON, None, "oauth")
    snapshot = MembershipSnapshot(
        member_id="m-1", campaign_id=CAMPAIGN, patreon_user_id=PATRON, patron_status=PatronStatus.ACTIVE,
        observed_at=now(),
    )
    await store.save_membership(snapshot, CAMPAIGN)
    return Participation(store, list, (), campaigns)


async def test_a_member_is_handed_to_the_other_shards_servers_where_something_is_at_stake(store):
    participation = await seeded(store)
    queued: list[tuple[list[tuple[int, int]], str]] = []

    async def enqueue(keys, cause, urgent):
        assert urgent
        queued.append((list(keys), cause))

    shard_zero = OtherShards(store, ShardSpec(2, (0,)), participation, enqueue)
    assert await shard_zero.acting_guild_ids() == [SHARD1[0], SHARD1[1]]  # SHARD1[2] is not turned on
    assert await shard_zero.hand_off(USER, "linked") == 1
    # Only the other shard's server of the campaign she pledges to: the other campaign's server has nothing for her.
    assert queued == [([(SHARD1[0], USER)], "linked")]

    await store.record_grants(SHARD1[1], USER, [1234], "earlier")  # a role the bot gave her there: to take back
    queued.clear()
    assert await shard_zero.hand_off(USER, "unlinked") == 2
    assert sorted(queued[0][0]) == [(SHARD1[0], USER), (SHARD1[1], USER)]


async def test_one_process_running_every_shard_hands_nothing_off(store):
    participation = await seeded(store)

    async def enqueue(keys, cause, urgent):
        raise AssertionError("nothing to hand off")

    every = OtherShards(store, ShardSpec(2, (0, 1)), participation, enqueue)
    assert await every.acting_guild_ids() == []
    assert await every.hand_off(USER, "linked") == 0


async def test_a_server_bound_by_another_process_follows_its_campaign_here_after_a_reload(tmp_path):
    """The connect flow's callback may land on any process: its binding must reach the process that owns the
    server, whose store keeps the bindings in memory."""
    path = tmp_path / "shared.sqlite3"
    here_store, elsewhere_store = await Store.open(path), await Store.open(path)
    try:
        here, elsewhere = registry(here_store), registry(elsewhere_store)
        await elsewhere.load()
        await elsewhere.add(CAMPAIGN, pair(), "secret")
        await here.load()
        participation = Participation(here_store, list, (), here)
        assert await participation.campaign_for(SHARD1[0]) is None  # read (and kept in memory) before the bind
        await elsewhere.bind_guild(SHARD1[0], CAMPAIGN, by=None)
        assert await participation.campaign_for(SHARD1[0]) is None, "still the copy in memory"
        await here.reload()
        follows = await participation.campaign_for(SHARD1[0])
        assert follows is not None and follows.known_campaign_id() == CAMPAIGN
    finally:
        await here_store.close()
        await elsewhere_store.close()


async def test_a_member_the_refresh_forgot_is_handed_to_the_other_shards_servers_where_the_bot_gave_roles(store):
    """The listing no longer shows her and the refresh deleted her stored membership: another shard's process would
    never see her go (its own refresh finds nothing stored to forget), so her job goes to it now."""
    participation = await seeded(store)
    queued: list[tuple[list[tuple[int, int]], str, bool]] = []

    async def enqueue(keys, cause, urgent):
        queued.append((sorted(keys), cause, urgent))

    await store.record_grants(SHARD1[0], USER, [1234], "refresh")  # her Gold role there, the bot's to take back
    await store.delete_memberships_except(set(), now() + timedelta(seconds=1), CAMPAIGN)
    shard_zero = OtherShards(store, ShardSpec(2, (0,)), participation, enqueue)
    await shard_zero.memberships_forgotten([PATRON, "p-nobody-linked"], CAMPAIGN)
    assert queued == [([(SHARD1[0], USER)], "refresh", False)], "only where something is at stake, at refresh priority"

    queued.clear()
    every = OtherShards(store, ShardSpec(2, (0, 1)), participation, enqueue)
    await every.memberships_forgotten([PATRON], CAMPAIGN)
    assert queued == [], "one process running every shard plans its own servers"


async def test_the_refresh_tells_who_it_forgot_and_the_services_wire_it_to_the_other_shards(tmp_path):
    """RefreshService's `on_forgotten` hears the Patreon ids a complete listing forgot, with the campaign's key;
    build_services passes OtherShards.memberships_forgotten."""
    h = await SyncHarness(tmp_path / "bot.sqlite3", campaign_id=HARNESS_CAMPAIGN).start()
    try:
        services = h.services
        assert services is not None and h.store is not None
        h.patreon.add_tier("2001", "Gold", 1000)
        for patreon_id in ("p-ann", "p-cat"):
            h.patreon.add_user(patreon_id, patreon_id)
            h.patreon.set_membership(patreon_id, "active_patron", tier_ids=["2001"])
        await h.store.map_tier_role(GUILD, "2001", 630000000000000001)
        heard: list[tuple[list[str], str]] = []

        async def forgotten(patreon_ids, campaign_key):
            heard.append((sorted(patreon_ids), campaign_key))

        refresh = RefreshService(
            services.patreon, h.store, services.campaigns, services.reconcile, services.jobs, h.gateway, h.clock,
            DirtyMembers(), on_forgotten=forgotten,
        )
        assert (await refresh.run("first")).ok
        assert heard == [], "nobody forgotten, nothing told"
        h.patreon.remove_membership("p-cat")
        report = await refresh.run("cat left")
        assert report.ok and report.snapshots_forgotten == 1, report.detail
        assert heard == [(["p-cat"], HARNESS_CAMPAIGN)]
        assert services.refresh.on_forgotten is not None
        assert services.refresh.on_forgotten.__func__ is OtherShards.memberships_forgotten  # type: ignore[attr-defined]
    finally:
        await h.close()
