"""The periodic refresh end to end: complete listings change roles, failed or partial ones change nothing."""

from datetime import UTC, datetime, timedelta

import pytest

from bot.store import LAST_REFRESH, patron_subject
from bot.sync.campaign import CREATOR_REJECTED_FACT
from fakes.world import SEED
from tests.e2e.polling import wait_for

TOKEN_PATH = "/api/oauth2/token"


async def check_text(world) -> str:
    """`/patreon-admin check` as the owner: what an admin reads."""
    interaction = await world.discord.invoke_slash(SEED.guild_id, SEED.owner_id, "patreon-admin", ["check"])
    await interaction.wait_response(timeout=5)

    def text() -> str:
        parts = [r.get("content") or (r.get("data") or {}).get("content") or "" for r in interaction.responses]
        return "\n".join(parts)

    await wait_for(lambda: "refresh" in text())
    return text()


async def linked_world(world):
    """Alice (Gold) and Bob (Bronze) linked; then both stop paying at Patreon without any webhook."""
    await world.link(SEED.alice)
    await world.link(SEED.bob)
    world.patreon.set_membership("p-alice", "former_patron", tier_ids=[])
    world.patreon.remove_membership("p-bob")
    world.discord.clear_calls()
    return world


# Each trouble returns how many pages still arrive before it strikes.
def break_with_500(world) -> int:
    world.patreon.fail_next(r"/members", status=500, count=100)
    return 0


def break_second_page(world) -> int:
    world.bot.services.refresh.page_size = 2
    world.patreon.delay_next(r"/members", 0, count=1)  # faults fire in order: the first page is fine
    world.patreon.fail_next(r"/members", status=503, count=100)
    return 1


def expire_the_cursor(world) -> int:
    world.bot.services.refresh.page_size = 2
    world.patreon.expire_cursor_after(1, listings=2)  # the listing is started over once, and expires again
    return 1


def rate_limit_for_long(world) -> int:
    world.patreon.rate_limit_next(r"/members", retry_after=3600, count=5)
    return 0


def time_out(world) -> int:
    world.patreon.time_out_next(r"/members", 0.1, count=10)  # Patreon is slow; its edge gives up with a 524
    return 0


def cut_the_connection(world) -> int:
    world.patreon.cut_next(r"/members", count=10)  # the answer starts, then the connection drops
    return 0


def send_a_broken_second_page(world) -> int:
    world.bot.services.refresh.page_size = 2
    world.patreon.delay_next(r"/members", 0, count=1)  # faults fire in order: the first page is fine
    world.patreon.malformed_next(r"/members", count=1)  # a 200 whose JSON stops half way
    return 1


@pytest.mark.parametrize(
    "trouble",
    [
        break_with_500,
        break_second_page,
        expire_the_cursor,
        rate_limit_for_long,
        time_out,
        cut_the_connection,
        send_a_broken_second_page,
    ],
)
async def test_a_failed_or_partial_listing_removes_nothing_and_says_so(world, trouble):
    await linked_world(world)
    before = await world.store.get_membership("p-bob")
    pages_before_failure = trouble(world)
    report = await world.refresh()
    assert not report.ok, report
    assert report.pages == pages_before_failure
    # Bob is missing from a listing that never completed: his absence is not acted on, whatever page it broke on.
    assert world.roles_of(SEED.bob) == {SEED.bronze_role}
    assert await world.store.get_membership("p-bob") == before, "old snapshots are kept"
    if pages_before_failure == 0:
        assert world.roles_of(SEED.alice) == {SEED.vip_role, SEED.gold_role}
        assert world.role_calls() == []
    else:  # a page that did arrive is Patreon's word (streaming): Alice, listed as a former patron, loses Gold
        await world.bot.services.jobs.wait_idle(5)
        assert world.roles_of(SEED.alice) == {SEED.vip_role}, "hand-given VIP stays"
        assert {call.path.split("/")[4] for call in world.role_calls()} == {str(SEED.alice)}
    fact = await world.store.get_fact(LAST_REFRESH)
    assert isinstance(fact, dict) and fact["ok"] is False and "nothing was removed" in fact["detail"]
    text = await check_text(world)
    assert "⚠️ Last refresh" in text and "nothing was removed" in text


async def test_the_next_complete_refresh_applies_what_changed(world):
    await linked_world(world)
    break_with_500(world)
    assert not (await world.refresh()).ok
    world.patreon.faults.clear()
    report = await world.refresh()
    assert report.ok and report.roles_differ == 2 and report.snapshots_forgotten == 1
    assert world.roles_of(SEED.alice) == {SEED.vip_role}, "hand-given VIP stays"
    assert world.roles_of(SEED.bob) == set()
    assert len(world.role_calls(SEED.alice)) == 1 and len(world.role_calls(SEED.bob)) == 1
    assert await world.store.get_membership("p-bob") is None
    assert "✅ Last refresh" in await check_text(world)


async def test_refresh_calls_discord_only_for_members_whose_roles_differ(world):
    await world.link(SEED.alice)
    await world.link(SEED.bob)
    await world.link(SEED.carol)
    world.patreon.set_membership("p-bob", "active_patron", tier_ids=[SEED.bronze_tier, SEED.gold_tier])  # no webhook
    world.discord.clear_calls()
    patreon_calls = len(world.patreon.calls)
    report = await world.refresh()
    assert report.ok and report.members_checked == 3 and report.roles_differ == 1
    assert report.patreon_requests == 1 and len(world.patreon.calls) - patreon_calls == 1, "one page of members"
    assert [call.path.split("/")[4] for call in world.role_calls()] == [str(SEED.bob)]
    assert world.roles_of(SEED.bob) == {SEED.bronze_role, SEED.gold_role}
    again = await world.refresh()
    assert again.ok and again.roles_differ == 0 and len(world.role_calls()) == 1


async def test_auto_match_during_refresh_links_members_in_the_guild(world):
    await world.bot.services.admin.update_settings(SEED.guild_id, auto_match_discord=True)
    world.patreon.add_user("p-bob", "Bob", discord_id=SEED.bob)
    world.patreon.add_user("p-stranger", "Stranger", discord_id=799999999999999999)  # not in the server
    world.patreon.set_membership("p-stranger", "active_patron", tier_ids=[SEED.gold_tier])
    report = await world.refresh()
    assert report.auto_linked == 1
    link = await world.store.get_link_by_discord(SEED.bob)
    assert link is not None and link.source == "auto"
    assert await world.store.get_link_by_patreon("p-stranger") is None
    assert world.roles_of(SEED.bob) == {SEED.bronze_role}


async def test_a_refused_creator_token_alerts_once_and_stops_asking(world):
    world.patreon.tokens.rotate(world.patreon.creator_refresh_token)  # rotated elsewhere: ours is dead
    world.clock.advance(days=2)  # the stored pair is now due for refresh
    report = await world.refresh()
    assert not report.ok
    assert (await world.store.get_fact(CREATOR_REJECTED_FACT)) is not None
    await wait_for(
        lambda: any("refused the creator token" in m["content"] for m in world.discord.messages(SEED.log_channel))
    )
    token_calls = world.patreon.count(TOKEN_PATH)
    assert not (await world.refresh()).ok
    assert world.patreon.count(TOKEN_PATH) == token_calls, "a refused token is not tried again"
    # The alert is posted (and awaited) inside the refresh that meets the refusal: once that refresh's report is
    # recorded, any second alert would already be in the channel.
    fact = await world.store.get_fact(LAST_REFRESH)
    assert isinstance(fact, dict) and fact["ok"] is False
    alerts = [m for m in world.discord.messages(SEED.log_channel) if "refused the creator token" in m["content"]]
    assert len(alerts) == 1


async def test_a_401_on_the_listing_refreshes_the_creator_token_once(world):
    world.patreon.expire_token(world.patreon.creator_access_token)
    report = await world.refresh()
    assert report.ok, report.detail
    assert world.patreon.count(TOKEN_PATH) == 1


async def test_patron_tokens_close_to_expiry_are_refreshed(world):
    await world.link(SEED.alice)
    before = await world.store.get_tokens(patron_subject("p-alice"))
    assert before is not None
    world.clock.advance(seconds=(before.expires_at - datetime.now(UTC) - timedelta(days=6)).total_seconds())
    report = await world.refresh()
    assert report.ok and report.patron_tokens_refreshed == 1
    after = await world.store.get_tokens(patron_subject("p-alice"))
    assert after is not None and after.refresh_token != before.refresh_token
    assert world.patreon.tokens.lookup(after.access_token) is not None


async def test_auto_match_of_many_members_at_once(world):
    await world.bot.services.admin.update_settings(SEED.guild_id, auto_match_discord=True)
    fans = [780000000000000000 + n for n in range(30)]  # more than a webhook's few: the bulk path
    for n, discord_id in enumerate(fans):
        world.guild.add_member(discord_id, username=f"fan{n}")
        world.patreon.add_user(f"p-fan{n}", f"Fan {n}", discord_id=discord_id)
        world.patreon.set_membership(f"p-fan{n}", "active_patron", tier_ids=[SEED.gold_tier])
    await world.store.save_link(fans[0], "p-someone-else", SEED.guild_id, "oauth")  # taken: never overridden
    report = await world.refresh()
    assert report.auto_linked == 29
    assert (await world.store.get_link_by_discord(fans[0])).patreon_user_id == "p-someone-else"
    assert all(SEED.gold_role in world.roles_of(discord_id) for discord_id in fans[1:])
    assert SEED.gold_role not in world.roles_of(fans[0])


async def test_an_expired_cursor_starts_the_listing_over_once(world):
    await linked_world(world)
    world.bot.services.refresh.page_size = 2
    world.patreon.expire_cursor_after(1)
    listing = f"/api/oauth2/v2/campaigns/{world.patreon.campaign.id}/members"
    before = world.patreon.count(listing)
    report = await world.refresh("cursor")
    assert report.ok, report.detail
    assert world.patreon.count(listing) - before == 2 + report.pages, "one page, the expired cursor, then a new walk"
    assert SEED.gold_role not in world.roles_of(SEED.alice) and SEED.bronze_role not in world.roles_of(SEED.bob)
