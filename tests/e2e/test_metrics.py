"""/metrics over real HTTP after real actions: a webhook, a link (with its Patreon calls and role call), a forged
webhook, a Discord refusal; the bearer token (missing, wrong, right); off without METRICS_TOKEN; and nothing in
the text that names a person or holds a secret."""

from __future__ import annotations

import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fakes.world import PATREON_IDS, SEED, WEBHOOK_SECRET, FakeWorld
from tests.e2e.polling import wait_for

TOKEN = "metrics-token-for-the-e2e-tests"


@pytest.fixture
async def watched(tmp_path):
    world = FakeWorld(tmp_path / "bot.sqlite3")
    world.extra_environment["METRICS_TOKEN"] = TOKEN
    await world.start()
    try:
        yield world
    finally:
        await world.close()


async def scrape(world: FakeWorld, authorization: str | None = f"Bearer {TOKEN}") -> tuple[int, str]:
    assert world.browser is not None
    headers = {"Authorization": authorization} if authorization is not None else {}
    async with world.browser.get(f"{world.bot_url}/metrics", headers=headers) as response:
        return response.status, await response.text()


async def samples(world: FakeWorld) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, text = await scrape(world)
    assert status == 200, text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_the_numbers_move_with_a_link_a_webhook_a_forgery_and_a_refusal(watched):
    world = watched
    before = await samples(world)
    assert value(before, "patreon_role_sync_links", source="oauth") == 0
    assert value(before, "patreon_role_sync_last_refresh_ok") == 1
    assert value(before, "patreon_role_sync_last_refresh_members", kind="listed") == 4

    await world.link(SEED.dave)
    world.patreon.set_membership("p-dave", "active_patron", tier_ids=[SEED.gold_tier])
    assert (await world.send_webhook("members:pledge:create", "p-dave"))[0] == 202
    await wait_for(lambda: SEED.gold_role in world.roles_of(SEED.dave))
    assert (await world.send_webhook("members:pledge:create", "p-dave", secret="forged"))[0] == 401
    world.fail_role_changes(SEED.bob, status=403, code=50013, message="Missing Permissions")
    world.patreon.set_membership("p-bob", "active_patron", tier_ids=[SEED.gold_tier])
    await world.link(SEED.bob)
    await world.settle()

    after = await samples(world)
    assert value(after, "patreon_role_sync_links", source="oauth") == 2
    assert value(after, "patreon_role_sync_webhooks_total", result="accepted") == 1
    assert value(after, "patreon_role_sync_webhooks_total", result="bad_signature") == 1
    moved = value(after, "patreon_role_sync_discord_role_calls_total", status="204") - value(
        before, "patreon_role_sync_discord_role_calls_total", status="204"
    )
    assert moved == len([call for call in world.role_calls(SEED.dave) if call.status == 204]) == 1
    assert value(after, "patreon_role_sync_discord_role_calls_total", status="403") == 1
    assert value(after, "patreon_role_sync_patreon_requests_total", status="200") > value(
        before, "patreon_role_sync_patreon_requests_total", status="200"
    )


async def test_patreon_failures_are_counted_by_status(watched):
    world = watched
    world.patreon.fail_next(r"/members", status=503, count=1)
    await world.refresh()
    found = await samples(world)
    assert value(found, "patreon_role_sync_patreon_requests_total", status="503") == 1


async def test_a_scrape_names_no_person_and_holds_no_secret(watched):
    world = watched
    await world.link(SEED.alice)
    status, text = await scrape(world)
    assert status == 200
    people = [str(SEED.alice), str(SEED.bob), str(SEED.owner_id), *PATREON_IDS.values(), "@"]
    secrets = [TOKEN, WEBHOOK_SECRET, world.patreon.creator_access_token, world.patreon.creator_refresh_token]
    assert [word for word in people + secrets if word in text] == []
    labels = set(re.findall(r'(\w+)="', text))
    assert labels <= {"result", "status", "guild", "source", "state", "kind", "how", "who"}


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token-of-some-length", f"Basic {TOKEN}", "Bearer"])
async def test_without_the_right_bearer_token_the_answer_is_401(watched, authorization):
    status, text = await scrape(watched, authorization)
    assert status == 401
    assert "patreon_role_sync" not in text


async def test_metrics_are_off_without_a_token(world):
    status, _ = await scrape(world, None)
    assert status == 404
    assert (await scrape(world, "Bearer anything-at-all-here"))[0] == 404


async def test_a_role_call_discord_rate_limited_counts_as_429_and_its_retry_as_204(watched):
    world = watched
    world.discord.inject_rate_limit("PUT", rf"/members/{SEED.alice}/roles/\d+$", retry_after=0.05)
    await world.link(SEED.alice)
    await wait_for(lambda: SEED.gold_role in world.roles_of(SEED.alice))
    found = await samples(world)
    assert value(found, "patreon_role_sync_discord_role_calls_total", status="429") == 1
    assert value(found, "patreon_role_sync_discord_role_calls_total", status="204") == 1
