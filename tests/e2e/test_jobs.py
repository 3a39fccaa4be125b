"""The durable role queue end to end: Discord outages, a bot killed mid-queue, failures that can't be retried."""

from fakes.world import SEED
from tests.e2e.polling import wait_for


async def test_a_bot_killed_with_jobs_pending_finishes_them_after_restart(world):
    await world.link(SEED.carol)  # a former patron: no role yet
    await world.link(SEED.dave)  # a free member: no role yet
    world.discord.clear_calls()
    world.bot.services.jobs.retry_base = 60  # after one failure, a job would wait a minute
    world.fail_role_changes(SEED.carol, status=503)
    world.fail_role_changes(SEED.dave, status=503)
    world.patreon.set_membership("p-carol", "active_patron", tier_ids=[SEED.gold_tier])
    world.patreon.set_membership("p-dave", "active_patron", tier_ids=[SEED.bronze_tier])
    await world.send_webhook("members:pledge:create", "p-carol")
    await world.send_webhook("members:pledge:create", "p-dave")
    await wait_for(lambda: len(world.role_calls(SEED.carol)) == 1 and len(world.role_calls(SEED.dave)) == 1)

    async def both_failed_once() -> bool:  # each job's failure is recorded: it waits out its minute
        pending = await world.store.pending_role_jobs()
        return {(job.user_id, job.attempts) for job in pending} == {(SEED.carol, 1), (SEED.dave, 1)}

    await wait_for(both_failed_once)
    assert world.roles_of(SEED.carol) == set() and world.roles_of(SEED.dave) == set()

    await world.stop_bot()
    # The restart's own refresh fails, so only the queue that survived in SQLite can finish the work.
    world.patreon.fail_next(r"/members", status=500, count=100)
    await world.start_bot()
    await wait_for(lambda: world.roles_of(SEED.carol) == {SEED.gold_role})
    await wait_for(lambda: world.roles_of(SEED.dave) == {SEED.bronze_role})
    await world.settle()
    assert await world.store.pending_role_jobs() == []
    last = world.bot.services.refresh.last_report
    assert last is not None and not last.ok, "the work was finished by the queue, not by a refresh"
    assert await world.store.granted_roles(SEED.guild_id, SEED.carol) == frozenset({SEED.gold_role})


async def test_a_discord_outage_is_retried_with_backoff_until_it_works(world):
    await world.link(SEED.dave)
    world.fail_role_changes(SEED.dave, status=503, count=3)
    world.patreon.set_membership("p-dave", "active_patron", tier_ids=[SEED.gold_tier])
    await world.send_webhook("members:pledge:create", "p-dave")
    await wait_for(lambda: world.roles_of(SEED.dave) == {SEED.gold_role})
    assert len(world.role_calls(SEED.dave)) == 4
    await world.settle()
    assert await world.store.pending_role_jobs() == []
    assert await world.store.failed_role_jobs() == []


async def test_a_permanent_failure_is_recorded_reported_once_and_not_retried(world):
    await world.link(SEED.dave)
    world.fail_role_changes(SEED.dave, status=403, count=10, code=50013, message="Missing Permissions")
    world.patreon.set_membership("p-dave", "active_patron", tier_ids=[SEED.gold_tier])
    await world.send_webhook("members:pledge:create", "p-dave")

    def reports() -> list[str]:
        return [
            m["content"] for m in world.discord.messages(SEED.log_channel) if "Could not update roles" in m["content"]
        ]

    await wait_for(lambda: len(reports()) == 1)
    failed = await world.store.failed_role_jobs(SEED.guild_id)
    assert [(job.user_id, job.state) for job in failed] == [(SEED.dave, "failed")]
    assert "Missing Permissions" in (failed[0].last_error or "")
    await world.settle()
    assert await world.store.pending_role_jobs() == [], "parked as failed, not waiting for a retry"
    assert len(world.role_calls(SEED.dave)) == 1, "not retried"
    assert world.roles_of(SEED.dave) == set()
    assert await world.store.granted_roles(SEED.guild_id, SEED.dave) == frozenset(), "no grant without the role"

    await world.refresh()  # a refresh asks again; the same failure is not reported twice
    assert len(world.role_calls(SEED.dave)) == 2
    failed_again = await world.store.failed_role_jobs(SEED.guild_id)
    assert [(job.user_id, job.seq) for job in failed_again] == [(SEED.dave, 2)], "the refresh's job failed too"
    assert await world.store.pending_role_jobs() == []
    await world.bot.services.channel_log.flush()  # the queue's log lines are buffered: post what waits
    assert len(reports()) == 1


async def test_a_role_above_the_bot_is_reported_not_sent(world):
    await world.bot.services.store.map_tier_role(SEED.guild_id, SEED.bronze_tier, SEED.above_bot_role)
    await world.link(SEED.dave)
    world.discord.clear_calls()
    world.patreon.set_membership("p-dave", "active_patron", tier_ids=[SEED.bronze_tier])
    await world.send_webhook("members:pledge:create", "p-dave")
    await world.settle()
    await wait_for(lambda: world.roles_of(SEED.dave) == {SEED.bronze_role})
    assert SEED.above_bot_role not in world.roles_of(SEED.dave)
    calls = world.role_calls(SEED.dave)
    assert len(calls) == 1 and str(SEED.above_bot_role) not in calls[0].path + str(calls[0].json)
    await wait_for(
        lambda: any("above the bot's highest role" in m["content"] for m in world.discord.messages(SEED.log_channel))
    )


async def test_role_changes_respect_the_global_rate_budget(world):
    """Many jobs at once never exceed Discord's 50 requests per second."""
    guild = world.guild
    user_ids = [770000000000000000 + n for n in range(60)]
    for n, user_id in enumerate(user_ids):
        guild.add_member(user_id, username=f"fan{n}")
        world.patreon.add_user(f"p-fan{n}", f"Fan {n}")
        world.patreon.set_membership(f"p-fan{n}", "active_patron", tier_ids=[SEED.bronze_tier])
        await world.store.save_link(user_id, f"p-fan{n}", SEED.guild_id, "admin")
    world.discord.clear_calls()
    report = await world.refresh()
    assert report.roles_differ == 60
    patches = world.role_calls()
    assert len(patches) == 60
    assert all(SEED.bronze_role in world.roles_of(user_id) for user_id in user_ids)
    times = sorted(call.at for call in patches)
    worst = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert worst <= 50
