"""How many pages and clicks between the Link button and the role: as few as Discord and Patreon allow.

The README's linking section quotes these numbers; the fake Patreon approves at once, as Patreon does for a patron
who already allowed the client.
"""

from bot.accounts.oauth_state import COOKIE_NAME
from fakes.discord.oauth import SESSION_COOKIE
from fakes.world import SEED, page_text


def seen(browser) -> list[str]:
    """The pages a person saw, by what they are."""
    kinds = {"/login": "discord sign-in", "/oauth2/authorize": "discord consent", "/patreon/callback": "result"}
    return [next(kind for path, kind in kinds.items() if path in url) for _status, url in browser.pages]


async def test_a_desktop_signed_in_to_discord_sees_only_the_result_page(world):
    browser = world.browser_of(SEED.bob)
    browser.set_cookie(SESSION_COOKIE, world.discord.oauth.sign_in(SEED.bob), world.discord.base_url)
    world.patreon.next_authorizing_user = "p-bob"
    status, html = await world.open_in_browser(await world.run_link_command(SEED.bob))
    assert status == 200 and SEED.bronze_role in world.roles_of(SEED.bob)
    assert seen(browser) == ["discord consent", "result"] and browser.discord_clicks == 1, "first time: Authorize"
    assert browser.cookie(COOKIE_NAME)

    await world.store.delete_link(SEED.bob)
    browser.pages.clear()
    browser.discord_clicks = 0
    world.patreon.next_authorizing_user = "p-bob"
    status, html = await world.open_in_browser(await world.run_link_command(SEED.bob))
    assert status == 200 and "Your Patreon account is linked" in page_text(html)
    assert seen(browser) == ["result"] and browser.discord_clicks == 0, "a returning user: the button, then roles"


async def test_a_phone_not_signed_in_to_discord_gets_one_sign_in_page_more(world):
    browser = world.browser_of(SEED.bob)  # signs in when Discord asks, as a person would
    world.patreon.next_authorizing_user = "p-bob"
    status, _ = await world.open_in_browser(await world.run_link_command(SEED.bob))
    assert status == 200 and SEED.bronze_role in world.roles_of(SEED.bob)
    assert seen(browser) == ["discord sign-in", "discord consent", "result"]
    assert browser.discord_clicks == 2, "Log In, Authorize"


async def test_a_browser_whose_owner_does_not_sign_in_to_discord_links_nothing(world):
    url = await world.run_link_command(SEED.bob)
    browser = world.browser_of(SEED.bob)
    browser.discord_login = None
    status, html = await browser.open(url)
    assert status == 200
    assert "Welcome back!" in page_text(html), "Discord's sign-in page"
    assert await world.store.get_link_by_discord(SEED.bob) is None
