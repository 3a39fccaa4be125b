"""Contract: the two durable queues. Role jobs coalesce per (server, member), a job re-queued while it ran is not
finished by the old run, back-offs hold, failures revive; webhook events are recorded, retried, finished,
superseded per campaign and pruned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.store.queues import DONE, FAILED, IGNORED, PENDING, SUPERSEDED

T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)
G1, G2 = 900_000_000_000_000_001, 900_000_000_000_000_002
U1, U2, U3 = 310_000_000_000_000_001, 310_000_000_000_000_002, 310_000_000_000_000_003


async def test_role_jobs_coalesce_per_member_and_bump_their_sequence(store):
    assert await store.enqueue_role_jobs([(G1, U1), (G1, U2), (G2, U1)], "refresh", T0) == 3
    await store.enqueue_role_jobs([(G1, U1)], "webhook", T0 + timedelta(seconds=5))
    jobs = {job.key: job for job in await store.due_role_jobs(T0 + timedelta(minutes=1), limit=10)}
    assert set(jobs) == {(G1, U1), (G1, U2), (G2, U1)}
    assert jobs[(G1, U1)].seq == 2 and jobs[(G1, U1)].cause == "webhook"
    assert jobs[(G1, U1)].next_attempt_at == T0, "coalescing keeps the earlier due time"
    assert await store.count_pending_role_jobs(G1) == 2
    assert await store.role_job_counts() == {PENDING: 3}


async def test_a_job_queued_again_while_it_ran_survives_the_old_runs_finish(store):
    await store.enqueue_role_jobs([(G1, U1)], "refresh", T0)
    [running] = await store.due_role_jobs(T0, limit=10)
    await store.enqueue_role_jobs([(G1, U1)], "webhook", T0)  # arrives while the job runs
    assert not await store.finish_role_job(running)
    [again] = await store.due_role_jobs(T0, limit=10)
    assert again.seq == running.seq + 1
    assert await store.finish_role_job(again)
    assert await store.pending_role_jobs() == []


async def test_a_back_off_holds_against_new_requests_and_a_failure_revives_fresh(store):
    await store.enqueue_role_jobs([(G1, U1)], "refresh", T0)
    [job] = await store.due_role_jobs(T0, limit=10)
    later = T0 + timedelta(minutes=10)
    await store.retry_role_job(job, later, "503 Unavailable")
    await store.enqueue_role_jobs([(G1, U1)], "webhook", T0 + timedelta(minutes=1))
    assert await store.due_role_jobs(T0 + timedelta(minutes=2), limit=10) == []
    [waiting] = await store.pending_role_jobs()
    assert waiting.next_attempt_at == later and waiting.attempts == 1 and waiting.last_error == "503 Unavailable"
    await store.fail_role_job(waiting, "Missing Permissions")
    [failed] = await store.failed_role_jobs(G1)
    assert failed.state == FAILED and failed.reported
    await store.enqueue_role_jobs([(G1, U1)], "admin", T0 + timedelta(minutes=3))
    [revived] = await store.due_role_jobs(T0 + timedelta(minutes=3), limit=10)
    assert revived.attempts == 0 and revived.reported and revived.state == PENDING


async def test_urgent_jobs_go_first_and_servers_are_served_in_turn(store):
    await store.enqueue_role_jobs([(G1, user) for user in (U1, U2, U3)], "refresh", T0)
    await store.enqueue_role_jobs([(G2, U1)], "refresh", T0 + timedelta(seconds=1))
    await store.enqueue_role_jobs([(G2, U2)], "webhook", T0 + timedelta(seconds=2), urgent=True)
    due = await store.due_role_jobs(T0 + timedelta(minutes=1), limit=1)
    assert [job.key for job in due] == [(G2, U2)]
    turns = await store.due_role_jobs_per_guild(T0 + timedelta(minutes=1), per_guild=2)
    assert [job.key for job in turns] == [(G1, U1), (G1, U2), (G2, U2), (G2, U1)]
    depths = await store.role_queue_depths()
    assert depths[G1][0] == 3 and depths[G2][0] == 2
    assert await store.next_role_job_due() == T0 + timedelta(seconds=2) - timedelta(days=1)
    assert await store.reschedule_role_jobs(T0 - timedelta(days=2)) == 5


async def _record(store, at, *, campaign=None, applicable=True, user="p1"):
    return await store.record_webhook_event(
        received_at=at,
        trigger="members:pledge:update",
        resource_type="member",
        member_id=f"m-{user}",
        patreon_user_id=user,
        campaign_id=campaign,
        body_sha256="0" * 64,
        applicable=applicable,
        seen_fact=("webhook_last_seen", at.isoformat()),
        addressed_campaign_id=campaign,
    )


async def test_webhook_events_are_recorded_retried_and_finished(store):
    first = await _record(store, T0)
    second = await _record(store, T0 + timedelta(seconds=1), user="p2")
    ignored = await _record(store, T0 + timedelta(seconds=2), applicable=False)
    assert 0 < first < second < ignored
    assert await store.get_fact("webhook_last_seen") == (T0 + timedelta(seconds=2)).isoformat()
    assert [event.id for event in await store.due_webhook_events(T0 + timedelta(minutes=1))] == [first, second]
    await store.retry_webhook_events([first], T0 + timedelta(minutes=5), "Patreon 503")
    [due] = await store.due_webhook_events(T0 + timedelta(minutes=1))
    assert due.id == second and due.patreon_user_id == "p2" and due.received_at == T0 + timedelta(seconds=1)
    assert await store.next_webhook_event_due() == T0 + timedelta(seconds=1)
    await store.finish_webhook_events([second], DONE, T0 + timedelta(minutes=1))
    [retried] = await store.due_webhook_events(T0 + timedelta(minutes=6))
    assert retried.id == first and retried.attempts == 1
    assert await store.webhook_event_counts() == {PENDING: 1, DONE: 1, IGNORED: 1}
    assert await store.prune_webhook_events(T0 + timedelta(days=1)) == 2
    assert await store.webhook_event_counts() == {PENDING: 1}


async def test_a_complete_listing_supersedes_only_its_own_campaigns_earlier_events(store):
    await _record(store, T0, campaign="c1", user="p1")
    await _record(store, T0, campaign="c2", user="p2")
    await _record(store, T0 + timedelta(minutes=5), campaign="c1", user="p3")
    assert await store.pending_webhook_patreon_ids(T0 + timedelta(minutes=1), "c1") == {"p1"}
    assert await store.supersede_webhook_events(T0 + timedelta(minutes=1), T0 + timedelta(minutes=9), "c1") == 1
    assert await store.webhook_event_counts() == {PENDING: 2, SUPERSEDED: 1}
    assert {event.patreon_user_id for event in await store.due_webhook_events(T0 + timedelta(hours=1))} == {"p2", "p3"}
    assert await store.supersede_webhook_events(T0 + timedelta(hours=1), T0 + timedelta(hours=1)) == 2
