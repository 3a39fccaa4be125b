"""The linking flow end to end: real bot, real discord.py, real Patreon client, loopback fakes."""

import re
from urllib.parse import parse_qs, quote, urlencode, urlparse

from bot.discord_io.log_redaction import secrets_of
from bot.store import patron_subject
from fakes.world import PATREON_IDS, SEED, FakeWorld, page_text
from tests.e2e.polling import wait_for


async def test_link_grants_the_tier_role_at_once_and_keeps_hand_given_roles(world):
    status, html = await world.link(SEED.alice)
    text = page_text(html)
    assert status == 200, text
    assert "Your Patreon account is linked" in text
    assert "Gold" in text and "@Gold Patron" in text
    assert "Patreon account: Alice" in text and "Discord account: @alice" in text
    assert world.roles_of(SEED.alice) == {SEED.vip_role, SEED.gold_role}
    calls = world.role_calls(SEED.alice)
    assert [(call.method, call.path) for call in calls] == [
        ("PUT", f"/guilds/{SEED.guild_id}/members/{SEED.alice}/roles/{SEED.gold_role}")
    ], "one atomic call for the one role that differs"
    assert "Patreon sync (linked)" in (calls[0].reason or "")
    link = await world.store.get_link_by_discord(SEED.alice)
    assert link is not None and link.patreon_user_id == "p-alice" and link.linked_in_guild_id == SEED.guild_id
    assert await world.store.get_tokens(patron_subject("p-alice")) is not None
    await wait_for(lambda: any("Gave @Gold Patron" in m["content"] for m in world.discord.messages(SEED.log_channel)))


async def patreon_authorize_url(world, discord_id: int) -> str:
    """`/patreon link`, then through the bot's start page and Discord in that person's browser, up to Patreon."""
    url = await world.run_link_command(discord_id)
    return await world.browser_of(discord_id).url_before(url, world.patreon.base_url)


async def test_the_button_goes_to_the_bot_then_discord_identify_then_patreon_identity(world):
    url = await world.run_link_command(SEED.bob)
    assert url.startswith(f"{world.bot_url}/link/start?state="), "first the bot's own page, which sets the cookie"
    browser = world.browser_of(SEED.bob)
    discord_url = await browser.url_before(url, world.discord.base_url)
    query = parse_qs(urlparse(discord_url).query)
    assert discord_url.startswith(world.discord.base_url + "/oauth2/authorize?")
    assert query["client_id"] == [str(world.discord.application_id)]
    assert query["redirect_uri"] == [f"{world.bot_url}/discord/callback"]
    assert query["scope"] == ["identify"] and query["response_type"] == ["code"]
    assert query["prompt"] == ["none"], "a returning user skips Discord's consent screen"
    patreon_url = await browser.url_before(discord_url, world.patreon.base_url)
    query = parse_qs(urlparse(patreon_url).query)
    assert patreon_url.startswith(world.patreon.base_url + "/oauth2/authorize?")
    assert query["client_id"] == ["fake-client"]
    assert query["redirect_uri"] == [world.redirect_uri]
    assert query["response_type"] == ["code"]
    assert query["scope"] == ["identity identity.memberships"], "a patron grants only what the bot needs"


async def test_unlink_removes_only_roles_the_bot_granted(world):
    world.guild.member(SEED.bob).role_ids.add(SEED.gold_role)  # a moderator hand-gave Gold to Bob
    status, _ = await world.link(SEED.bob)
    assert status == 200
    assert world.roles_of(SEED.bob) == {SEED.gold_role, SEED.bronze_role}
    interaction = await world.discord.invoke_slash(SEED.guild_id, SEED.bob, "patreon", ["unlink"])
    await interaction.wait_response(timeout=5)
    await wait_for(lambda: "Unlinked" in (interaction.content or ""))
    assert "@Bronze Patron" in interaction.content
    assert world.roles_of(SEED.bob) == {SEED.gold_role}, "the hand-given Gold role survives"
    assert await world.store.get_link_by_discord(SEED.bob) is None
    assert await world.store.get_tokens(patron_subject("p-bob")) is None


async def test_unlink_when_not_linked_says_so(world):
    interaction = await world.discord.invoke_slash(SEED.guild_id, SEED.dave, "patreon", ["unlink"])
    await interaction.wait_response(timeout=5)
    await wait_for(lambda: "isn't linked" in (interaction.content or ""))
    assert interaction.ephemeral


async def test_status_explains_each_role(world):
    await world.link(SEED.alice)
    interaction = await world.discord.invoke_slash(SEED.guild_id, SEED.alice, "patreon", ["status"])
    await interaction.wait_response(timeout=5)
    await wait_for(lambda: "Linked" in (interaction.content or ""))
    text = interaction.content
    assert "p-alice" in text
    assert "active_patron" in text and "Gold" in text
    assert "✅ @Gold Patron" in text
    assert "❌ @Bronze Patron" in text
    assert interaction.ephemeral


async def test_status_for_unlinked_user_points_to_link(world):
    interaction = await world.discord.invoke_slash(SEED.guild_id, SEED.dave, "patreon", ["status"])
    await interaction.wait_response(timeout=5)
    await wait_for(lambda: "Not linked" in (interaction.content or ""))
    assert "/patreon link" in interaction.content


async def assert_nothing_stored(world, discord_id: int) -> None:
    assert await world.store.get_link_by_discord(discord_id) is None
    assert await world.store.get_tokens(patron_subject(PATREON_IDS[discord_id])) is None
    assert world.discord.calls_matching("PATCH", rf"/members/{discord_id}$") == []


async def test_forged_state_is_refused_and_nothing_stored(world):
    state = parse_qs(urlparse(await patreon_authorize_url(world, SEED.bob)).query)["state"][0]
    body, _, signature = state.rpartition(".")
    forged = body[:-2] + ("AA" if not body.endswith("AA") else "BB") + "." + signature
    code = world.patreon.issue_code("p-bob")
    status, html = await world.open_in_browser(f"{world.redirect_uri}?{urlencode({'code': code, 'state': forged})}")
    assert status == 400
    assert "/patreon link" in page_text(html)
    await assert_nothing_stored(world, SEED.bob)


async def test_expired_state_is_refused(world):
    world.patreon.next_authorizing_user = "p-bob"
    url = await world.run_link_command(SEED.bob)
    world.clock.advance(minutes=16)
    status, html = await world.open_in_browser(url)
    assert status == 400
    assert "expired" in page_text(html)
    await assert_nothing_stored(world, SEED.bob)


async def test_the_start_state_is_no_good_at_patreons_callback(world):
    """Skipping the Discord step: the button's own state sent straight to the Patreon callback is refused."""
    state = parse_qs(urlparse(await world.run_link_command(SEED.bob)).query)["state"][0]
    code = world.patreon.issue_code("p-bob")
    status, html = await world.open_in_browser(f"{world.redirect_uri}?{urlencode({'code': code, 'state': state})}")
    assert status == 400 and "/patreon link" in page_text(html)
    await assert_nothing_stored(world, SEED.bob)


async def test_reused_state_is_refused_the_second_time(world):
    world.patreon.next_authorizing_user = "p-bob"
    url = await patreon_authorize_url(world, SEED.bob)
    state = parse_qs(urlparse(url).query)["state"][0]
    status, _ = await world.open_in_browser(url)
    assert status == 200
    await world.store.delete_link(SEED.bob)
    replay = f"{world.redirect_uri}?{urlencode({'code': world.patreon.issue_code('p-bob'), 'state': state})}"
    status, html = await world.open_in_browser(replay)
    assert status == 400
    assert "already used" in page_text(html)
    assert await world.store.get_link_by_discord(SEED.bob) is None


async def test_denied_consent_shows_a_plain_page_and_stores_nothing(world):
    world.patreon.deny_next_authorize()
    url = await world.run_link_command(SEED.bob)
    status, html = await world.open_in_browser(url)
    assert "didn't allow access" in page_text(html)
    assert status == 200
    await assert_nothing_stored(world, SEED.bob)


async def test_failed_code_exchange_stores_nothing(world):
    state = parse_qs(urlparse(await patreon_authorize_url(world, SEED.bob)).query)["state"][0]
    status, html = await world.open_in_browser(f"{world.redirect_uri}?{urlencode({'code': 'bogus', 'state': state})}")
    assert status == 400
    assert "did not accept" in page_text(html)
    await assert_nothing_stored(world, SEED.bob)


async def test_patreon_down_during_link_stores_nothing(world):
    world.patreon.fail_next(r"/api/oauth2/token", status=503, count=10)
    url = await world.run_link_command(SEED.bob)
    status, html = await world.open_in_browser(url)
    assert status == 502
    assert "isn't answering" in page_text(html)
    await assert_nothing_stored(world, SEED.bob)


async def test_missing_state_is_refused(world):
    status, html = await world.open_in_browser(f"{world.redirect_uri}?code=abc")
    assert status == 400
    assert "security token" in page_text(html)


async def test_former_patron_links_but_gets_no_tier_role(world):
    status, html = await world.link(SEED.carol)
    assert status == 200, page_text(html)
    assert world.roles_of(SEED.carol) == set()
    assert await world.store.get_link_by_discord(SEED.carol) is not None


async def test_healthz(world):
    status, body = await world.open_in_browser(f"http://127.0.0.1:{world.web_port}/healthz")
    assert status == 200 and '"ok"' in body


async def test_forwarded_link_cannot_take_over_a_linked_patreon_account(world):
    await world.link(SEED.alice)
    world.patreon.next_authorizing_user = "p-alice"  # Bob sends Alice his button and she signs in
    url = await world.run_link_command(SEED.bob)
    status, html = await world.open_in_browser(url)
    assert status == 409
    assert "already linked to another Discord account" in page_text(html)
    assert (await world.store.get_link_by_patreon("p-alice")).discord_user_id == SEED.alice
    assert await world.store.get_link_by_discord(SEED.bob) is None
    assert SEED.gold_role in world.roles_of(SEED.alice) and SEED.gold_role not in world.roles_of(SEED.bob)


async def test_patreon_account_connected_to_another_discord_user_is_refused(world):
    world.patreon.add_user(user_id="p-eve", full_name="Eve", discord_id=SEED.dave)
    world.patreon.set_membership("p-eve", patron_status="active_patron", tier_ids=[SEED.gold_tier])
    world.patreon.next_authorizing_user = "p-eve"
    url = await world.run_link_command(SEED.bob)
    status, html = await world.open_in_browser(url)
    assert status == 409
    assert "connected to a different Discord account" in page_text(html)
    await assert_nothing_stored(world, SEED.bob)


async def test_relinking_to_another_patreon_account_forgets_the_old_tokens(world):
    await world.link(SEED.bob)
    world.patreon.next_authorizing_user = "p-dave"
    status, _ = await world.open_in_browser(await world.run_link_command(SEED.bob))
    assert status == 200
    assert (await world.store.get_link_by_discord(SEED.bob)).patreon_user_id == "p-dave"
    assert await world.store.get_tokens(patron_subject("p-bob")) is None
    assert SEED.bronze_role not in world.roles_of(SEED.bob), "Dave's free membership earns no Bronze"


async def test_unlink_says_which_roles_it_could_not_take_back(world):
    await world.link(SEED.alice)
    world.guild.update_role(SEED.gold_role, position=99)
    gateway = world.bot.services.gateway
    await wait_for(lambda: SEED.gold_role in gateway.unassignable_roles(SEED.guild_id, frozenset({SEED.gold_role})))
    interaction = await world.discord.invoke_slash(SEED.guild_id, SEED.alice, "patreon", ["unlink"])
    await interaction.wait_response(timeout=5)
    await wait_for(lambda: "Unlinked" in (interaction.content or ""))
    assert "Couldn't remove: @Gold Patron" in interaction.content


async def test_a_role_given_moments_ago_survives_even_before_the_bot_hears_of_it(world):
    # A moderator gives Bob VIP; Discord has it, but the gateway event hasn't reached the bot's cache yet.
    set.add(world.guild.member(SEED.bob).role_ids, SEED.vip_role)  # the fake's plain set: no event sent
    status, _ = await world.link(SEED.bob)
    assert status == 200
    assert world.roles_of(SEED.bob) == {SEED.vip_role, SEED.bronze_role}


async def test_link_again_says_you_are_already_linked(world):
    await world.link(SEED.bob)
    interaction = await world.discord.invoke_slash(SEED.guild_id, SEED.bob, "patreon", ["link"])
    await interaction.wait_response(timeout=5)
    assert "already linked (Patreon user `p-bob`)" in (interaction.content or "")
    assert interaction.link_buttons()


async def test_no_token_or_secret_ever_reaches_the_log(tmp_path, caplog):
    """From start-up on, at DEBUG, discord.py's own loggers included: a link (with its OAuth code), slash commands
    (each with an interaction token), a webhook and a refresh leave no token or secret in any line or traceback."""
    caplog.set_level("DEBUG")
    world = await FakeWorld(tmp_path / "bot.sqlite3").start()
    try:
        status_code, _ = await world.link(SEED.alice)
        assert status_code == 200
        status = await world.discord.invoke_slash(SEED.guild_id, SEED.alice, "patreon", ["status"])
        await status.wait_response(timeout=5)
        assert (await world.send_webhook("members:pledge:update", "p-alice"))[0] < 300
        await world.settle()
        await world.refresh("log check")
        secrets = {*secrets_of(world.config), *(record.token for record in world.discord.interactions)}
        for token in world.patreon.tokens.by_access.values():  # every pair fake Patreon issued: creator and patron
            secrets |= {token.access_token, token.refresh_token}
    finally:
        await world.close()
    logged = caplog.text + "\n".join(record.getMessage() for record in caplog.records)
    assert "linked discord=" in logged, "the flow was logged at all"
    debug_loggers = {record.name for record in caplog.records if record.levelname == "DEBUG"}
    discord_debug = {"discord.http", "discord.gateway", "discord.client", "discord.webhook.async_"}
    assert discord_debug <= debug_loggers, "discord.py's DEBUG was captured"
    assert len(world.discord.interactions) >= 2
    shown = {secret for secret in secrets if secret in logged or quote(secret, safe="") in logged}
    assert shown == set()
    oauth_codes = re.findall(r"[?&]code=([^&\s'\"]+)", logged)
    assert set(oauth_codes) <= {"[redacted]"}, "every OAuth code in a logged URL is hidden"
