"""`python -m bot demo`: the real bot against the bundled fake Discord and fake Patreon, no accounts needed."""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

from tests.fakes.world import SEED, FakeWorld, page_text

log = logging.getLogger("demo")


def _say(text: str = "") -> None:
    print(text, flush=True)


async def run_demo(web_port: int = 8080, once: bool = False) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    logging.getLogger("discord").setLevel(logging.ERROR)  # voice-library notices are noise here
    with tempfile.TemporaryDirectory(prefix="patreon-demo-") as folder:
        world = FakeWorld(Path(folder) / "demo.sqlite3", web_port=web_port)
        await world.start()
        try:
            await _walkthrough(world)
            if not once:
                await _stay_up(world)
        finally:
            await world.close()
    return 0


async def _walkthrough(world: FakeWorld) -> None:
    _say()
    _say("=== patreon-role-sync demo: everything runs on 127.0.0.1 ===")
    _say(f"fake Discord : {world.discord.base_url}   (server 'Creator's Server', roles Gold Patron / Bronze Patron)")
    _say(f"fake Patreon : {world.patreon.base_url}   (campaign with tiers Gold $10, Bronze $5)")
    _say(f"bot web app  : http://127.0.0.1:{world.web_port}   (OAuth callback, /healthz)")
    _say()
    _say("1) Alice, a Gold patron, runs /patreon link in Discord and gets a private button:")
    world.patreon.next_authorizing_user = "p-alice"
    url = await world.run_link_command(SEED.alice)
    _say(f"   {url[:110]}...")
    _say("2) She follows it; (fake) Patreon approves and sends her back to the bot, which shows:")
    status, html = await world.open_in_browser(url)
    _say(f"   [{status}] {page_text(html)}")
    _say(f"3) Her roles in the server now: {_role_names(world, SEED.alice)}")
    _say("   (VIP was given by a moderator; the bot will never take it away.)")
    interaction = await world.discord.invoke_slash(SEED.guild_id, SEED.alice, "patreon", ["status"])
    await interaction.wait_response(timeout=5)
    await _settle(lambda: "Linked" in (interaction.content or ""))
    _say("4) /patreon status tells her why:")
    for line in (interaction.content or "").splitlines():
        _say(f"   {line}")
    _say()


async def _stay_up(world: FakeWorld) -> None:
    world.patreon.next_authorizing_user = "p-bob"
    url = await world.run_link_command(SEED.bob)
    _say("Your turn: open this link in a browser to link Bob (a Bronze patron) yourself:")
    _say(f"   {url}")
    _say("Role changes are logged below. Press Ctrl+C to stop.")
    while True:
        await asyncio.sleep(3600)


async def _settle(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate() and loop.time() < deadline:
        await asyncio.sleep(0.05)


def _role_names(world: FakeWorld, discord_id: int) -> str:
    names = {
        SEED.gold_role: "@Gold Patron",
        SEED.bronze_role: "@Bronze Patron",
        SEED.vip_role: "@VIP",
    }
    return ", ".join(sorted(names.get(role, str(role)) for role in world.roles_of(discord_id))) or "none"
