"""Login CSRF on the link flow through Discord's step: the attacker plants his own Discord callback, not Patreon's.

Dave (free) runs `/patreon link`, lets Discord sign him in in his own browser and keeps the bot's
`/discord/callback?code=…&state=…` URL unopened (his own unused code). A page he controls then makes Alice's browser
open his start link (the bot's cookie for his attempt lands there) and then that callback URL. Before the start
page's proof rode in Discord's state, the bot checked only that the cookie named the attempt, asked Discord whose
code it was (Dave's, as the button says), and minted the Patreon step's proof into *Alice's* cookie: Alice, signed
in to Patreon, approved, and her Patreon account was linked to Dave with her Gold role. Now Discord's state carries
a proof of the browser that opened the start page, and a callback made in another browser is refused before any
code is exchanged.

Also here: a Patreon callback refused as "started in another browser" is used up (review F5), and Linked Roles'
own Discord step, which never had the hole (its state is minted per visit), stays shut.
"""

from __future__ import annotations

from bot.accounts.oauth_state import COOKIE_NAME
from bot.store.role_connections import discord_subject
from fakes.browser import Browser
from fakes.world import SEED, FakeWorld, page_text
from tests.e2e.polling import wait_for
from tests.e2e.test_linked_roles import VERIFY, set_up


async def _dave_keeps_his_discord_callback(world: FakeWorld) -> tuple[str, str]:
    """Dave's start link and the bot's Discord callback URL his own sign-in led to, never opened."""
    start_url = await world.run_link_command(SEED.dave)
    callback = await world.browser_of(SEED.dave).url_before(start_url, world.bot_url + "/discord/callback")
    assert "code=" in callback
    return start_url, callback


def _alices_browser(world: FakeWorld) -> Browser:
    alices = Browser(world.discord.base_url, "alice")
    world.browsers[-1] = alices  # closed with the world
    return alices


async def test_a_discord_callback_planted_with_the_attackers_code_links_nothing(world):
    start_url, callback = await _dave_keeps_his_discord_callback(world)
    alices = _alices_browser(world)
    await alices.url_before(start_url, world.discord.base_url)  # Dave's start link: his attempt's cookie is set
    assert alices.cookie(COOKIE_NAME)
    world.patreon.next_authorizing_user = "p-alice"
    authorizes = world.patreon.count("/oauth2/authorize")
    exchanges = world.discord.oauth.grants.count("authorization_code")

    status, html = await alices.open(callback)  # then Dave's own Discord callback

    assert status == 403 and "started in another browser" in page_text(html)
    assert world.patreon.count("/oauth2/authorize") == authorizes, "Alice was never sent to Patreon"
    assert world.discord.oauth.grants.count("authorization_code") == exchanges, "Dave's code was not exchanged"
    assert await world.store.get_link_by_discord(SEED.dave) is None
    assert await world.store.get_link_by_patreon("p-alice") is None
    assert SEED.gold_role not in world.roles_of(SEED.dave)


async def test_the_planted_callback_is_refused_even_after_the_victim_passes_discord_herself(world):
    """Alice's browser opens Dave's start link all the way (Discord signs her in: wrong user, the attempt is
    burnt), then Dave's callback: refused, and her cookie gave Dave nothing."""
    start_url, callback = await _dave_keeps_his_discord_callback(world)
    alices = _alices_browser(world)
    status, _ = await alices.open(start_url)
    assert status == 403
    world.patreon.next_authorizing_user = "p-alice"
    status, _ = await alices.open(callback)
    assert status in (400, 403) and await world.store.get_link_by_discord(SEED.dave) is None
    assert SEED.gold_role not in world.roles_of(SEED.dave)


async def test_the_patron_who_started_it_still_finishes_in_his_own_browser(world):
    """The same attempt, finished where it started: the start page's proof matches, the link is made."""
    _, callback = await _dave_keeps_his_discord_callback(world)
    _alices_browser(world)  # another browser opening nothing changes nothing
    world.patreon.next_authorizing_user = "p-dave"
    status, html = await world.browser_of(SEED.dave).open(callback)
    assert status == 200 and "Your Patreon account is linked" in page_text(html)
    link = await world.store.get_link_by_discord(SEED.dave)
    assert link is not None and link.patreon_user_id == "p-dave"


async def test_two_tabs_of_one_browser_both_reach_discord(world):
    """Opening the button twice in one browser (a second tab, a reload) doesn't strand the first tab."""
    start_url = await world.run_link_command(SEED.alice)
    browser = world.browser_of(SEED.alice)
    first = await browser.url_before(start_url, world.bot_url + "/discord/callback")
    await browser.url_before(start_url, world.bot_url + "/discord/callback")  # the second tab
    world.patreon.next_authorizing_user = "p-alice"
    status, html = await browser.open(first)
    assert status == 200 and "Your Patreon account is linked" in page_text(html)
    await wait_for(lambda: SEED.gold_role in world.roles_of(SEED.alice))


async def test_a_patreon_callback_refused_in_another_browser_is_used_up(world):
    """Dave sends his Patreon sign-in to Alice; she approves and lands on "started in another browser". If she
    pastes that URL back to him ("it failed, what now?"), his browser, which holds the proof, must not finish it."""
    start_url = await world.run_link_command(SEED.dave)
    daves = world.browser_of(SEED.dave)
    patreon_url = await daves.url_before(start_url, world.patreon.base_url)
    alices = _alices_browser(world)
    world.patreon.next_authorizing_user = "p-alice"
    callback = await alices.url_before(patreon_url, world.bot_url + "/patreon/callback")
    status, html = await alices.open(callback)
    assert status == 403 and "started in another browser" in page_text(html)

    status, html = await daves.open(callback)

    assert status == 400 and "already used" in page_text(html)
    assert await world.store.get_link_by_discord(SEED.dave) is None
    assert await world.store.get_link_by_patreon("p-alice") is None
    assert SEED.gold_role not in world.roles_of(SEED.dave)


async def test_linked_roles_discord_callback_planted_with_the_attackers_code_is_refused(world):
    """Linked Roles' Discord step mints its attempt at the verification URL itself, so Dave's kept callback never
    matches the cookie that URL gives Alice's browser (this was never open; it stays shut)."""
    await set_up(world)
    callback = await world.browser_of(SEED.dave).url_before(
        world.bot_url + VERIFY, world.bot_url + "/discord/linked-role/"
    )
    alices = _alices_browser(world)
    await alices.url_before(world.bot_url + VERIFY, world.discord.base_url)
    world.patreon.next_authorizing_user = "p-alice"
    status, html = await alices.open(callback)
    assert status == 403 and "another browser" in page_text(html)
    assert await world.store.role_connection(SEED.dave) is None
    assert await world.store.get_tokens(discord_subject(SEED.dave)) is None
    assert await world.store.get_link_by_discord(SEED.dave) is None
