"""`python -m bot demo`: the real bot against the bundled fake Discord and fake Patreon, no accounts needed."""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.accounts.panel import LINK_ID
from fakes.browser import Browser
from fakes.discord import RateLimits
from fakes.discord.interactions import InteractionRecord
from fakes.world import SEED, FakeWorld, button_url, page_text

log = logging.getLogger("demo")

STEP_TIMEOUT = 60.0
"""How long one step may wait for its signal: far above a loaded machine's seconds, so only a real stall fails."""


class DemoStepError(Exception):
    """A step's signal (a command's answer, a role in the fake Discord, the queue idle) never came."""


def _say(text: str = "") -> None:
    print(text, flush=True)


async def run_demo(web_port: int = 8080, once: bool = False) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    logging.getLogger("discord").setLevel(logging.ERROR)  # voice-library notices are noise here
    with tempfile.TemporaryDirectory(prefix="patreon-demo-") as folder:
        world = FakeWorld(Path(folder) / "demo.sqlite3", web_port=web_port, rate_limits=RateLimits.real())
        world.env_campaign = False  # no creator tokens in .env: every campaign comes from /patreon-admin connect
        await world.start(start_bot=False)
        del world.patreon.webhooks.hooks[world.webhook.id]  # and nobody made a webhook by hand in Patreon's portal
        _seed_eve(world)
        await world.seed_store()
        await world.start_bot()
        try:
            await _walkthrough(world)
            if not once:
                await _stay_up(world)
        except DemoStepError as error:
            print(f"demo failed: {error}", file=sys.stderr, flush=True)
            return 1
        finally:
            await world.close()
    return 0


async def _walkthrough(world: FakeWorld) -> None:
    _say()
    _say("=== patreon-role-sync demo: everything runs on 127.0.0.1 ===")
    _say(f"fake Discord : {world.discord.base_url}   (server 'Creator's Server', roles Gold Patron / Bronze Patron)")
    _say(f"fake Patreon : {world.patreon.base_url}   (campaign with tiers Gold 10.00 USD, Bronze 5.00 USD)")
    _say(f"bot web app  : http://127.0.0.1:{world.web_port}   (OAuth callbacks, webhooks, /healthz)")
    _say()
    await _connect_walkthrough(world)
    _say("2) Alice, a Gold patron, runs /patreon link in Discord and gets a private button:")
    world.patreon.next_authorizing_user = "p-alice"
    url = await world.run_link_command(SEED.alice)
    _say(f"   {url[:110]}...")
    _say("3) She follows it: the bot's page sets a cookie for her browser, (fake) Discord signs her in and")
    _say("   confirms she is @alice, (fake) Patreon approves, and the bot's callback shows:")
    status, html = await world.open_in_browser(url)
    _say(f"   [{status}] {page_text(html)}")
    _say(f"   (pages she saw, first time in this browser: {', '.join(_page_names(world, SEED.alice))})")
    await _settle("3", "@Gold Patron on Alice", lambda: SEED.gold_role in world.roles_of(SEED.alice))
    _say(f"   Her roles in the server now: {_role_names(world, SEED.alice)}")
    _say("   (VIP was given by a moderator; the bot will never take it away.)")
    interaction = await world.discord.invoke_slash(SEED.guild_id, SEED.alice, "patreon", ["status"])
    await _settle("4", "/patreon status's answer (Linked ...)", lambda: "Linked" in (interaction.content or ""))
    _say("4) /patreon status tells her why:")
    for line in (interaction.content or "").splitlines():
        _say(f"   {line}")
    _say("5) Alice moves to the Bronze tier on Patreon; Patreon sends the bot a signed webhook:")
    world.patreon.set_membership("p-alice", patron_status="active_patron", tier_ids=[SEED.bronze_tier])
    status = await _deliver(world, "members:pledge:update", "p-alice", world.patreon.campaign.id)
    await _idle(world, "5")
    await _settle(
        "5",
        "@Bronze Patron instead of @Gold Patron on Alice",
        lambda: world.roles_of(SEED.alice) & {SEED.gold_role, SEED.bronze_role} == {SEED.bronze_role},
    )
    _say(f"   webhook answered {status}; her roles now: {_role_names(world, SEED.alice)}")
    await _refresh_and_report(world)
    await _panel_walkthrough(world)
    await _second_server(world)
    _say()


async def _connect_walkthrough(world: FakeWorld) -> None:
    """No campaign is connected at first: the owner connects theirs, and the bot registers the webhook."""
    check = await world.discord.invoke_slash(SEED.guild_id, SEED.owner_id, "patreon-admin", ["check"])
    await _settle("0", "/patreon-admin check's answer", lambda: "campaign" in (check.content or ""))
    _say("0) Nothing is connected yet. /patreon-admin check says:")
    _say(f"   {(check.content or '').strip().splitlines()[0]}")
    command = await world.discord.invoke_slash(SEED.guild_id, SEED.owner_id, "patreon-admin", ["connect"])
    await _answered(command, "1", "/patreon-admin connect's button")
    url = button_url(command.components)
    _say("1) The owner runs /patreon-admin connect and gets a private button:")
    _say(f"   {url[:110]}...")
    world.patreon.approve_next_as(world.patreon.owner_id)  # the creator approves on (fake) Patreon
    status, html = await world.open_in_browser(url, as_user=SEED.owner_id)
    _say("   They sign in to (fake) Discord as themselves, the creator approves on (fake) Patreon, and the page says:")
    _say(f"   [{status}] {page_text(html)}")
    for hook in world.patreon.webhooks.hooks.values():
        _say(f"   Patreon now has webhook {hook.id} -> {hook.uri}")
        _say(f"   triggers {', '.join(hook.triggers)}; its secret is stored sealed in the bot's database")


async def _refresh_and_report(world: FakeWorld) -> None:
    """`/patreon refresh` (a lost webhook, read again by the patron) and `/patreon-admin patrons`."""
    world.patreon.set_membership("p-alice", patron_status="active_patron", tier_ids=[SEED.gold_tier])  # no webhook
    refresh = await world.discord.invoke_slash(SEED.guild_id, SEED.alice, "patreon", ["refresh"])
    await _settle("6", "/patreon refresh's answer", lambda: "Read your membership" in (refresh.content or ""))
    _say("6) Alice goes back to Gold but the webhook is lost; she runs /patreon refresh:")
    for line in (refresh.content or "").splitlines():
        _say(f"   {line}")
    report = await world.discord.invoke_slash(SEED.guild_id, SEED.owner_id, "patreon-admin", ["patrons"])
    def csv_or_error() -> bool:
        attached = any(message.get("attachments") for message in report.followups.values())
        return attached or any("went wrong" in answer for answer in _answers(report))

    await _settle("7", "/patreon-admin patrons' answer with patrons.csv attached", csv_or_error)
    if not any(message.get("attachments") for message in report.followups.values()):
        raise DemoStepError(f"step 7: /patreon-admin patrons answered {_answers(report)[-1]!r}, not patrons.csv")
    _say("7) The owner runs /patreon-admin patrons (a summary, and patrons.csv attached):")
    for message in report.followups.values():
        for line in message["content"].splitlines():
            _say(f"   {line}")
    options = {"member": SEED.dave, "role": SEED.bronze_role, "days": 30, "reason": "stream moderator"}
    comp = await world.discord.invoke_slash(SEED.guild_id, SEED.owner_id, "patreon-admin", ["comp"], options=options)
    await _settle("7 (comp)", "/patreon-admin comp's answer", lambda: any("Comped" in a for a in _answers(comp)))
    await _settle("7 (comp)", "@Bronze Patron on Dave", lambda: SEED.bronze_role in world.roles_of(SEED.dave))
    _say("   The owner comps Dave, who doesn't pledge: /patreon-admin comp member:@dave role:@Bronze Patron days:30")
    _say(f"   {_answers(comp)[-1]}")
    _say(f"   Dave's roles now: {_names(world.roles_of(SEED.dave))} (the engine takes it back when the 30 days end)")


def _answers(interaction: InteractionRecord) -> list[str]:
    """What a command answered so far: its response and follow-ups, in order."""
    texts = [(r.get("data") or {}).get("content") or r.get("content") or "" for r in interaction.responses]
    texts += [m.get("content") or "" for m in interaction.followups.values()]
    return [text for text in texts if text]


GET_ROLES = 740000000000000009
ERIN = 750000000000000005


async def _panel_walkthrough(world: FakeWorld) -> None:
    """The admin posts the Link-account panel once; a new patron clicks it instead of typing a command."""
    world.guild.add_text_channel(GET_ROLES, name="get-roles")
    await _settle(
        "8", "the bot to see #get-roles", lambda: world.bot is not None and world.bot.get_channel(GET_ROLES) is not None
    )
    command = await world.discord.invoke_slash(
        SEED.guild_id, SEED.owner_id, "patreon-admin", ["panel"], options={"channel": GET_ROLES}
    )
    await _settle("8", "/patreon-admin panel's answer", lambda: "panel" in (command.content or ""))
    _say(f"8) The server's owner runs /patreon-admin panel channel:#get-roles once: {command.content}")
    panel = world.discord.messages(GET_ROLES)[-1]
    for line in panel["content"].splitlines():
        _say(f"   | {line}")
    labels = [button["label"] for row in panel["components"] for button in row["components"]]
    _say(f"   | [{'] ['.join(labels)}]")
    world.patreon.add_user(user_id="p-erin", full_name="Erin")
    world.patreon.set_membership("p-erin", patron_status="active_patron", tier_ids=[SEED.gold_tier])
    world.guild.add_member(ERIN, username="erin")  # the click carries her member object: no cache to wait for
    click = await world.discord.click_button(SEED.guild_id, ERIN, GET_ROLES, int(panel["id"]), LINK_ID)
    await _answered(click, "9", "the Link account button's private answer")
    _say("9) Erin, a new Gold patron, never types a command: she clicks Link account and gets a private answer:")
    _say(f"   {click.content}")
    world.patreon.next_authorizing_user = "p-erin"
    status, html = await world.open_in_browser(click.link_buttons()[0]["url"], as_user=ERIN)
    _say(f"   She follows its button: [{status}] {page_text(html)[:100]}...")
    await _settle("9", "@Gold Patron on Erin", lambda: SEED.gold_role in world.roles_of(ERIN))
    _say(f"   Her roles now: {_role_names(world, ERIN)}")


EVES_SERVER = 710000000000000077
EVE = 750000000000000077
BEN = 750000000000000078
EVE_ROLE = 730000000000000077
EVES_CAMPAIGN = "9100001"
EVES_TIER = "9200001"


def _seed_eve(world: FakeWorld) -> None:
    """A second creator, Eve, with her own campaign and server; Ben pledges to her, and is in both servers."""
    other = world.discord.add_guild(EVES_SERVER, name="Eve's Server", owner_id=EVE)
    other.add_role(EVE_ROLE, "Eve Patron", position=10)
    other.add_member(EVE, username="eve")
    other.add_member(SEED.alice, username="alice")
    for guild in (other, world.guild):
        guild.add_member(BEN, username="ben")
    campaign = world.patreon.add_creator("p-eve", "Eve", EVES_CAMPAIGN)
    campaign.add_tier(EVES_TIER, "Eve's tier", 700)
    campaign.add_user("p-ben", "Ben", None)
    campaign.set_membership("p-ben", patron_status="active_patron", tier_ids=[EVES_TIER])
    world.browsers[EVE] = Browser(world.discord.base_url, "eve")


async def _second_server(world: FakeWorld) -> None:
    """Eve connects her own campaign to her own server: the two servers never see each other's patrons."""
    command = await world.discord.invoke_slash(EVES_SERVER, EVE, "patreon-admin", ["connect"])
    await _answered(command, "10", "Eve's /patreon-admin connect button")
    world.patreon.approve_next_as("p-eve")
    status, html = await world.open_in_browser(button_url(command.components), as_user=EVE)
    _say("10) In another server, Eve runs /patreon-admin connect and approves her own campaign on Patreon:")
    _say(f"   [{status}] {page_text(html)}")
    for name, options in (("settings", {"enabled": True}), ("map", {"tier": EVES_TIER, "role": EVE_ROLE})):
        done = await world.discord.invoke_slash(EVES_SERVER, EVE, "patreon-admin", [name], options=options)
        await _answered(done, "10", f"Eve's /patreon-admin {name} answer", count=2)  # deferred, then the answer
    _say("    She turns the bot on there and maps Eve's tier to @Eve Patron.")
    world.patreon.next_authorizing_user = "p-ben"
    link = await world.discord.invoke_slash(EVES_SERVER, BEN, "patreon", ["link"])
    await _answered(link, "11", "Ben's /patreon link button")
    status, html = await world.open_in_browser(button_url(link.components), as_user=BEN)
    _say(f"11) Ben, Eve's patron, links in her server: [{status}] {page_text(html)}")
    await _idle(world, "11")
    await _settle("11", "@Eve Patron on Ben in Eve's Server", lambda: EVE_ROLE in _roles_in(world, EVES_SERVER, BEN))
    in_eves = _names(_roles_in(world, EVES_SERVER, BEN))
    _say(f"    Ben's roles in Eve's Server: {in_eves}; in Creator's Server: {_names(world.roles_of(BEN))}")
    alice = _names(_roles_in(world, EVES_SERVER, SEED.alice))
    _say(f"    Alice (a patron of the first campaign) in Eve's Server: {alice}")
    _say("    Each campaign's patrons get roles only where their campaign is followed.")


def _roles_in(world: FakeWorld, guild_id: int, user_id: int) -> set[int]:
    return set(world.discord.guild(guild_id).member(user_id).role_ids)


def _names(role_ids: set[int]) -> str:
    names = {
        SEED.gold_role: "@Gold Patron",
        SEED.bronze_role: "@Bronze Patron",
        SEED.vip_role: "@VIP",
        EVE_ROLE: "@Eve Patron",
    }
    return ", ".join(sorted(names.get(role, str(role)) for role in role_ids)) or "none"


PATRONS = {"alice": (SEED.alice, "p-alice"), "bob": (SEED.bob, "p-bob"), "carol": (SEED.carol, "p-carol")}
TIERS = {"gold": SEED.gold_tier, "bronze": SEED.bronze_tier}
HELP = """Type a command (then Enter):
   gold NAME | bronze NAME   the patron pledges to that tier (Patreon sends a signed webhook)
   cancel NAME               the patron cancels (former patron; roles follow the server's policy)
   roles NAME                show the patron's roles in the server
   quit
 NAME is alice, bob or carol."""


async def _stay_up(world: FakeWorld) -> None:
    world.patreon.next_authorizing_user = "p-bob"
    url = await world.run_link_command(SEED.bob)
    _say("Your turn: open this link in a browser to link Bob (a Bronze patron) yourself. The fake Discord asks")
    _say("you to sign in: type bob (as anyone else, the bot refuses: the button is Bob's), then Authorize:")
    _say(f"   {url}")
    _say(HELP)
    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line or line.strip() == "quit":  # end of input, or asked to stop
            return
        _say(await _command(world, line.split()))


async def _command(world: FakeWorld, words: list[str]) -> str:
    if len(words) != 2 or words[1] not in PATRONS or words[0] not in (*TIERS, "cancel", "roles"):
        return HELP
    verb, name = words
    discord_id, patreon_id = PATRONS[name]
    if verb == "roles":
        return f"{name}: {_role_names(world, discord_id)}"
    if verb == "cancel":  # the month already paid for runs on for 20 days
        paid_until = datetime.now(UTC) + timedelta(days=20)
        world.patreon.set_membership(
            patreon_id, patron_status="former_patron", tier_ids=[], next_charge_date=paid_until
        )
        trigger = "members:pledge:delete"
    else:
        world.patreon.set_membership(patreon_id, patron_status="active_patron", tier_ids=[TIERS[verb]])
        trigger = "members:pledge:update"
    status = await _deliver(world, trigger, patreon_id, world.patreon.campaign.id)
    await world.settle()
    linked = world.store is not None and await world.store.get_link_by_discord(discord_id) is not None
    note = "" if linked else f" ({name} isn't linked yet, so the server can't know it's them)"
    return f"webhook {trigger} answered {status}; {name} now has: {_role_names(world, discord_id)}{note}"


async def _settle(step: str, what: str, predicate: Callable[[], bool], timeout: float = STEP_TIMEOUT) -> None:
    """Wait for a positive signal (the fake Discord's recorded state); a step that never gets it stops the demo
    with its name and what it waited for, instead of running on into the next step."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise DemoStepError(f"step {step}: no {what} after {timeout:.0f} s")
        await asyncio.sleep(0.05)


async def _answered(interaction: InteractionRecord, step: str, what: str, count: int = 1) -> None:
    """The bot answered the interaction (`count` bodies: 2 for a deferral and its answer)."""
    try:
        await interaction.wait_responses(count, timeout=STEP_TIMEOUT)
    except TimeoutError as error:
        raise DemoStepError(f"step {step}: no {what} after {STEP_TIMEOUT:.0f} s ({error})") from None


async def _idle(world: FakeWorld, step: str) -> None:
    """No webhook event or role job due or running."""
    try:
        await world.settle(timeout=STEP_TIMEOUT)
    except TimeoutError as error:
        raise DemoStepError(f"step {step}: the bot's queues still busy after {STEP_TIMEOUT:.0f} s ({error})") from None


async def _deliver(world: FakeWorld, trigger: str, patreon_id: str, campaign_id: str) -> int:
    """Patreon sends `trigger` to the campaign's registered webhook, signed with its secret; the bot's answer."""
    deliveries = await world.patreon.deliver_event(trigger, patreon_id, campaign_id=campaign_id)
    return deliveries[0].status if deliveries else 0


def _page_names(world: FakeWorld, discord_id: int) -> list[str]:
    """What a person saw between the button and the roles (redirects pass unseen)."""
    kinds = {"/login": "Discord sign-in", "/oauth2/authorize": "Discord's Authorize", "/patreon/callback": "result"}
    pages = world.browser_of(discord_id).pages
    return [next((kind for path, kind in kinds.items() if path in url), url) for _status, url in pages]


def _role_names(world: FakeWorld, discord_id: int) -> str:
    return _names(world.roles_of(discord_id))
