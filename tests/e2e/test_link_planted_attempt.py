"""Login CSRF on the link flow: an attacker plants his own half-finished attempt in a patron's browser.

Dave (free) runs `/patreon link`, passes Discord's sign-in as himself in his own browser and keeps the Patreon URL it
leads to. He then has Alice's browser open his start link (which sets the attempt's cookie there) and then his
Patreon URL, where Alice, signed in to Patreon, approves. Before the browser proof, the cookie named only the
attempt's nonce, which his start link carries, so the callback linked Alice's Patreon account to Dave and gave him
her Gold role.
"""

from __future__ import annotations

from fakes.browser import Browser
from fakes.world import SEED
from tests.e2e.polling import wait_for


async def test_an_attempt_planted_in_another_browser_links_nothing(world):
    start_url = await world.run_link_command(SEED.dave)
    patreon_url = await world.browser_of(SEED.dave).url_before(start_url, world.patreon.base_url)
    alices = Browser(world.discord.base_url, "alice")
    world.browsers[-1] = alices  # closed with the world
    await alices.url_before(start_url, world.discord.base_url)  # Dave's start link, opened in Alice's browser
    world.patreon.next_authorizing_user = "p-alice"
    status, _ = await alices.open(patreon_url)

    assert status == 403
    assert await world.store.get_link_by_discord(SEED.dave) is None
    assert SEED.gold_role not in world.roles_of(SEED.dave)


async def test_the_patron_who_started_it_still_links_in_his_own_browser(world):
    await world.link(SEED.alice)
    await wait_for(lambda: SEED.gold_role in world.roles_of(SEED.alice))
    link = await world.store.get_link_by_discord(SEED.alice)
    assert link is not None and link.patreon_user_id == "p-alice"
