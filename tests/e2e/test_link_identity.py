"""A link button proves nothing by itself: Discord must say who holds the browser, and the browser must be the one
that opened the button. Real bot, real discord.py, real HTTP with each person's own cookie jar."""

import re
from html import unescape
from urllib.parse import parse_qs, urlencode, urlparse

from bot.accounts.oauth_state import COOKIE_NAME, HOST_COOKIE_NAME
from bot.store import patron_subject
from fakes.world import PATREON_IDS, SEED, FakeWorld, page_text


async def nothing_stored_for(world, *discord_ids: int) -> None:
    for discord_id in discord_ids:
        assert await world.store.get_link_by_discord(discord_id) is None
        assert await world.store.get_tokens(patron_subject(PATREON_IDS[discord_id])) is None
        assert world.role_calls(discord_id) == []


async def test_a_forwarded_button_opened_by_someone_else_is_refused_and_stores_nothing(world):
    dave_url = await world.run_link_command(SEED.dave)  # Dave sends his button to Bob
    world.patreon.next_authorizing_user = "p-bob"  # Bob would sign in to his own Patreon
    status, html = await world.open_in_browser(dave_url, as_user=SEED.bob)  # Bob's browser, signed in to Discord as Bob
    assert status == 403, page_text(html)
    assert "made for another Discord account" in page_text(html)
    await nothing_stored_for(world, SEED.dave, SEED.bob)
    assert world.patreon.count("/oauth2/authorize") == world.patreon.count("/api/oauth2/token") == 0, "no Patreon step"
    # The button is burnt: Dave himself can't use it any more either.
    world.patreon.next_authorizing_user = "p-dave"
    status, html = await world.open_in_browser(dave_url, as_user=SEED.dave)
    assert status == 400 and "already used" in page_text(html)
    await nothing_stored_for(world, SEED.dave)


async def test_the_discord_step_opened_in_another_browser_is_refused(world):
    url = await world.run_link_command(SEED.bob)
    discord_url = await world.browser_of(SEED.bob).url_before(url, world.discord.base_url)
    status, html = await world.open_in_browser(discord_url, as_user=SEED.dave)  # Dave's browser has no such cookie
    assert status == 403 and "started in another browser" in page_text(html)
    await nothing_stored_for(world, SEED.bob, SEED.dave)


async def test_the_patreon_step_without_the_cookie_is_refused(world):
    world.patreon.next_authorizing_user = "p-bob"
    url = await world.run_link_command(SEED.bob)
    browser = world.browser_of(SEED.bob)
    patreon_url = await browser.url_before(url, world.patreon.base_url)
    assert browser.cookie(COOKIE_NAME), "the bot's start page set the cookie"
    browser.drop_cookie(COOKIE_NAME)
    status, html = await browser.open(patreon_url)
    assert status == 403 and "started in another browser" in page_text(html)
    await nothing_stored_for(world, SEED.bob)


async def test_the_patreon_step_opened_in_another_browser_is_refused(world):
    world.patreon.next_authorizing_user = "p-bob"
    url = await world.run_link_command(SEED.bob)
    patreon_url = await world.browser_of(SEED.bob).url_before(url, world.patreon.base_url)
    status, html = await world.open_in_browser(patreon_url, as_user=SEED.dave)
    assert status == 403 and "another browser" in page_text(html)
    await nothing_stored_for(world, SEED.bob, SEED.dave)


async def test_a_cookie_of_another_attempt_does_not_match(world):
    world.patreon.next_authorizing_user = "p-bob"
    browser = world.browser_of(SEED.bob)
    first = await browser.url_before(await world.run_link_command(SEED.bob), world.patreon.base_url)
    await browser.url_before(await world.run_link_command(SEED.bob), world.patreon.base_url)  # the cookie moves on
    status, html = await browser.open(first)
    assert status == 403 and "another browser" in page_text(html)
    await nothing_stored_for(world, SEED.bob)


async def test_a_forged_cookie_is_refused(world):
    world.patreon.next_authorizing_user = "p-bob"
    browser = world.browser_of(SEED.bob)
    patreon_url = await browser.url_before(await world.run_link_command(SEED.bob), world.patreon.base_url)
    state = parse_qs(urlparse(patreon_url).query)["state"][0]
    browser.drop_cookie(COOKIE_NAME)
    browser.set_cookie(COOKIE_NAME, state, world.bot_url)  # a signed token, but not a cookie this bot made
    status, _ = await browser.open(patreon_url)
    assert status == 403
    await nothing_stored_for(world, SEED.bob)


async def test_cancel_on_discord_links_nothing(world):
    url = await world.run_link_command(SEED.bob)
    world.browser_of(SEED.bob).approve_discord = False
    status, html = await world.open_in_browser(url)
    assert status == 200 and "didn't allow Discord sign-in" in page_text(html)
    await nothing_stored_for(world, SEED.bob)


async def test_a_used_button_opened_again_is_refused(world):
    url = await world.run_link_command(SEED.bob)
    world.patreon.next_authorizing_user = "p-bob"
    status, _ = await world.open_in_browser(url)
    assert status == 200
    await world.store.delete_link(SEED.bob)
    status, html = await world.open_in_browser(url)
    assert status == 400 and "already used" in page_text(html)
    assert await world.store.get_link_by_discord(SEED.bob) is None


async def test_a_state_for_one_step_is_refused_at_the_other(world):
    """The Patreon-step state (minted only after Discord's proof) can't restart the flow, and vice versa."""
    world.patreon.next_authorizing_user = "p-bob"
    browser = world.browser_of(SEED.bob)
    patreon_url = await browser.url_before(await world.run_link_command(SEED.bob), world.patreon.base_url)
    patreon_state = parse_qs(urlparse(patreon_url).query)["state"][0]
    status, _ = await browser.open(f"{world.bot_url}/link/start?{urlencode({'state': patreon_state})}")
    assert status == 400
    status, _ = await browser.open(f"{world.bot_url}/discord/callback?{urlencode({'state': patreon_state})}")
    assert status == 400
    await nothing_stored_for(world, SEED.bob)


def undo_token(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "the result page has an undo button"
    return unescape(match.group(1))


async def test_undo_removes_the_fresh_link_and_only_the_roles_the_bot_gave(world):
    status, html = await world.link(SEED.alice)
    assert status == 200 and "This isn't me" in page_text(html)
    assert world.roles_of(SEED.alice) == {SEED.vip_role, SEED.gold_role}
    browser = world.browser_of(SEED.alice)
    status, html = await browser.post_form(f"{world.bot_url}/link/undo", {"csrf": undo_token(html)})
    assert status == 200 and "The link was undone" in page_text(html), page_text(html)
    assert await world.store.get_link_by_discord(SEED.alice) is None
    assert await world.store.get_tokens(patron_subject("p-alice")) is None
    assert world.roles_of(SEED.alice) == {SEED.vip_role}, "the moderator's VIP stays"


async def test_undo_needs_its_csrf_token(world):
    status, html = await world.link(SEED.bob)
    browser = world.browser_of(SEED.bob)
    for fields in ({}, {"csrf": ""}, {"csrf": undo_token(html)[:-3] + "abc"}):
        status, _ = await browser.post_form(f"{world.bot_url}/link/undo", fields)
        assert status == 403
    assert await world.store.get_link_by_discord(SEED.bob) is not None
    assert SEED.bronze_role in world.roles_of(SEED.bob)


async def test_undo_needs_the_browser_that_linked(world):
    status, html = await world.link(SEED.bob)
    token = undo_token(html)
    # The token leaks (a screenshot, a shared page): another browser, or the page's own browser without its cookie.
    status, _ = await world.browser_of(SEED.dave).post_form(f"{world.bot_url}/link/undo", {"csrf": token})
    assert status == 403
    browser = world.browser_of(SEED.bob)
    browser.drop_cookie(COOKIE_NAME)
    status, _ = await browser.post_form(f"{world.bot_url}/link/undo", {"csrf": token})
    assert status == 403
    assert await world.store.get_link_by_discord(SEED.bob) is not None


async def test_undo_only_within_the_hour(world):
    status, html = await world.link(SEED.bob)
    world.clock.advance(minutes=61)
    status, html = await world.browser_of(SEED.bob).post_form(f"{world.bot_url}/link/undo", {"csrf": undo_token(html)})
    assert status == 400 and "/patreon unlink" in page_text(html)
    assert await world.store.get_link_by_discord(SEED.bob) is not None


async def test_an_old_undo_button_never_removes_a_newer_link(world):
    _, first = await world.link(SEED.bob)
    browser = world.browser_of(SEED.bob)
    status, _ = await browser.post_form(f"{world.bot_url}/link/undo", {"csrf": undo_token(first)})
    assert status == 200
    status, _ = await world.link(SEED.bob)  # linked again, on purpose
    status, html = await browser.post_form(f"{world.bot_url}/link/undo", {"csrf": undo_token(first)})
    assert status == 409 and "nothing to undo" in page_text(html)
    assert await world.store.get_link_by_discord(SEED.bob) is not None


async def test_the_cookie_is_http_only_lax_and_secure_behind_https(tmp_path):
    world = await FakeWorld(tmp_path / "bot.sqlite3").start(start_bot=False)
    world.extra_environment["PUBLIC_URL"] = "https://roles.example.com"
    try:
        await world.seed_store()
        await world.start_bot()
        url = await world.run_link_command(SEED.bob)
        assert url.startswith("https://roles.example.com/link/start?state=")
        local = url.replace("https://roles.example.com", world.bot_url)
        async with world.browser.get(local, allow_redirects=False) as response:
            assert response.status == 302
            assert parse_qs(urlparse(response.headers["Location"]).query)["redirect_uri"] == [
                "https://roles.example.com/discord/callback"
            ]
            cookie = response.cookies[HOST_COOKIE_NAME]  # `__Host-`: no sibling host can set it (review 5, R5-11)
            assert COOKIE_NAME not in response.cookies
        assert cookie["httponly"] and cookie["secure"] and cookie["samesite"] == "Lax" and cookie["path"] == "/"
        assert not cookie["domain"], "a __Host- cookie has no Domain, or browsers drop it"
    finally:
        await world.close()
