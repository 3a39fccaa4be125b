"""Linked Roles end to end: a role whose Links requirement is `tier_rank >= 2` appears and disappears on the fake
Discord as the pledge changes on the fake Patreon; and who else could use the verification URL, or a token."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.accounts.linked_roles import schema_payload
from bot.store.role_connections import discord_subject
from fakes.browser import Browser
from fakes.world import DISCORD_CLIENT_SECRET, PATREON_IDS, SEED, FakeWorld, page_text
from tests.e2e.polling import wait_for
from tests.e2e.test_campaign_two_servers import BEN, CAMPAIGN_B, OTHER, two_campaigns  # noqa: F401 (a fixture)

SILVER_PLUS = 730000000000000077  # Discord grants it from the Links requirement; the bot never touches it
VERIFY = "/discord/linked-role"


async def set_up(world: FakeWorld) -> None:
    """What the admin does: the verification URL and its redirect in the portal, a role with a Links requirement."""
    world.discord.oauth.register(
        DISCORD_CLIENT_SECRET,
        (f"{world.bot_url}/discord/callback", f"{world.bot_url}/discord/linked-role/callback"),
    )
    world.guild.add_role(SILVER_PLUS, "Silver or better", position=4)
    assert world.bot is not None
    world.bot.services.role_connections.scan_seconds = 0.1  # as fast_retries does for the other workers
    world.bot.services.role_connections.scan_soon()
    await wait_for(lambda: world.discord.role_connections.metadata == schema_payload(), timeout=10)
    world.discord.role_connections.set_role_requirements(SEED.guild_id, SILVER_PLUS, {"tier_rank": 2})


async def pledge(world: FakeWorld, discord_id: int, tier: str) -> None:
    world.patreon.set_membership(
        PATREON_IDS[discord_id],
        patron_status="active_patron",
        tier_ids=[tier],
        last_charge_status="Paid",
        last_charge_date=datetime.now(UTC) - timedelta(days=1),
    )
    assert (await world.send_webhook("members:pledge:update", PATREON_IDS[discord_id]))[0] < 300


def metadata_of(world: FakeWorld, discord_id: int) -> dict[str, str]:
    return dict((world.discord.role_connections.connections.get(discord_id) or {}).get("metadata") or {})


async def test_a_linked_role_follows_the_pledge(world):
    await set_up(world)
    await world.link(SEED.alice)  # Gold: tier rank 2 of 2
    status, page = await world.browser_of(SEED.alice).open(world.bot_url + VERIFY)
    assert status == 200 and "connected to Discord" in page_text(page), page_text(page)
    assert metadata_of(world, SEED.alice)["tier_rank"] == "2"
    await wait_for(lambda: SILVER_PLUS in world.roles_of(SEED.alice))
    connection = world.discord.role_connections.connections[SEED.alice]
    assert connection["platform_name"] == "Patreon" and connection["platform_username"] == "Alice"

    await pledge(world, SEED.alice, SEED.bronze_tier)
    await wait_for(lambda: SILVER_PLUS not in world.roles_of(SEED.alice))
    assert metadata_of(world, SEED.alice)["tier_rank"] == "1"
    await pledge(world, SEED.alice, SEED.gold_tier)
    await wait_for(lambda: SILVER_PLUS in world.roles_of(SEED.alice))

    unlink = await world.discord.invoke_slash(SEED.guild_id, SEED.alice, "patreon", ["unlink"])
    await unlink.wait_response(timeout=5)
    await wait_for(lambda: SILVER_PLUS not in world.roles_of(SEED.alice))
    assert metadata_of(world, SEED.alice) == {"patron": "0", "tier_rank": "0", "lifetime_support": "0", "campaign": "0"}
    # Every call to the per-user endpoint carried the user's own Bearer token: the bot token never went there.
    assert world.discord.role_connections.calls and all(c.user_id for c in world.discord.role_connections.calls)


async def test_an_unchanged_value_costs_no_call(world):
    await set_up(world)
    await world.link(SEED.alice)
    await world.browser_of(SEED.alice).open(world.bot_url + VERIFY)
    pushes = len(world.discord.role_connections.pushes(SEED.alice))
    await world.refresh("linked roles")
    pusher = world.bot.services.role_connections
    scans = pusher.scans
    pusher.scan_soon()
    await wait_for(lambda: pusher.scans > scans)
    assert len(world.discord.role_connections.pushes(SEED.alice)) == pushes == 1


async def test_an_unlinked_member_links_patreon_on_the_way(world):
    await set_up(world)
    world.patreon.next_authorizing_user = PATREON_IDS[SEED.bob]
    status, page = await world.browser_of(SEED.bob).open(world.bot_url + VERIFY)
    assert status == 200, page_text(page)
    assert (await world.store.get_link_by_discord(SEED.bob)).patreon_user_id == "p-bob"
    await wait_for(lambda: metadata_of(world, SEED.bob).get("tier_rank") == "1")  # Bronze
    assert SILVER_PLUS not in world.roles_of(SEED.bob)
    await pledge(world, SEED.bob, SEED.gold_tier)
    await wait_for(lambda: SILVER_PLUS in world.roles_of(SEED.bob))


async def test_a_forwarded_verification_link_is_refused_in_another_browser(world):
    """Alice starts; the Discord authorisation URL (with its state) reaches Bob, who authorises as himself."""
    await set_up(world)
    await world.link(SEED.alice)
    authorize = await world.browser_of(SEED.alice).url_before(world.bot_url + VERIFY, world.discord.base_url)
    status, page = await world.browser_of(SEED.bob).open(authorize)
    assert status == 403 and "another browser" in page_text(page)
    assert await world.store.role_connection(SEED.bob) is None
    assert await world.store.get_tokens(discord_subject(SEED.bob)) is None
    # The callback itself, replayed in another browser, is refused before its code is used; Alice's still works.
    callback = await world.browser_of(SEED.alice).url_before(authorize, world.bot_url + "/discord/linked-role/")
    status, _ = await world.browser_of(SEED.carol).open(callback)
    assert status == 403 and await world.store.role_connection(SEED.carol) is None
    status, page = await world.browser_of(SEED.alice).open(callback)
    assert status == 200 and SEED.alice in world.discord.role_connections.connections
    assert not world.discord.role_connections.pushes(SEED.bob) and not world.discord.role_connections.pushes(SEED.carol)


async def test_nobody_gets_metadata_for_a_patreon_account_they_dont_own(world):
    """Bob, unlinked, ends his verification signed in to Patreon as Alice (already linked to Alice)."""
    await set_up(world)
    await world.link(SEED.alice)
    world.patreon.next_authorizing_user = PATREON_IDS[SEED.alice]
    status, page = await world.browser_of(SEED.bob).open(world.bot_url + VERIFY)
    assert status == 409 and "already linked" in page_text(page)
    assert await world.store.get_link_by_discord(SEED.bob) is None
    await wait_for(lambda: metadata_of(world, SEED.bob).get("tier_rank") == "0")  # what an unlinked user has
    assert SILVER_PLUS not in world.roles_of(SEED.bob)
    assert all(c.body["metadata"]["tier_rank"] == "0" for c in world.discord.role_connections.pushes(SEED.bob))


async def test_a_revoked_token_stops_that_users_pushes_only_and_status_says_so(world):
    await set_up(world)
    for person in (SEED.alice, SEED.bob):
        await world.link(person)
        await world.browser_of(person).open(world.bot_url + VERIFY)
    world.discord.oauth.deauthorize(SEED.alice)  # Alice removes the app under Settings → Authorized Apps
    await pledge(world, SEED.alice, SEED.bronze_tier)
    await pledge(world, SEED.bob, SEED.gold_tier)
    await wait_for(lambda: SILVER_PLUS in world.roles_of(SEED.bob))  # Bob's push went ahead
    await wait_for(lambda: _revoked(world, SEED.alice))
    assert await world.store.get_tokens(discord_subject(SEED.alice)) is None
    assert metadata_of(world, SEED.alice)["tier_rank"] == "2"  # Discord keeps what it had; the bot can't change it
    status = await world.discord.invoke_slash(SEED.guild_id, SEED.alice, "patreon", ["status"])
    await status.wait_response(timeout=5)
    await wait_for(lambda: "Linked Roles" in (status.content or ""))
    assert "no longer accepts" in status.content and "tier rank 2" in status.content


async def _revoked(world: FakeWorld, user_id: int) -> bool:
    connection = await world.store.role_connection(user_id)
    return connection is not None and connection.revoked


async def test_an_expired_token_is_refreshed_and_the_new_pair_stored(world):
    await set_up(world)
    await world.link(SEED.alice)
    await world.browser_of(SEED.alice).open(world.bot_url + VERIFY)
    before = await world.store.get_tokens(discord_subject(SEED.alice))
    world.discord.oauth.expire_access_tokens(SEED.alice)
    await pledge(world, SEED.alice, SEED.bronze_tier)
    await wait_for(lambda: SILVER_PLUS not in world.roles_of(SEED.alice))
    after = await world.store.get_tokens(discord_subject(SEED.alice))
    assert after is not None and before is not None and after.refresh_token != before.refresh_token
    assert not (await world.store.role_connection(SEED.alice)).revoked


async def test_a_rate_limited_push_waits_and_goes_through(world):
    await set_up(world)
    await world.link(SEED.alice)
    await world.browser_of(SEED.alice).open(world.bot_url + VERIFY)
    world.discord.role_connections.fail_next(429, retry_after=0.3)
    await pledge(world, SEED.alice, SEED.bronze_tier)
    await wait_for(lambda: SILVER_PLUS not in world.roles_of(SEED.alice))
    statuses = [c.status for c in world.discord.role_connections.calls if c.method == "PUT"]
    assert statuses[-2:] == [429, 200]


async def test_a_token_near_its_expiry_is_refreshed_before_the_push(world):
    await set_up(world)
    world.discord.oauth.token_lifetime = 60  # Discord's live a week; this one is already within the bot's margin
    await world.link(SEED.alice)
    await world.browser_of(SEED.alice).open(world.bot_url + VERIFY)
    await wait_for(lambda: SILVER_PLUS in world.roles_of(SEED.alice))
    assert all(c.status == 200 for c in world.discord.role_connections.calls)  # never sent an expired token
    assert world.discord.oauth.grants.count("refresh_token") >= 1
    stored = await world.store.get_tokens(discord_subject(SEED.alice))
    assert stored is not None and stored.access_token in world.discord.oauth.tokens  # the rotated pair was kept


async def test_a_patreon_sign_in_forwarded_from_the_verification_is_refused(world):
    """Bob, unlinked, sends the Patreon sign-in his verification led to to Alice (Gold, not linked yet), hoping her
    sign-in lands on his Discord account: her browser lacks his cookie, so nothing is linked or pushed for him."""
    await set_up(world)
    patreon_url = await world.browser_of(SEED.bob).url_before(world.bot_url + VERIFY, world.patreon.base_url)
    world.patreon.next_authorizing_user = PATREON_IDS[SEED.alice]
    status, page = await world.browser_of(SEED.alice).open(patreon_url)
    assert status == 403 and "another browser" in page_text(page)
    assert await world.store.get_link_by_discord(SEED.bob) is None
    assert await world.store.get_link_by_patreon(PATREON_IDS[SEED.alice]) is None
    await wait_for(lambda: metadata_of(world, SEED.bob).get("tier_rank") == "0")
    assert SILVER_PLUS not in world.roles_of(SEED.bob)


async def test_a_callback_replayed_in_the_same_browser_is_used_up(world):
    await set_up(world)
    await world.link(SEED.alice)
    browser = world.browser_of(SEED.alice)
    callback = await browser.url_before(world.bot_url + VERIFY, world.bot_url + "/discord/linked-role/")
    assert (await browser.open(callback))[0] == 200
    exchanges = world.discord.oauth.grants.count("authorization_code")
    status, page = await browser.open(callback)
    assert status == 400 and "already used" in page_text(page)
    assert world.discord.oauth.grants.count("authorization_code") == exchanges  # the code was not tried again


async def test_no_discord_user_token_reaches_the_log(world, caplog):
    caplog.set_level("DEBUG")
    await set_up(world)
    await world.link(SEED.alice)
    await world.browser_of(SEED.alice).open(world.bot_url + VERIFY)
    issued = {*world.discord.oauth.tokens, *world.discord.oauth.refresh_tokens}
    world.discord.oauth.expire_access_tokens(SEED.alice)  # the next push refreshes: a second pair
    await pledge(world, SEED.alice, SEED.bronze_tier)
    await wait_for(lambda: SILVER_PLUS not in world.roles_of(SEED.alice))
    issued |= {*world.discord.oauth.tokens, *world.discord.oauth.refresh_tokens}
    assert world.discord.oauth.grants.count("refresh_token") >= 1 and len(issued) >= 4
    assert not [token for token in issued if token in caplog.text]


async def test_values_of_one_campaign_never_open_another_campaigns_linked_role(two_campaigns):  # noqa: F811
    """Alice pays campaign A (Gold) and is also in Eve's server, which follows campaign B and requires tier_rank
    >= 1 on a role: one connection shows in both, so a member of two campaigns' servers gets nothing pushed."""
    world = two_campaigns
    await set_up(world)
    eve_linked = 730000000000000078
    world.discord.guild(OTHER).add_role(eve_linked, "Eve's supporters", position=3)
    world.discord.role_connections.set_role_requirements(OTHER, eve_linked, {"tier_rank": 1})
    status, page = await world.browser_of(SEED.alice).open(world.bot_url + VERIFY)
    assert status == 200, page_text(page)
    assert metadata_of(world, SEED.alice) == {"patron": "0", "tier_rank": "0", "lifetime_support": "0", "campaign": "0"}
    assert eve_linked not in world.discord.guild(OTHER).member(SEED.alice).role_ids


async def test_the_records_are_registered_once_and_a_restart_only_reads_them(world):
    records = r"^/applications/\d+/role-connections/metadata$"
    await wait_for(lambda: world.discord.role_connections.metadata == schema_payload(), timeout=10)
    assert len(world.discord.calls_matching("PUT", records)) == 1
    await world.stop_bot()
    await world.start_bot()
    await wait_for(lambda: len(world.discord.calls_matching("GET", records)) == 2, timeout=10)
    assert len(world.discord.calls_matching("PUT", records)) == 1
    assert all(call.status == 200 for call in world.discord.calls_matching("GET", records))


async def test_a_server_that_stops_acting_leaves_the_linked_role_alone(world):
    """Like the bot's own roles in a server that doesn't take part: nothing is taken back, nothing is pushed."""
    from tests.e2e.test_admin import admin

    await set_up(world)
    await world.link(SEED.alice)
    await world.browser_of(SEED.alice).open(world.bot_url + VERIFY)
    await wait_for(lambda: SILVER_PLUS in world.roles_of(SEED.alice))
    await admin(world, ["settings"], {"enabled": False})
    await pledge(world, SEED.alice, SEED.bronze_tier)
    pusher = world.bot.services.role_connections
    scans = pusher.scans
    await wait_for(lambda: pusher.scans > scans + 1)
    assert len(world.discord.role_connections.pushes(SEED.alice)) == 1
    assert SILVER_PLUS in world.roles_of(SEED.alice)


async def test_a_webhook_moves_the_linked_role_without_waiting_for_a_scan(world):
    await set_up(world)
    await world.link(SEED.alice)
    await world.browser_of(SEED.alice).open(world.bot_url + VERIFY)
    pusher = world.bot.services.role_connections
    pusher.scan_seconds = 3600.0  # no scan comes: only the engine's word after the webhook's reconcile
    scans = pusher.scans
    await pledge(world, SEED.alice, SEED.bronze_tier)
    await wait_for(lambda: SILVER_PLUS not in world.roles_of(SEED.alice))
    assert pusher.scans <= scans + 1  # at most the scan already under way when the interval changed


async def test_the_linked_role_lasts_through_the_decline_grace_and_goes_when_it_ends(world):
    await set_up(world)
    await world.link(SEED.alice)
    await world.browser_of(SEED.alice).open(world.bot_url + VERIFY)
    await wait_for(lambda: SILVER_PLUS in world.roles_of(SEED.alice))
    world.patreon.set_membership(
        "p-alice",
        patron_status="declined_patron",
        tier_ids=[SEED.gold_tier],
        last_charge_status="Declined",
        last_charge_date=datetime.now(UTC) - timedelta(days=1),
    )
    assert (await world.send_webhook("members:pledge:update", "p-alice"))[0] < 300
    await world.settle()
    pusher = world.bot.services.role_connections
    scans = pusher.scans
    await wait_for(lambda: pusher.scans > scans + 1)
    assert SILVER_PLUS in world.roles_of(SEED.alice)  # the 7-day grace keeps it, as it keeps the Gold role
    world.clock.advance(days=7)
    await world.refresh("grace over")
    await wait_for(lambda: SILVER_PLUS not in world.roles_of(SEED.alice))
    assert SEED.gold_role not in world.roles_of(SEED.alice)


async def test_a_connected_campaigns_values_carry_its_id_so_another_campaigns_requirement_is_not_met(
    two_campaigns,  # noqa: F811
):
    """Ben pays campaign B and is only in Eve's server; the connection Discord shows in every server carries B's
    id, so a requirement of A's server that names A's campaign (README: needed with several campaigns) stays unmet
    when he joins A's server and claims its role before the bot pushes again."""
    world = two_campaigns
    await set_up(world)
    world.browsers[BEN] = Browser(world.discord.base_url, "ben")
    world.guild.remove_member(BEN)
    status, page = await world.browser_of(BEN).open(world.bot_url + VERIFY)
    assert status == 200, page_text(page)
    values = metadata_of(world, BEN)
    assert values["patron"] == "1" and values["campaign"] == CAMPAIGN_B, values
    campaign_a = int(world.patreon.campaign.id)
    world.discord.role_connections.set_role_requirements(
        SEED.guild_id, SILVER_PLUS, {"tier_rank": 1, "campaign": campaign_a}
    )
    assert not world.discord.role_connections.meets(SEED.guild_id, SILVER_PLUS, BEN), "B's values don't open A's role"
    eve_linked = 730000000000000078
    world.discord.guild(OTHER).add_role(eve_linked, "Eve's supporters", position=3)
    requirement = {"tier_rank": 1, "campaign": int(CAMPAIGN_B)}
    world.discord.role_connections.set_role_requirements(OTHER, eve_linked, requirement)
    assert world.discord.role_connections.meets(OTHER, eve_linked, BEN), "B's own role is met"
