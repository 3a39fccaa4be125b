"""The refresh plans only what changed (issue 9, item 4) and streams the listing page by page (item 5).

What changed: a snapshot Patreon describes differently, a link made or dropped, roles changed on Discord (marked
by the adapter), time running out on a grace or paid-through period, a member gone. Everyone else costs no
planning (`members_planned`). A full re-plan still runs at start-up, on request (sync), daily, and when a guild's
settings or tier map change. Streaming keeps the safety rules: absence counts only after a complete listing.
"""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.sync.plan_scope import FULL_REPLAN_INTERVAL
from fakes.sync_harness import GUILD, SyncHarness
from tests.integration.test_refresh_safety import table_gone

GOLD, SILVER, VIP = 630000000000000001, 630000000000000002, 630000000000000003
ANN, BEN, CAT, DAN = 650000000000000001, 650000000000000002, 650000000000000003, 650000000000000004
LINKED = {"p-ann": ANN, "p-ben": BEN, "p-cat": CAT}


@pytest.fixture
async def h(tmp_path):
    """Ann, Ben and Cat pay for Gold and are linked; Dan pays too but isn't linked. A first (full) refresh has
    stored and applied everything."""
    h = await SyncHarness(tmp_path / "bot.sqlite3").start()
    h.patreon.add_tier("2001", "Gold", 1000)
    h.patreon.add_tier("2002", "Silver", 500)
    for pid, name in (("p-ann", "Ann"), ("p-ben", "Ben"), ("p-cat", "Cat"), ("p-dan", "Dan")):
        h.patreon.add_user(pid, name)
        h.patreon.set_membership(pid, "active_patron", tier_ids=["2001"])
    for pid, discord_id in LINKED.items():
        h.link_member(discord_id, {VIP} if discord_id == ANN else set())
        await h.store.save_link(discord_id, pid, GUILD, "oauth")
    h.link_member(DAN)
    await h.store.map_tier_role(GUILD, "2001", GOLD)
    try:
        first = await h.services.refresh.run("start-up")
        await h.services.jobs.wait_idle(5)
        assert first.ok and first.full_replan_guilds == 1 and first.members_planned == 3
        assert all(GOLD in h.guild.members[user] for user in LINKED.values())
        yield h
    finally:
        await h.close()


async def refresh(h):
    report = await h.services.refresh.run("scheduled")
    assert report.ok, report.detail
    await h.services.jobs.wait_idle(5)
    return report


# -- item 4: plan only what changed -------------------------------------------------------------------------


async def test_an_unchanged_campaign_costs_no_planning(h):
    report = await refresh(h)
    assert report.members_listed == 4 and report.full_replan_guilds == 0
    assert report.members_planned == 0 and report.jobs_queued == 0 and report.snapshots_saved == 0
    assert "0 planned" in report.detail


async def test_a_changed_snapshot_is_planned_and_only_it(h):
    h.patreon.set_membership("p-ben", "former_patron", tier_ids=[])  # no webhook
    report = await refresh(h)
    assert report.members_planned == 1 and report.roles_differ == 1 and report.snapshots_saved == 1
    assert h.guild.members[BEN] == set() and GOLD in h.guild.members[ANN]


async def test_a_role_changed_by_hand_on_discord_is_planned_once_marked(h):
    h.guild.members[ANN].discard(GOLD)  # a moderator took Gold from a paying patron
    unmarked = await refresh(h)
    assert unmarked.members_planned == 0 and GOLD not in h.guild.members[ANN], "nothing says Ann changed"
    h.services.dirty_members.mark(GUILD, ANN)  # what the Discord adapter does on GUILD_MEMBER_UPDATE
    report = await refresh(h)
    assert report.members_planned == 1 and report.roles_differ == 1
    assert h.guild.members[ANN] == {VIP, GOLD}, "Gold given back, the hand-given VIP untouched"
    assert (await refresh(h)).members_planned == 0, "a mark is planned once"


async def test_marks_survive_a_failed_refresh(h):
    h.guild.members[ANN].discard(GOLD)
    h.services.dirty_members.mark(GUILD, ANN)
    h.patreon.fail_next(r"/members", status=500, count=100)
    assert not (await h.services.refresh.run("scheduled")).ok
    h.patreon.faults.clear()
    report = await refresh(h)
    assert report.members_planned == 1 and GOLD in h.guild.members[ANN]


async def test_a_new_link_is_planned(h):
    await h.store.save_link(DAN, "p-dan", GUILD, "oauth")  # linked without the link flow's own reconcile
    report = await refresh(h)
    assert report.members_planned == 1 and report.roles_differ == 1
    assert h.guild.members[DAN] == {GOLD}


async def test_an_unlink_is_planned_and_takes_back_only_our_role(h):
    h.guild.members[CAT].add(VIP)  # hand-given
    await h.store.delete_link(CAT)  # unlinked without the unlink's own reconcile
    report = await refresh(h)
    assert report.members_planned == 1 and h.guild.members[CAT] == {VIP}


async def test_a_member_who_left_the_campaign_is_planned(h):
    h.patreon.remove_membership("p-cat")
    report = await refresh(h)
    assert report.snapshots_forgotten == 1 and report.members_planned == 1
    assert h.guild.members[CAT] == set()


async def test_a_tier_map_change_replans_the_whole_guild(h):
    await h.store.map_tier_role(GUILD, "2001", SILVER)
    report = await refresh(h)
    assert report.full_replan_guilds == 1 and report.members_planned == 3
    assert all(SILVER in h.guild.members[user] for user in LINKED.values())
    assert (await refresh(h)).full_replan_guilds == 0


async def test_a_settings_change_replans_the_whole_guild(h):
    await h.store.save_settings(replace(await h.store.get_settings(GUILD), former_patron_role_id=SILVER))
    h.patreon.set_membership("p-ben", "former_patron", tier_ids=[], next_charge_date=None)
    report = await refresh(h)
    assert report.full_replan_guilds == 1 and report.members_planned == 3
    assert h.guild.members[BEN] == {SILVER}


async def test_a_full_replan_runs_daily_and_on_request(h):
    h.guild.members[BEN].discard(GOLD)  # unmarked: only a full re-plan finds it
    h.clock.advance(seconds=FULL_REPLAN_INTERVAL.total_seconds() - 60)
    assert (await refresh(h)).full_replan_guilds == 0 and GOLD not in h.guild.members[BEN]
    h.clock.advance(seconds=120)
    daily = await refresh(h)
    assert daily.full_replan_guilds == 1 and daily.members_planned == 3 and GOLD in h.guild.members[BEN]
    h.guild.members[BEN].discard(GOLD)
    h.services.refresh.request_full_plan(GUILD)  # what `/patreon-admin sync dry_run:False` asks for
    asked = await refresh(h)
    assert asked.full_replan_guilds == 1 and GOLD in h.guild.members[BEN]
    assert (await refresh(h)).full_replan_guilds == 0


async def test_a_grace_period_ending_is_planned_without_any_change_at_patreon(h):
    await h.store.save_settings(replace(await h.store.get_settings(GUILD), decline_grace_days=3))
    declined = datetime.now(UTC) - timedelta(days=3) + timedelta(hours=1)
    h.patreon.set_membership("p-ben", "declined_patron", tier_ids=["2001"], last_charge_status="Declined",
                             last_charge_date=declined)  # fmt: skip
    kept = await refresh(h)  # settings changed: a full plan; Ben is in his grace period
    assert kept.full_replan_guilds == 1 and GOLD in h.guild.members[BEN]
    h.clock.advance(hours=2)  # the grace ends; Patreon says nothing new
    report = await refresh(h)
    assert report.full_replan_guilds == 0 and report.snapshots_saved == 0 and report.members_planned == 1
    assert h.guild.members[BEN] == set()


# -- item 5: streaming keeps the safety rules -----------------------------------------------------------------


async def test_a_listing_failing_on_page_3_forgets_nobody_and_removes_nothing_for_absence(h):
    h.services.refresh.page_size = 1  # Ann, Ben, Cat, Dan: one page each
    h.patreon.set_membership("p-ann", "former_patron", tier_ids=[], next_charge_date=None)  # page 1: a real change
    h.patreon.remove_membership("p-ben")  # absent from the listing: only a complete listing may act on it
    h.patreon.delay_next(r"/members", 0, count=2)  # faults fire in order: pages 1 and 2 arrive
    h.patreon.fail_next(r"/members", status=503, count=100)
    report = await h.services.refresh.run("scheduled")
    await h.services.jobs.wait_idle(5)
    assert not report.ok and report.pages == 2 and report.snapshots_forgotten == 0
    assert h.guild.members[ANN] == {VIP}, "what a page showed is Patreon's word: Ann is a former patron"
    assert h.guild.members[BEN] == {GOLD}, "Ben's absence is not acted on"
    assert await h.store.get_membership("p-ben") is not None, "nobody is forgotten"
    h.patreon.faults.clear()
    complete = await refresh(h)
    assert complete.snapshots_forgotten == 1 and h.guild.members[BEN] == set()



async def test_a_failure_between_storing_and_planning_makes_the_next_refresh_plan_everyone(h):
    """The stored hash already says "unchanged" for a snapshot whose plan never ran: only a full plan finds it."""
    h.patreon.set_membership("p-ben", "former_patron", tier_ids=[], next_charge_date=None)
    with table_gone(h.db_path, "role_grants"):  # the planner's ledger read fails, after the page was stored
        failed = await h.services.refresh.run("scheduled")
    assert not failed.ok and failed.snapshots_saved == 1 and GOLD in h.guild.members[BEN]
    report = await refresh(h)
    assert report.full_replan_guilds == 1 and report.snapshots_saved == 0
    assert h.guild.members[BEN] == set()


async def test_a_server_that_stops_and_starts_acting_again_is_planned_in_full(h):
    await h.store.save_settings(replace(await h.store.get_settings(GUILD), enabled=False))
    h.patreon.set_membership("p-ben", "former_patron", tier_ids=[], next_charge_date=None)
    off = await refresh(h)
    assert off.members_planned == 0 and GOLD in h.guild.members[BEN], "a server that doesn't act is left alone"
    await h.store.save_settings(replace(await h.store.get_settings(GUILD), enabled=True))
    back = await refresh(h)
    assert back.full_replan_guilds == 1 and h.guild.members[BEN] == set()
