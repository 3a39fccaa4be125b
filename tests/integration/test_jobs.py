"""The durable role queue on a real SQLite file: coalescing, retries, bounds, restarts, pacing, log batching."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.guild_settings import GuildSettings
from bot.store import Store
from bot.sync.channel_log import ChannelLog, pack_messages
from bot.sync.reconcile import ReconcileService
from bot.sync.role_jobs import RoleJobs, TokenBucket
from fakes.memory_gateway import MemoryGateway

GUILD, ROLE, LOG = 1, 11, 21
T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
async def store(tmp_path):
    opened = await Store.open(tmp_path / "bot.sqlite3")
    yield opened
    await opened.close()


async def queue_with(store, gateway=None, *, channel_log=False, **options) -> tuple[RoleJobs, MemoryGateway]:
    """A worker whose members 1..3 lack a free-member role the policy wants for unlinked... via a grant to take."""
    gateway = gateway or MemoryGateway()
    guild = gateway.add_guild(GUILD)
    for user in (1, 2, 3):
        guild.members.setdefault(user, {ROLE})
        await store.record_grants(GUILD, user, [ROLE], "earlier")  # not linked any more: the role must go
    await store.save_settings(GuildSettings(guild_id=GUILD, log_channel_id=LOG))
    buffered = ChannelLog(gateway.post_log, linger=0) if channel_log else None
    reconcile = ReconcileService(store, gateway, lambda: datetime.now(UTC), limiter=None, channel_log=buffered)
    jobs = RoleJobs(store, reconcile, gateway, lambda: datetime.now(UTC), retry_base=0.01, **options)
    return jobs, gateway


async def run_until_idle(jobs: RoleJobs, settle: float = 0.0) -> None:
    worker = asyncio.create_task(jobs.run())
    try:
        await asyncio.sleep(settle)
        await jobs.wait_idle(5)
    finally:
        await jobs.stop(1)
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)


async def test_enqueue_coalesces_one_row_per_member(store):
    for cause in ("a", "b", "c"):
        await store.enqueue_role_jobs([(GUILD, 1)], cause, T0)
    (job,) = await store.pending_role_jobs()
    assert (job.cause, job.seq, job.attempts) == ("c", 3, 0)


async def test_finishing_an_outdated_job_keeps_the_newer_request(store):
    await store.enqueue_role_jobs([(GUILD, 1)], "first", T0)
    (running,) = await store.due_role_jobs(T0, 10)
    await store.enqueue_role_jobs([(GUILD, 1)], "arrived while running", T0)
    assert not await store.finish_role_job(running)
    (left,) = await store.pending_role_jobs()
    assert left.cause == "arrived while running"


async def test_the_worker_applies_jobs_and_deletes_them(store):
    jobs, gateway = await queue_with(store)
    await jobs.enqueue_many([(GUILD, 1), (GUILD, 2), (GUILD, 3)], "test")
    await run_until_idle(jobs)
    assert all(gateway.guilds[GUILD].members[user] == set() for user in (1, 2, 3))
    assert len(gateway.calls) == 3 and jobs.applied == 3
    assert await store.pending_role_jobs() == []


async def test_transient_failures_retry_then_succeed(store):
    jobs, gateway = await queue_with(store)
    gateway.fail_next(2)
    await jobs.enqueue(GUILD, 1, "test")
    await run_until_idle(jobs, settle=0.2)
    assert gateway.guilds[GUILD].members[1] == set()
    assert len(gateway.calls) == 3
    assert await store.role_job_counts() == {}


async def test_transient_failures_are_bounded_then_parked_and_reported_once(store):
    jobs, gateway = await queue_with(store, channel_log=True, max_attempts=3)
    gateway.fail_next(100)
    await jobs.enqueue(GUILD, 1, "test")
    await run_until_idle(jobs, settle=0.3)
    assert len(gateway.calls) == 3, "no more than max_attempts"
    (failed,) = await store.failed_role_jobs(GUILD)
    assert failed.user_id == 1 and "gave up after 3 attempts" in (failed.last_error or "")
    await jobs.reconcile.channel_log.flush()
    assert [text for _, text in gateway.logs if "Could not update roles" in text] != []
    reported = len(gateway.logs)
    await jobs.enqueue(GUILD, 1, "refresh")  # revived by a later request; same trouble is not reported again
    await run_until_idle(jobs, settle=0.3)
    await jobs.reconcile.channel_log.flush()
    assert len([t for _, t in gateway.logs[reported:] if "Could not update roles" in t]) == 0


async def test_a_permanent_failure_is_not_retried(store):
    jobs, gateway = await queue_with(store)
    gateway.fail_next(5, permanent=True, message="Discord refused the change (Missing Permissions)")
    await jobs.enqueue(GUILD, 2, "test")
    await run_until_idle(jobs, settle=0.2)
    assert len(gateway.calls) == 1
    (failed,) = await store.failed_role_jobs()
    assert failed.user_id == 2 and failed.state == "failed"
    assert gateway.guilds[GUILD].members[2] == {ROLE}, "nothing changed, nothing forgotten"
    assert await store.granted_roles(GUILD, 2) == frozenset({ROLE})


async def test_pending_jobs_survive_a_restart_and_run_at_once(tmp_path):
    path = tmp_path / "bot.sqlite3"
    first = await Store.open(path)
    await first.enqueue_role_jobs([(GUILD, 1), (GUILD, 2)], "before the crash", T0)
    (job, _) = await first.due_role_jobs(T0, 10)
    await first.retry_role_job(job, datetime.now(UTC) + timedelta(hours=1), "Discord failed (503)")
    await first.close()
    second = await Store.open(path)
    try:
        jobs, gateway = await queue_with(second)
        await run_until_idle(jobs)
        assert gateway.guilds[GUILD].members[1] == set() and gateway.guilds[GUILD].members[2] == set()
        assert await second.pending_role_jobs() == []
    finally:
        await second.close()


async def test_jobs_for_members_who_left_are_dropped_without_a_call(store):
    jobs, gateway = await queue_with(store)
    del gateway.guilds[GUILD].members[3]
    await jobs.enqueue(GUILD, 3, "test")
    await run_until_idle(jobs)
    assert gateway.calls == [] and await store.pending_role_jobs() == []


async def test_per_guild_concurrency_is_bounded(store):
    jobs, gateway = await queue_with(store, per_guild=2)
    running, peak = 0, 0
    original = gateway.set_member_roles

    async def slow(*args, **kwargs):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1
        await original(*args, **kwargs)

    gateway.set_member_roles = slow
    await jobs.enqueue_many([(GUILD, 1), (GUILD, 2), (GUILD, 3)], "test")
    await run_until_idle(jobs)
    assert peak == 2 and len(gateway.calls) == 3


async def test_token_bucket_paces_after_the_burst():
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    bucket = TokenBucket(rate=40, capacity=10, monotonic=lambda: now[0], sleep=sleep)
    for _ in range(50):
        await bucket.acquire()
    assert now[0] == pytest.approx(1.0, abs=0.01), "10 at once, then 40 per second"


def test_log_lines_are_packed_under_discords_limit():
    lines = [f"line {n} " + "x" * 90 for n in range(60)]
    messages = pack_messages(lines)
    assert all(len(message) <= 2000 for message in messages)
    assert "\n".join(messages).split("\n") == lines
    assert len(messages) < len(lines) / 10


async def test_channel_log_caps_a_flood_and_says_so():
    posted: list[tuple[int, str]] = []

    async def post(channel: int, text: str) -> None:
        posted.append((channel, text))

    log = ChannelLog(post, linger=0, max_lines=5)
    for n in range(12):
        log.add(LOG, f"change {n}")
    await log.close()
    text = "\n".join(message for _, message in posted)
    assert "change 4" in text and "change 5" not in text and "7 more change(s)" in text


async def test_the_worker_survives_a_store_error_and_finishes_the_work(store):
    jobs, gateway = await queue_with(store)
    await jobs.enqueue_many([(GUILD, 1)], "test")
    real_due = store.due_role_jobs_per_guild
    failures = []

    async def flaky_due(*args, **kwargs):
        if not failures:
            failures.append("once")
            raise RuntimeError("database is locked")
        return await real_due(*args, **kwargs)

    store.due_role_jobs_per_guild = flaky_due
    await run_until_idle(jobs, settle=1.2)
    assert failures == ["once"]
    assert gateway.guilds[GUILD].members[1] == set(), "the job ran after the error"
    assert await store.pending_role_jobs() == []


async def test_an_urgent_job_goes_ahead_of_a_refresh_batch(store):
    await store.enqueue_role_jobs([(GUILD, user) for user in range(100, 150)], "refresh", T0)
    await store.enqueue_role_jobs([(GUILD, 7)], "webhook", T0 + timedelta(seconds=5), urgent=True)
    (first,) = await store.due_role_jobs(T0 + timedelta(seconds=5), 1)
    assert first.user_id == 7
    await store.enqueue_role_jobs([(GUILD, 149)], "webhook", T0 + timedelta(seconds=6), urgent=True)
    ahead = await store.due_role_jobs(T0 + timedelta(seconds=6), 2)
    assert {job.user_id for job in ahead} == {7, 149}, "an urgent request also moves a queued job to the front"
    await store.enqueue_role_jobs([(GUILD, 7)], "refresh", T0 + timedelta(seconds=7))
    (still_first,) = await store.due_role_jobs(T0 + timedelta(seconds=7), 1)
    assert still_first.user_id in (7, 149), "a later ordinary request doesn't push an urgent job back"
