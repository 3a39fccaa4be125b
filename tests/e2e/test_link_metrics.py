"""/metrics counts links made (by how) and removed (by who asked), after the real flows: a patron's OAuth link through
the fake Discord and Patreon and `/patreon unlink`, an admin's link-user and unlink-user, the result page's undo.
Signing in again to the same account is no new link, and an unlink of nobody counts nothing, so no number of
clicks moves a counter without a link changing; the labels take fixed values only, never a person."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fakes.world import SEED, FakeWorld
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin
from tests.e2e.test_link_identity import undo_token

TOKEN = "metrics-token-for-the-link-counters"
pytestmark = pytest.mark.world_env({"METRICS_TOKEN": TOKEN})
LINKS, UNLINKS = "patreon_role_sync_links_made_total", "patreon_role_sync_unlinks_total"


async def counts(world: FakeWorld) -> dict[tuple[str, str], float]:
    """(metric, label value) → value, for the two link counters, scraped over HTTP with the bearer token."""
    assert world.browser is not None
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with world.browser.get(f"{world.bot_url}/metrics", headers=headers) as response:
        assert response.status == 200
        text = await response.text()
    return {
        (sample.name, value): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name in (LINKS, UNLINKS)
        for value in sample.labels.values()
    }


async def unlink_command(world: FakeWorld, user: int) -> str:
    interaction = await world.discord.invoke_slash(SEED.guild_id, user, "patreon", ["unlink"])
    await interaction.wait_response(timeout=5)
    await wait_for(lambda: bool(interaction.content))
    return interaction.content or ""


async def test_an_oauth_link_and_the_patrons_unlink_are_counted(world):
    before = await counts(world)
    assert before[(LINKS, "oauth")] == 0 and before[(UNLINKS, "patron")] == 0, "every way shows from the start"

    status, _ = await world.link(SEED.bob)
    assert status == 200
    assert (await counts(world))[(LINKS, "oauth")] == 1
    assert "Unlinked" in await unlink_command(world, SEED.bob)

    after = await counts(world)
    assert after[(LINKS, "oauth")] == 1
    assert after[(UNLINKS, "patron")] == 1
    assert after[(UNLINKS, "admin")] == after[(UNLINKS, "undo")] == after[(LINKS, "admin")] == 0


async def test_signing_in_again_or_unlinking_nobody_moves_nothing(world):
    await world.link(SEED.alice)
    await world.link(SEED.alice)  # the same Patreon account again: its tokens are refreshed, no new link
    assert "Unlinked" not in await unlink_command(world, SEED.dave)  # never linked
    found = await counts(world)
    assert found[(LINKS, "oauth")] == 1
    assert found[(UNLINKS, "patron")] == 0


async def test_an_admins_link_and_unlink_are_counted_as_the_admins(world):
    text = await admin(world, ["link-user"], {"member": SEED.bob, "patreon_user_id": "p-bob"})
    assert "Linked" in text
    assert (await counts(world))[(LINKS, "admin")] == 1
    text = await admin(world, ["unlink-user"], {"member": SEED.bob})
    assert "Unlinked" in text or "Roles removed" in text, text
    found = await counts(world)
    assert found[(UNLINKS, "admin")] == 1 and found[(UNLINKS, "patron")] == 0
    assert found[(LINKS, "oauth")] == 0


async def test_an_undo_on_the_result_page_is_counted_as_an_undo(world):
    status, html = await world.link(SEED.alice)
    assert status == 200
    browser = world.browser_of(SEED.alice)
    status, _ = await browser.post_form(f"{world.bot_url}/link/undo", {"csrf": undo_token(html)})
    assert status == 200
    found = await counts(world)
    assert found[(UNLINKS, "undo")] == 1 and found[(UNLINKS, "patron")] == 0


async def test_auto_match_links_are_counted_from_a_refresh_and_from_a_webhook(world):
    await world.bot.services.admin.update_settings(SEED.guild_id, auto_match_discord=True)
    world.patreon.add_user("p-bob", "Bob", discord_id=SEED.bob)
    assert (await world.refresh()).auto_linked == 1
    assert (await counts(world))[(LINKS, "auto")] == 1
    world.patreon.add_user("p-alice", "Alice", discord_id=SEED.alice)
    assert (await world.send_webhook("members:update", "p-alice"))[0] == 202
    await wait_for(lambda: SEED.gold_role in world.roles_of(SEED.alice))
    found = await counts(world)
    assert found[(LINKS, "auto")] == 2 and found[(LINKS, "oauth")] == 0
    assert (await world.refresh()).auto_linked == 0, "both are linked: nothing more to match"
    assert (await counts(world))[(LINKS, "auto")] == 2
