"""Behind https the binding cookie is `__Host-patreon_link` and the plain name is ignored (review 5, R5-11).

Cookie tossing: a page on any sibling subdomain of the bot's domain may set `patreon_link=…; Domain=example.com`
in a patron's browser, and browsers send it to the bot's host too. Dave passes Discord as himself and keeps his
Patreon URL and his own cookie value (which holds the proof that URL wants); his sibling page tosses that value into
Alice's browser under the plain name and sends her to his Patreon URL. A browser refuses to let another host set a
`__Host-` cookie, so the tossed one can only arrive under the plain name, which is what these requests send.

The bot's public URL is https here, which nothing on loopback serves: each hop is sent by hand to the bot's local
address with exactly the cookies a browser would send (Discord's own pages are walked by the fake browser).
"""

from __future__ import annotations

import aiohttp
from itsdangerous import URLSafeSerializer

from bot.accounts.oauth_state import COOKIE_NAME, HOST_COOKIE_NAME
from fakes.world import DISCORD_CLIENT_SECRET, SEED, FakeWorld, page_text

PUBLIC = "https://roles.example.com"


async def https_world(tmp_path) -> FakeWorld:
    world = await FakeWorld(tmp_path / "bot.sqlite3").start(start_bot=False)
    world.extra_environment["PUBLIC_URL"] = PUBLIC
    await world.seed_store()
    await world.start_bot()
    world.discord.oauth.register(DISCORD_CLIENT_SECRET, (f"{PUBLIC}/discord/callback",))
    return world


async def hop(world: FakeWorld, url: str, cookies: dict[str, str]) -> tuple[int, str, dict[str, str], str]:
    """One request to the bot as a browser sends it: (status, Location, cookies set, page text)."""
    headers = {"Cookie": "; ".join(f"{name}={value}" for name, value in cookies.items())} if cookies else {}
    local = url.replace(PUBLIC, world.bot_url)
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session,
        session.get(local, headers=headers, allow_redirects=False) as answer,
    ):
        set_now = {name: morsel.value for name, morsel in answer.cookies.items()}
        return answer.status, answer.headers.get("Location", ""), set_now, page_text(await answer.text())


async def patreon_callback(world: FakeWorld, patreon_url: str, approver: str) -> str:
    """Patreon's consent as `approver`: the callback URL it redirects the browser to."""
    world.patreon.next_authorizing_user = approver
    async with aiohttp.ClientSession() as session, session.get(patreon_url, allow_redirects=False) as answer:
        assert answer.status == 302, await answer.text()
        return answer.headers["Location"]


async def daves_patreon_step(world: FakeWorld, *, start_cookie_as: tuple[str, bool] | None = None) -> tuple[str, str]:
    """Dave's own attempt up to Patreon: (his Patreon URL, the `__Host-` value holding its proof).
    `start_cookie_as` (name, made before the upgrade): send the start page's cookie back under that name and form."""
    start = await world.run_link_command(SEED.dave)
    status, discord_url, set_now, _ = await hop(world, start, {})
    assert status == 302 and HOST_COOKIE_NAME in set_now and COOKIE_NAME not in set_now, set_now
    value = set_now[HOST_COOKIE_NAME]
    name = HOST_COOKIE_NAME
    if start_cookie_as is not None:
        name, old = start_cookie_as
        value = before_the_upgrade(world, value) if old else value
    callback = await world.browser_of(SEED.dave).url_before(discord_url, PUBLIC)  # Dave signs in to Discord
    status, patreon_url, set_now, text = await hop(world, callback, {name: value})
    assert status == 302 and HOST_COOKIE_NAME in set_now, text
    return patreon_url, set_now[HOST_COOKIE_NAME]


def before_the_upgrade(world: FakeWorld, value: str) -> str:
    """The same binding as the version before the prefix wrote it: its fields without a version."""
    assert world.bot is not None
    serializer = URLSafeSerializer(world.bot.services.config.signing_key, salt="link-browser")
    fields = serializer.loads(value)
    return str(serializer.dumps({"b": fields["b"], "n": fields["n"]}))


async def test_a_tossed_plain_cookie_with_daves_proof_links_nothing_and_his_own_still_works(tmp_path):
    world = await https_world(tmp_path)
    try:
        patreon_url, daves_cookie = await daves_patreon_step(world)
        callback = await patreon_callback(world, patreon_url, "p-alice")  # Alice approves his Patreon URL
        status, _, _, text = await hop(world, callback, {COOKIE_NAME: daves_cookie})  # tossed into her browser
        assert status == 403 and "another browser" in text, text
        assert await world.store.get_link_by_discord(SEED.dave) is None
        assert await world.store.get_link_by_patreon("p-alice") is None

        patreon_url, daves_cookie = await daves_patreon_step(world)  # in his own browser, the prefixed cookie
        callback = await patreon_callback(world, patreon_url, "p-dave")
        status, _, _, text = await hop(world, callback, {HOST_COOKIE_NAME: daves_cookie})
        assert status == 200 and "linked" in text, text
        link = await world.store.get_link_by_discord(SEED.dave)
        assert link is not None and link.patreon_user_id == "p-dave"
    finally:
        await world.close()


async def test_a_plain_cookie_made_since_the_upgrade_is_ignored_at_the_discord_step(tmp_path):
    """Dave's start-page value tossed under the plain name: the Discord step finds no cookie of its attempt."""
    world = await https_world(tmp_path)
    try:
        start = await world.run_link_command(SEED.dave)
        _, discord_url, set_now, _ = await hop(world, start, {})
        callback = await world.browser_of(SEED.dave).url_before(discord_url, PUBLIC)
        status, _, _, text = await hop(world, callback, {COOKIE_NAME: set_now[HOST_COOKIE_NAME]})
        assert status == 403 and "another browser" in text, text
    finally:
        await world.close()


async def test_an_attempt_begun_before_the_upgrade_finishes_with_its_plain_cookie(tmp_path):
    """The start page ran before the upgrade (plain name, no version); Discord's callback after it still finds it,
    and from there on the browser holds the prefixed cookie."""
    world = await https_world(tmp_path)
    try:
        patreon_url, cookie = await daves_patreon_step(world, start_cookie_as=(COOKIE_NAME, True))
        callback = await patreon_callback(world, patreon_url, "p-dave")
        status, _, _, text = await hop(world, callback, {HOST_COOKIE_NAME: cookie})
        assert status == 200 and "linked" in text, text
        assert (await world.store.get_link_by_discord(SEED.dave)) is not None
    finally:
        await world.close()
