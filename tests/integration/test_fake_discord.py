"""The real, unpatched discord.py Bot against FakeDiscord over loopback.

Why: every other bot test trusts this fake, so here we prove that discord.py logs in, syncs commands,
receives slash commands and member events, and that role edits obey Discord's rules (hierarchy,
Manage Roles, managed roles), including 429 retries and error codes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import discord
import pytest
import yarl
from discord import app_commands
from discord.ext import commands
from discord.gateway import DiscordWebSocket
from discord.http import Route

from fakes.discord import FakeDiscord, FakeGuild

APP_ID = 900000000000000001
TOKEN = "fake-bot-token"
GUILD_ID = 100000000000000001
OWNER_ID = 100000000000000099
ALICE = 200000000000000001
BOB = 200000000000000002
CAROL = 200000000000000003
LOW_ROLE = 300000000000000001
LOW_ROLE_2 = 300000000000000002
HIGH_ROLE = 300000000000000003
MANAGED_ROLE = 300000000000000004
LOG_CHANNEL = 400000000000000001


@pytest.fixture
def point_discord_at() -> Iterator[Callable[[str], None]]:
    """Redirect discord.py to a base URL the way bot/discord_endpoint.py does; restore afterwards."""
    old_base, old_gateway = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY

    def point(base_url: str) -> None:
        Route.BASE = f"{base_url}/api/v10"
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(base_url.replace("http://", "ws://", 1) + "/gateway")

    yield point
    Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = old_base, old_gateway


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord(application_id=APP_ID, bot_user_id=APP_ID, bot_token=TOKEN)
    await fake.start()
    guild = fake.add_guild(GUILD_ID, name="Test Guild", owner_id=OWNER_ID)
    guild.add_role(LOW_ROLE, "Bronze", position=5)
    guild.add_role(LOW_ROLE_2, "Silver", position=6)
    guild.add_role(HIGH_ROLE, "Moderator", position=60)
    guild.add_role(MANAGED_ROLE, "Server Booster", position=2, managed=True)
    guild.add_text_channel(LOG_CHANNEL, name="patreon-log")
    guild.add_member(ALICE, username="alice")
    guild.add_member(BOB, username="bob", roles=[MANAGED_ROLE])
    try:
        yield fake
    finally:
        await fake.close()


class SeenValues:
    """What the command handlers received, so tests can assert typing end to end."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.errors: list[BaseException] = []


def build_bot(seen: SeenValues) -> commands.Bot:
    """A small real Bot: /patreon link, /patreon admin map (autocomplete), /patreon slow, guild /ping."""
    intents = discord.Intents.default()
    intents.members = True
    bot = commands.Bot(command_prefix="!", intents=intents, guild_ready_timeout=0.05)
    patreon = app_commands.Group(name="patreon", description="Patreon role sync")
    admin = app_commands.Group(name="admin", description="Admin tools", parent=patreon)

    @patreon.command(name="link", description="Link your Patreon account")
    @app_commands.describe(tier="Tier you expect")
    async def link(interaction: discord.Interaction, tier: str) -> None:
        seen.values["link"] = (interaction.user.id, tier)
        view = discord.ui.View()
        view.add_item(discord.ui.Button(label="Link Patreon", url=f"https://patreon.example/link?tier={tier}"))
        await interaction.response.send_message("Open the link to connect Patreon.", view=view, ephemeral=True)

    @admin.command(name="map", description="Map a tier to a role")
    @app_commands.describe(tier="Tier", role="Role", amount="Cents", enabled="Active", member="Who")
    async def map_tier(
        interaction: discord.Interaction,
        tier: str,
        role: discord.Role,
        amount: int,
        enabled: bool,
        member: discord.Member | None = None,
    ) -> None:
        seen.values["map"] = (tier, role, amount, enabled, member)
        await interaction.response.defer(ephemeral=True, thinking=True)
        await interaction.edit_original_response(content=f"Mapped {tier} to {role.name}")
        await interaction.followup.send("Saved.", ephemeral=True)

    @map_tier.autocomplete("tier")
    async def tier_choices(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        tiers = ["Bronze", "Silver", "Gold"]
        return [app_commands.Choice(name=t, value=t.lower()) for t in tiers if current.lower() in t.lower()]

    @patreon.command(name="slow", description="Answers too late")
    async def slow(interaction: discord.Interaction) -> None:
        await asyncio.sleep(0.3)
        try:
            await interaction.response.send_message("late")
        except discord.NotFound as exc:
            seen.errors.append(exc)

    @app_commands.command(name="ping", description="Guild-only ping")
    async def ping(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("pong")

    bot.tree.add_command(patreon)
    bot.tree.add_command(ping, guild=discord.Object(GUILD_ID))

    async def setup_hook() -> None:
        await bot.tree.sync()
        await bot.tree.sync(guild=discord.Object(GUILD_ID))

    bot.setup_hook = setup_hook  # type: ignore[method-assign]
    return bot


async def start_bot(seen: SeenValues) -> tuple[commands.Bot, asyncio.Task[None]]:
    bot = build_bot(seen)
    await bot.login(TOKEN)
    task = asyncio.create_task(bot.connect())
    await asyncio.wait_for(bot.wait_until_ready(), timeout=5)
    return bot, task


async def stop_bot(bot: commands.Bot, task: asyncio.Task[None]) -> None:
    await bot.close()
    await asyncio.wait_for(task, timeout=5)


@pytest.fixture
def seen() -> SeenValues:
    return SeenValues()


@pytest.fixture
async def bot(
    fake: FakeDiscord, point_discord_at: Callable[[str], None], seen: SeenValues
) -> AsyncIterator[commands.Bot]:
    point_discord_at(fake.base_url)
    bot, task = await start_bot(seen)
    try:
        yield bot
    finally:
        await stop_bot(bot, task)


def cached_role_ids(bot: commands.Bot, user_id: int) -> set[int]:
    guild = bot.get_guild(GUILD_ID)
    assert guild is not None
    member = guild.get_member(user_id)
    assert member is not None
    return {role.id for role in member.roles if not role.is_default()}


async def eventually(condition: Callable[[], bool], within: float = 2.0) -> None:
    """Poll until the bot's cache catches up with a gateway event."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def fake_guild(fake: FakeDiscord) -> FakeGuild:
    return fake.guild(GUILD_ID)


async def test_login_ready_and_guild_cache(fake: FakeDiscord, bot: commands.Bot) -> None:
    assert fake.connected and fake.identify_count == 1
    assert bot.user is not None and bot.user.id == APP_ID
    guild = bot.get_guild(GUILD_ID)
    assert guild is not None and guild.chunked
    assert {m.id for m in guild.members} == {APP_ID, ALICE, BOB}
    assert guild.me.guild_permissions.manage_roles
    assert guild.me.top_role.position == 50 and guild.me.top_role.managed
    assert guild.get_channel(LOG_CHANNEL) is not None
    assert [c.path for c in fake.calls[:2]] == ["/users/@me", "/oauth2/applications/@me"]


async def test_bad_token_is_refused(fake: FakeDiscord, point_discord_at: Callable[[str], None]) -> None:
    point_discord_at(fake.base_url)
    client = discord.Client(intents=discord.Intents.default())
    with pytest.raises(discord.LoginFailure):
        await client.login("wrong-token")
    await client.close()
    assert fake.calls[-1].status == 401


async def test_synced_commands_are_registered(fake: FakeDiscord, bot: commands.Bot) -> None:
    global_commands = fake.registered_commands()
    assert [c["name"] for c in global_commands] == ["patreon"]
    patreon = global_commands[0]
    assert patreon["application_id"] == str(APP_ID) and patreon["id"].isdigit()
    sub_names = {o["name"]: o["type"] for o in patreon["options"]}
    assert sub_names == {"link": 1, "admin": 2, "slow": 1}
    assert [c["name"] for c in fake.registered_commands(GUILD_ID)] == ["ping"]
    assert len(fake.calls_matching("PUT", rf"/applications/{APP_ID}/commands")) == 1
    fetched = await bot.tree.fetch_commands()
    assert [c.name for c in fetched] == ["patreon"] and fetched[0].id == int(patreon["id"])


async def test_slash_command_gets_ephemeral_link_button(fake: FakeDiscord, bot: commands.Bot, seen: SeenValues) -> None:
    inter = await fake.invoke_slash(GUILD_ID, ALICE, "patreon", ["link"], options={"tier": "gold"})
    body = await inter.wait_response(timeout=5)
    assert body["type"] == 4
    assert seen.values["link"] == (ALICE, "gold")
    assert inter.ephemeral
    assert inter.content == "Open the link to connect Patreon."
    buttons = inter.link_buttons()
    assert len(buttons) == 1 and buttons[0]["url"] == "https://patreon.example/link?tier=gold"


async def test_guild_command_and_second_ack_rules(fake: FakeDiscord, bot: commands.Bot) -> None:
    inter = await fake.invoke_slash(GUILD_ID, BOB, "ping")
    await inter.wait_response()
    assert inter.content == "pong" and not inter.ephemeral
    assert inter.payload["data"]["guild_id"] == str(GUILD_ID)


async def test_nested_group_typed_options_and_deferred_edit(
    fake: FakeDiscord, bot: commands.Bot, seen: SeenValues
) -> None:
    options = {"tier": "gold", "role": LOW_ROLE, "amount": "500", "enabled": "true", "member": BOB}
    inter = await fake.invoke_slash(GUILD_ID, ALICE, "patreon", ["admin", "map"], options=options)
    await inter.wait_responses(3)
    assert inter.response_kinds == ["callback", "edit_original", "followup"]
    assert inter.deferred and inter.ephemeral
    assert inter.original is not None and inter.original["content"] == "Mapped gold to Bronze"
    assert inter.content == "Saved."
    tier, role, amount, enabled, member = seen.values["map"]
    assert tier == "gold" and amount == 500 and enabled is True
    assert isinstance(role, discord.Role) and role.id == LOW_ROLE
    assert isinstance(member, discord.Member) and member.id == BOB


async def test_late_answer_gets_unknown_interaction(fake: FakeDiscord, bot: commands.Bot, seen: SeenValues) -> None:
    fake.interaction_ack_timeout = 0.1
    inter = await fake.invoke_slash(GUILD_ID, ALICE, "patreon", ["slow"])
    await eventually(lambda: bool(seen.errors))
    assert seen.errors[0].code == 10062  # type: ignore[attr-defined]
    assert inter.responses == []


async def test_invoke_rejects_unknown_options(fake: FakeDiscord, bot: commands.Bot) -> None:
    with pytest.raises(ValueError, match="not in the synced schema"):
        await fake.invoke_slash(GUILD_ID, ALICE, "patreon", ["link"], options={"tierr": "x"})
    with pytest.raises(LookupError):
        await fake.invoke_slash(GUILD_ID, ALICE, "nope")


async def test_autocomplete_returns_choices(fake: FakeDiscord, bot: commands.Bot) -> None:
    choices = await fake.autocomplete(
        GUILD_ID, ALICE, "patreon", ["admin", "map"], focused="tier", options={"tier": "l"}
    )
    assert choices == [{"name": "Silver", "value": "silver"}, {"name": "Gold", "value": "gold"}]


async def test_role_changes_for_low_roles_succeed(fake: FakeDiscord, bot: commands.Bot) -> None:
    guild = bot.get_guild(GUILD_ID)
    assert guild is not None
    alice = guild.get_member(ALICE)
    assert alice is not None
    await alice.add_roles(discord.Object(LOW_ROLE), reason="pledge: Bronze")
    assert fake_guild(fake).member(ALICE).role_ids == {LOW_ROLE}
    await eventually(lambda: cached_role_ids(bot, ALICE) == {LOW_ROLE})
    [put] = fake.calls_matching("PUT", rf"/guilds/{GUILD_ID}/members/{ALICE}/roles/{LOW_ROLE}")
    assert put.status == 204 and put.reason == "pledge: Bronze"

    await alice.remove_roles(discord.Object(LOW_ROLE))
    assert fake_guild(fake).member(ALICE).role_ids == set()
    await eventually(lambda: cached_role_ids(bot, ALICE) == set())

    edited = await alice.edit(roles=[discord.Object(LOW_ROLE), discord.Object(LOW_ROLE_2)])
    assert edited is not None and {r.id for r in edited.roles} >= {LOW_ROLE, LOW_ROLE_2}
    assert fake_guild(fake).member(ALICE).role_ids == {LOW_ROLE, LOW_ROLE_2}
    [patch] = fake.calls_matching("PATCH", rf"/guilds/{GUILD_ID}/members/{ALICE}")
    assert sorted(map(int, patch.json["roles"])) == [LOW_ROLE, LOW_ROLE_2]


@pytest.mark.parametrize("scenario", ["above_bot", "managed", "no_manage_roles", "admin_not_above_hierarchy"])
async def test_refused_role_changes_raise_forbidden_and_change_nothing(
    fake: FakeDiscord, bot: commands.Bot, scenario: str
) -> None:
    guild = bot.get_guild(GUILD_ID)
    assert guild is not None
    bob = guild.get_member(BOB)
    assert bob is not None
    target = {"above_bot": HIGH_ROLE, "managed": MANAGED_ROLE}.get(scenario, LOW_ROLE)
    if scenario == "no_manage_roles":
        fake_guild(fake).set_bot_permissions(manage_roles=False)
    if scenario == "admin_not_above_hierarchy":
        fake_guild(fake).set_bot_permissions(manage_roles=False, administrator=True)
        target = HIGH_ROLE
    before = set(fake_guild(fake).member(BOB).role_ids)

    attempts = [
        bob.add_roles(discord.Object(target)),
        bob.remove_roles(discord.Object(target)),
        bob.edit(roles=[discord.Object(r) for r in before ^ {target}]),
    ]
    for attempt in attempts:
        with pytest.raises(discord.Forbidden) as refused:
            await attempt
        assert refused.value.code == 50013 and refused.value.status == 403
    assert fake_guild(fake).member(BOB).role_ids == before
    assert cached_role_ids(bot, BOB) == before


async def test_administrator_bypasses_manage_roles_and_owner_bypasses_hierarchy(
    fake: FakeDiscord, bot: commands.Bot
) -> None:
    guild = fake_guild(fake)
    guild.set_bot_permissions(manage_roles=False, administrator=True)
    await bot.http.add_role(GUILD_ID, ALICE, LOW_ROLE)
    assert LOW_ROLE in guild.member(ALICE).role_ids
    guild.owner_id = APP_ID
    await bot.http.add_role(GUILD_ID, ALICE, HIGH_ROLE)
    assert HIGH_ROLE in guild.member(ALICE).role_ids


@pytest.mark.parametrize("global_", [False, True])
async def test_rate_limit_is_retried_and_succeeds(fake: FakeDiscord, bot: commands.Bot, global_: bool) -> None:
    route = rf"/guilds/{GUILD_ID}/members/{ALICE}/roles/{LOW_ROLE}"
    fake.inject_rate_limit("PUT", route, count=2, retry_after=0.05, global_=global_)
    await bot.http.add_role(GUILD_ID, ALICE, LOW_ROLE)
    assert [c.status for c in fake.calls_matching("PUT", route)] == [429, 429, 204]
    assert fake_guild(fake).member(ALICE).role_ids == {LOW_ROLE}


async def test_unknowns_and_injected_failures(fake: FakeDiscord, bot: commands.Bot) -> None:
    guild = bot.get_guild(GUILD_ID)
    assert guild is not None
    with pytest.raises(discord.NotFound) as missing_member:
        await guild.fetch_member(999)
    assert missing_member.value.code == 10007
    with pytest.raises(discord.NotFound) as missing_role:
        await bot.http.add_role(GUILD_ID, ALICE, 12345)
    assert missing_role.value.code == 10011
    with pytest.raises(discord.NotFound) as missing_guild:
        await bot.fetch_guild(4242)
    assert missing_guild.value.code == 10004
    fake.fail_next("GET", rf"/guilds/{GUILD_ID}/members/{ALICE}", status=503)
    with pytest.raises(discord.DiscordServerError):
        await guild.fetch_member(ALICE)
    assert (await guild.fetch_member(ALICE)).name == "alice"


async def test_out_of_band_member_update_reaches_cache(fake: FakeDiscord, bot: commands.Bot) -> None:
    updates: list[tuple[discord.Member, discord.Member]] = []

    async def on_member_update(before: discord.Member, after: discord.Member) -> None:
        updates.append((before, after))

    bot.add_listener(on_member_update)
    fake_guild(fake).set_member_roles(ALICE, [LOW_ROLE_2])
    await eventually(lambda: cached_role_ids(bot, ALICE) == {LOW_ROLE_2})
    await eventually(lambda: bool(updates))
    assert updates[0][1].id == ALICE
    fake_guild(fake).member(ALICE).role_ids.add(LOW_ROLE)  # a moderator's hand edit is an event too
    await eventually(lambda: cached_role_ids(bot, ALICE) == {LOW_ROLE, LOW_ROLE_2})

    removed = asyncio.ensure_future(bot.wait_for("member_remove", check=lambda m: m.id == BOB))
    await asyncio.sleep(0)
    fake_guild(fake).remove_member(BOB)
    await asyncio.wait_for(removed, timeout=2)
    guild = bot.get_guild(GUILD_ID)
    assert guild is not None and guild.get_member(BOB) is None


async def test_member_added_after_ready_fires_member_join(fake: FakeDiscord, bot: commands.Bot) -> None:
    joined = asyncio.ensure_future(bot.wait_for("member_join", check=lambda m: m.id == CAROL))
    await asyncio.sleep(0)
    fake_guild(fake).add_member(CAROL, username="carol", roles=[LOW_ROLE])
    member = await asyncio.wait_for(joined, timeout=2)
    assert member.name == "carol" and {r.id for r in member.roles} >= {LOW_ROLE}
    guild = bot.get_guild(GUILD_ID)
    assert guild is not None and guild.member_count == 4


async def test_messages_and_member_paging(fake: FakeDiscord, bot: commands.Bot) -> None:
    channel = bot.get_channel(LOG_CHANNEL)
    assert isinstance(channel, discord.TextChannel)
    sent = await channel.send("Alice linked Patreon")
    assert sent.id and fake.messages(LOG_CHANNEL)[0]["content"] == "Alice linked Patreon"
    guild = bot.get_guild(GUILD_ID)
    assert guild is not None
    fetched = [m.id async for m in guild.fetch_members(limit=None)]
    assert sorted(fetched) == sorted([APP_ID, ALICE, BOB])
    pages = fake.calls_matching("GET", rf"/guilds/{GUILD_ID}/members")
    assert pages[0].query["limit"] == "1000" and len(pages) == 1
    roles = await guild.fetch_roles()
    assert {r.id for r in roles} >= {GUILD_ID, LOW_ROLE, HIGH_ROLE, MANAGED_ROLE}


async def test_reconnect_resumes_and_restart_identifies(
    fake: FakeDiscord, point_discord_at: Callable[[str], None], bot: commands.Bot, seen: SeenValues
) -> None:
    fake.request_reconnect()
    await eventually(lambda: fake.resume_count == 1 and fake.connected)
    fake_guild(fake).set_member_roles(ALICE, [LOW_ROLE])
    await eventually(lambda: cached_role_ids(bot, ALICE) == {LOW_ROLE})

    second, task = await start_bot(seen)
    try:
        assert fake.identify_count == 2
        inter = await fake.invoke_slash(GUILD_ID, ALICE, "patreon", ["link"], options={"tier": "silver"})
        await inter.wait_response()
        assert inter.content == "Open the link to connect Patreon."
    finally:
        await stop_bot(second, task)


async def test_member_chunk_requests_are_answered(fake: FakeDiscord, bot: commands.Bot) -> None:
    guild = bot.get_guild(GUILD_ID)
    assert guild is not None
    by_query = await guild.query_members(query="al")
    assert [m.id for m in by_query] == [ALICE]
    by_id = await guild.query_members(user_ids=[BOB, 999])
    assert [m.id for m in by_id] == [BOB]
    everyone = await guild.chunk()
    assert {m.id for m in everyone} == {APP_ID, ALICE, BOB}


async def test_without_members_intent_member_events_are_withheld(
    fake: FakeDiscord, point_discord_at: Callable[[str], None]
) -> None:
    point_discord_at(fake.base_url)
    client = discord.Client(intents=discord.Intents.default(), guild_ready_timeout=0.05)
    joins: list[discord.Member] = []

    async def on_member_join(member: discord.Member) -> None:
        joins.append(member)

    client.event(on_member_join)
    await client.login(TOKEN)
    task = asyncio.create_task(client.connect())
    try:
        await asyncio.wait_for(client.wait_until_ready(), timeout=5)
        guild = client.get_guild(GUILD_ID)
        assert guild is not None and [m.id for m in guild.members] == [APP_ID]
        assert guild.member_count == 3
        fake_guild(fake).add_member(CAROL, username="carol")
        channel = client.get_channel(LOG_CHANNEL)
        assert isinstance(channel, discord.TextChannel)
        marker = asyncio.ensure_future(client.wait_for("message", check=lambda m: m.content == "marker"))
        await channel.send("marker")
        await asyncio.wait_for(marker, timeout=2)  # events arrive in order: a join would be here by now
        assert joins == []
    finally:
        await client.close()
        await asyncio.wait_for(task, timeout=5)
