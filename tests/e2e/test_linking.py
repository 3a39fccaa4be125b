"""The linking flow end to end: real bot, real discord.py, real Patreon client, loopback fakes."""

import asyncio
from urllib.parse import parse_qs, urlencode, urlparse

from bot.store import patron_subject
from tests.fakes.world import PATREON_IDS, SEED, page_text


async def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def test_link_grants_the_tier_role_at_once_and_keeps_hand_given_roles(world):
    status, html = await world.link(SEED.alice)
    text = page_text(html)
    assert status == 200, text
    assert "Your Patreon account is linked" in text
    assert "Gold" in text and "@Gold Patron" in text
    assert world.roles_of(SEED.alice) == {SEED.vip_role, SEED.gold_role}
    patches = world.discord.calls_matching("PATCH", rf"/guilds/{SEED.guild_id}/members/{SEED.alice}$")
    assert len(patches) == 1, "one Discord call per member whose roles differ"
    assert "Patreon sync (linked)" in (patches[0].reason or "")
    link = await world.store.get_link_by_discord(SEED.alice)
    assert link is not None and link.patreon_user_id == "p-alice" and link.linked_in_guild_id == SEED.guild_id
    assert await world.store.get_tokens(patron_subject("p-alice")) is not None
    await wait_for(lambda: any("Gave @Gold Patron" in m["content"] for m in world.discord.messages(SEED.log_channel)))


async def test_authorize_url_asks_patreon_for_identity_with_our_client_and_redirect(world):
    url = await world.run_link_command(SEED.bob)
    query = parse_qs(urlparse(url).query)
    assert url.startswith(world.patreon.base_url + "/oauth2/authorize?")
    assert query["client_id"] == ["fake-client"]
    assert query["redirect_uri"] == [world.redirect_uri]
    assert query["response_type"] == ["code"]
    assert "identity" in query["scope"][0].split(" ")
    assert query["state"][0].count(".") == 1


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
    url = await world.run_link_command(SEED.bob)
    state = parse_qs(urlparse(url).query)["state"][0]
    body, signature = state.split(".")
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


async def test_reused_state_is_refused_the_second_time(world):
    world.patreon.next_authorizing_user = "p-bob"
    url = await world.run_link_command(SEED.bob)
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
    url = await world.run_link_command(SEED.bob)
    state = parse_qs(urlparse(url).query)["state"][0]
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
