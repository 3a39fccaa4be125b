"""Clicking buttons through the fake Discord with a real discord.py Client and a persistent view.

Why: the Link-account panel must keep working on a message posted before a restart, answer the person who clicked
in the server they clicked in, and meet Discord's callback rules (types per interaction kind, one answer within
3 s, the token good for 15 minutes). These tests hold the fake to those rules; test_fake_components.py holds
the message side.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import discord
import pytest
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

from fakes.discord import FakeDiscord, InteractionRecord
from fakes.discord.permissions import SEND_MESSAGES, VIEW_CHANNEL
from tests.e2e.polling import wait_for

TOKEN = "fake-bot-token"
GUILD, OTHER_GUILD = 100000000000000001, 100000000000000002
PANEL, SECRET, OTHER_PANEL = 400000000000000001, 400000000000000002, 400000000000000003
ALICE, BOB, MALLORY = 200000000000000001, 200000000000000002, 200000000000000003


class Seen:
    """What the views' callbacks got, and a gate the slow button waits on."""

    def __init__(self) -> None:
        self.clicks: list[tuple[str, str, int, int | None, int | None]] = []
        self.errors: list[discord.HTTPException] = []
        self.gate = asyncio.Event()


class Panel(discord.ui.View):
    """A persistent view: no timeout, fixed custom_ids, so any client started later can serve old messages."""

    def __init__(self, seen: Seen, tag: str) -> None:
        super().__init__(timeout=None)
        self.seen, self.tag = seen, tag

    def _note(self, name: str, interaction: discord.Interaction) -> None:
        message_id = interaction.message.id if interaction.message else None
        self.seen.clicks.append((self.tag, name, interaction.user.id, interaction.guild_id, message_id))

    @discord.ui.button(label="Link account", style=discord.ButtonStyle.primary, custom_id="panel:link")
    async def link(self, interaction: discord.Interaction, _: discord.ui.Button[Panel]) -> None:
        self._note("link", interaction)
        again = discord.ui.View(timeout=None)
        again.add_item(discord.ui.Button(label="Open", custom_id="panel:open"))
        text = f"{self.tag}: link for {interaction.user.id}"
        await interaction.response.send_message(text, view=again, ephemeral=True)

    @discord.ui.button(label="Check my roles", custom_id="panel:status")
    async def status(self, interaction: discord.Interaction, _: discord.ui.Button[Panel]) -> None:
        self._note("status", interaction)
        await interaction.response.defer()  # a component's plain defer is type 6
        await interaction.edit_original_response(content="Panel (checked)")

    @discord.ui.button(label="Unlink", style=discord.ButtonStyle.danger, custom_id="panel:unlink")
    async def unlink(self, interaction: discord.Interaction, _: discord.ui.Button[Panel]) -> None:
        self._note("unlink", interaction)
        await interaction.response.edit_message(content="Really unlink?", view=None)  # type 7

    @discord.ui.button(label="Think", custom_id="panel:think")
    async def think(self, interaction: discord.Interaction, _: discord.ui.Button[Panel]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)  # type 5
        await interaction.edit_original_response(content="thought")

    @discord.ui.button(label="Slow", custom_id="panel:slow")
    async def slow(self, interaction: discord.Interaction, _: discord.ui.Button[Panel]) -> None:
        await self.seen.gate.wait()
        try:
            await interaction.response.send_message("late", ephemeral=True)
        except discord.HTTPException as exc:
            self.seen.errors.append(exc)


@pytest.fixture
def point_discord_at() -> Iterator[Callable[[str], None]]:
    old_base, old_gateway = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY

    def point(base_url: str) -> None:
        Route.BASE = f"{base_url}/api/v10"
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(base_url.replace("http://", "ws://", 1) + "/gateway")

    yield point
    Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = old_base, old_gateway


@pytest.fixture
async def fake(point_discord_at: Callable[[str], None]) -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord(bot_token=TOKEN)
    await fake.start()
    point_discord_at(fake.base_url)
    guild = fake.add_guild(GUILD)
    guild.add_text_channel(PANEL, "get-roles")
    guild.add_text_channel(SECRET, "staff")
    guild.add_member(ALICE, "alice")
    guild.add_member(BOB, "bob")
    other = fake.add_guild(OTHER_GUILD, name="Other")
    other.add_text_channel(OTHER_PANEL, "get-roles")
    other.add_member(ALICE, "alice")
    other.add_member(MALLORY, "mallory")
    try:
        yield fake
    finally:
        await fake.close()


class Running:
    def __init__(self, client: discord.Client, task: asyncio.Task[None]) -> None:
        self.client, self.task = client, task

    async def stop(self) -> None:
        await self.client.close()
        await asyncio.wait_for(self.task, timeout=5)


async def start_client(seen: Seen, tag: str) -> Running:
    """A fresh client process-equivalent: registers the persistent view at start-up, as a bot must."""
    client = discord.Client(intents=discord.Intents.default(), guild_ready_timeout=0.05)

    async def setup_hook() -> None:
        client.add_view(Panel(seen, tag))

    client.setup_hook = setup_hook  # type: ignore[method-assign]
    await client.login(TOKEN)
    task = asyncio.create_task(client.connect())
    await asyncio.wait_for(client.wait_until_ready(), timeout=5)
    return Running(client, task)


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
async def bot(fake: FakeDiscord, seen: Seen) -> AsyncIterator[Running]:
    running = await start_client(seen, "first")
    try:
        yield running
    finally:
        await running.stop()


async def post_panel(running: Running, seen: Seen, channel_id: int = PANEL) -> discord.Message:
    channel = running.client.get_channel(channel_id)
    assert isinstance(channel, discord.TextChannel)
    return await channel.send("Panel", view=Panel(seen, "sender"))


async def send_silent(running: Running, item: discord.ui.Button[discord.ui.View]) -> discord.Message:
    """A message whose only button has discord.py's do-nothing callback, so raw calls can answer its clicks."""
    view = discord.ui.View(timeout=None)
    view.add_item(item)
    channel = running.client.get_channel(PANEL)
    assert isinstance(channel, discord.TextChannel)
    return await channel.send("quiet", view=view)


async def raw_callback(fake: FakeDiscord, record: InteractionRecord, body: dict[str, Any]) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http:
        url = f"{fake.base_url}/api/v10/interactions/{record.id}/{record.token}/callback?with_response=1"
        async with http.post(url, json=body) as answer:
            text = await answer.text()
            return answer.status, (await answer.json(content_type=None)) if text else None


async def raw_webhook(fake: FakeDiscord, method: str, record: InteractionRecord, tail: str, body: Any) -> int:
    async with aiohttp.ClientSession() as http:
        url = f"{fake.base_url}/api/v10/webhooks/{fake.application_id}/{record.token}{tail}"
        async with http.request(method, url, json=body) as answer:
            return answer.status


# -- the click ---------------------------------------------------------------------------------------------


async def test_a_click_reaches_the_persistent_view_with_the_message_and_the_clicker(fake, bot, seen) -> None:
    panel = await post_panel(bot, seen)
    record = await fake.click_button(GUILD, ALICE, PANEL, panel.id, "panel:link")
    body = await record.wait_response()
    assert body["type"] == 4 and record.ephemeral and record.content == f"sender: link for {ALICE}"
    assert seen.clicks == [("sender", "link", ALICE, GUILD, panel.id)]  # the view bound to the message wins
    payload = record.payload
    assert payload["type"] == 3 and payload["data"] == {"custom_id": "panel:link", "component_type": 2}
    assert payload["message"]["id"] == str(panel.id) and payload["message"]["components"][0]["type"] == 1
    assert (payload["guild_id"], payload["channel_id"]) == (str(GUILD), str(PANEL))
    assert payload["member"]["user"]["id"] == str(ALICE) and payload["member"]["permissions"].isdigit()
    assert int(payload["app_permissions"]) & VIEW_CHANNEL and payload["id"] == str(record.id) and record.token


async def test_clicks_no_discord_client_can_make_are_refused(fake, bot, seen) -> None:
    panel = await post_panel(bot, seen)
    with pytest.raises(LookupError, match="Discord never sends it"):
        await fake.click_button(GUILD, ALICE, PANEL, panel.id, "panel:forged")
    with pytest.raises(LookupError):  # the panel's channel is not in the other server
        await fake.click_button(OTHER_GUILD, ALICE, PANEL, panel.id, "panel:link")
    with pytest.raises(LookupError):  # Mallory is only in the other server
        await fake.click_button(GUILD, MALLORY, PANEL, panel.id, "panel:link")
    with pytest.raises(LookupError):  # the message is not in that channel
        await fake.click_button(GUILD, ALICE, SECRET, panel.id, "panel:link")
    fake.guild(GUILD).set_channel_overwrite(PANEL, BOB, deny=VIEW_CHANNEL)
    with pytest.raises(PermissionError):
        await fake.click_button(GUILD, BOB, PANEL, panel.id, "panel:link")
    off = await send_silent(bot, discord.ui.Button(label="Off", custom_id="raw:off", disabled=True))
    with pytest.raises(PermissionError, match="disabled"):
        await fake.click_button(GUILD, ALICE, PANEL, off.id, "raw:off")
    fake.remove_channel_message(PANEL, panel.id)
    with pytest.raises(LookupError):
        await fake.click_button(GUILD, ALICE, PANEL, panel.id, "panel:link")
    assert seen.clicks == [] and fake.interactions == []


async def test_an_ephemeral_answer_s_button_is_only_for_its_recipient(fake, bot, seen) -> None:
    panel = await post_panel(bot, seen)
    record = await fake.click_button(GUILD, ALICE, PANEL, panel.id, "panel:link")
    await record.wait_response()
    assert record.message is not None
    answer_id = int(record.message["id"])
    with pytest.raises(PermissionError, match="ephemeral"):
        await fake.click_button(GUILD, BOB, PANEL, answer_id, "panel:open")
    mine = await fake.click_button(GUILD, ALICE, PANEL, answer_id, "panel:open")
    assert mine.payload["message"]["flags"] & 64


async def test_the_same_panel_in_another_server_acts_there_for_the_clicker(fake, bot, seen) -> None:
    other_panel = await post_panel(bot, seen, OTHER_PANEL)
    record = await fake.click_button(OTHER_GUILD, ALICE, OTHER_PANEL, other_panel.id, "panel:link")
    await record.wait_response()
    assert seen.clicks == [("sender", "link", ALICE, OTHER_GUILD, other_panel.id)]
    assert record.payload["guild_id"] == str(OTHER_GUILD)


async def test_channel_overwrites_reach_discord_py_and_the_click_payload(fake, bot, seen) -> None:
    panel = await post_panel(bot, seen)
    guild = fake.guild(GUILD)
    guild.set_channel_overwrite(PANEL, guild.bot_role_id, deny=SEND_MESSAGES)
    guild.set_channel_overwrite(PANEL, BOB, deny=SEND_MESSAGES)
    cached = bot.client.get_guild(GUILD)
    assert cached is not None
    channel = cached.get_channel(PANEL)
    assert isinstance(channel, discord.TextChannel)
    await wait_for(lambda: not channel.permissions_for(cached.me).send_messages)  # the bot can check first
    with pytest.raises(discord.Forbidden) as refused:
        await channel.send("Panel")
    assert refused.value.code == 50013 and len(fake.messages(PANEL)) == 1
    record = await fake.click_button(GUILD, BOB, PANEL, panel.id, "panel:link")
    member_perms, app_perms = int(record.payload["member"]["permissions"]), int(record.payload["app_permissions"])
    assert member_perms & VIEW_CHANNEL and not member_perms & SEND_MESSAGES
    assert app_perms & VIEW_CHANNEL and not app_perms & SEND_MESSAGES
    await record.wait_response()  # an interaction answer needs no Send Messages


async def test_a_click_s_token_answers_only_its_own_interaction(fake, bot, seen) -> None:
    silent = await send_silent(bot, discord.ui.Button(label="Nothing", custom_id="raw:noop"))
    first = await fake.click_button(GUILD, ALICE, PANEL, silent.id, "raw:noop")
    second = await fake.click_button(GUILD, BOB, PANEL, silent.id, "raw:noop")
    forged = InteractionRecord(second.id, first.token, first.payload)  # Alice's token, Bob's interaction id
    status, body = await raw_callback(fake, forged, {"type": 4, "data": {"content": "as Bob"}})
    assert (status, body["code"]) == (404, 10062)
    assert first.responses == [] and second.responses == []


# -- the answer types --------------------------------------------------------------------------------------


async def test_a_deferred_update_then_an_edit_changes_the_clicked_message(fake, bot, seen) -> None:
    panel = await post_panel(bot, seen)
    edited = asyncio.ensure_future(bot.client.wait_for("raw_message_edit", check=lambda e: e.message_id == panel.id))
    record = await fake.click_button(GUILD, BOB, PANEL, panel.id, "panel:status")
    await record.wait_responses(2)
    assert record.response_kinds == ["callback", "edit_original"] and record.callback_type == 6
    [stored] = fake.messages(PANEL)
    assert stored["content"] == "Panel (checked)" and stored["components"]  # the buttons stay
    await asyncio.wait_for(edited, timeout=5)  # the edit reached the bot as MESSAGE_UPDATE


async def test_update_message_edits_the_clicked_message_at_once(fake, bot, seen) -> None:
    panel = await post_panel(bot, seen)
    record = await fake.click_button(GUILD, ALICE, PANEL, panel.id, "panel:unlink")
    body = await record.wait_response()
    assert body["type"] == 7
    [stored] = fake.messages(PANEL)
    assert stored["content"] == "Really unlink?" and stored["components"] == []
    assert record.message is stored


async def test_a_thinking_defer_answers_with_a_new_message(fake, bot, seen) -> None:
    panel = await post_panel(bot, seen)
    record = await fake.click_button(GUILD, ALICE, PANEL, panel.id, "panel:think")
    await record.wait_responses(2)
    assert record.callback_type == 5 and record.ephemeral and record.content == "thought"
    assert fake.messages(PANEL)[0]["content"] == "Panel"


async def test_callback_types_follow_the_interaction_kind(fake, bot, seen) -> None:
    fake.commands.overwrite(None, [{"name": "ping", "description": "ping"}])
    slash = await fake.invoke_slash(GUILD, ALICE, "ping")  # this client has no command tree: nobody answers
    for wrong in (6, 7, 8):
        status, body = await raw_callback(fake, slash, {"type": wrong, "data": {"content": "x"}})
        assert (status, body["code"], list(body["errors"])) == (400, 50035, ["type"])
    assert (await raw_callback(fake, slash, {"type": 4, "data": {"content": "pong"}}))[0] == 200  # nothing stuck
    status, body = await raw_callback(fake, slash, {"type": 4, "data": {"content": "again"}})
    assert (status, body["code"]) == (400, 40060)

    silent = await send_silent(bot, discord.ui.Button(label="Nothing", custom_id="raw:noop"))
    click = await fake.click_button(GUILD, ALICE, PANEL, silent.id, "raw:noop")  # the bot's item doesn't answer
    assert (await raw_callback(fake, click, {"type": 8, "data": {"choices": []}}))[0] == 400
    too_long = {"custom_id": "m", "title": "t" * 46, "components": [{"type": 1, "components": []}]}
    status, body = await raw_callback(fake, click, {"type": 9, "data": too_long})
    assert (status, body["errors"]["data"]["title"]["_errors"][0]["code"]) == (400, "BASE_TYPE_MAX_LENGTH")
    bad_row = [{"type": 1, "components": [{"type": 2, "style": 1, "label": "x", "custom_id": "y" * 101}]}]
    status, body = await raw_callback(fake, click, {"type": 7, "data": {"components": bad_row}})
    assert "data" in body["errors"] and fake.messages(PANEL)[0]["content"] == "quiet"
    modal = {"custom_id": "m", "title": "Confirm", "components": [{"type": 1, "components": []}]}
    assert (await raw_callback(fake, click, {"type": 9, "data": modal}))[0] == 200
    assert click.modal == modal and click.callback_type == 9


# -- the deadline and the token ------------------------------------------------------------------------------


async def test_an_answer_after_three_seconds_is_unknown_interaction(fake, bot, seen) -> None:
    panel = await post_panel(bot, seen)
    record = await fake.click_button(GUILD, ALICE, PANEL, panel.id, "panel:slow")
    record.age_by(3.1)
    seen.gate.set()
    await wait_for(lambda: bool(seen.errors))
    assert isinstance(seen.errors[0], discord.NotFound) and seen.errors[0].code == 10062
    assert record.responses == []


async def test_the_token_edits_and_follows_up_for_fifteen_minutes(fake, bot, seen) -> None:
    panel = await post_panel(bot, seen)
    record = await fake.click_button(GUILD, ALICE, PANEL, panel.id, "panel:status")
    await record.wait_responses(2)
    record.age_by(14 * 60)
    assert await raw_webhook(fake, "PATCH", record, "/messages/@original", {"content": "Panel (14 min)"}) == 200
    assert await raw_webhook(fake, "POST", record, "?wait=1", {"content": "later", "flags": 64}) == 200
    assert fake.messages(PANEL)[0]["content"] == "Panel (14 min)"
    record.age_by(61)
    assert await raw_webhook(fake, "PATCH", record, "/messages/@original", {"content": "too late"}) == 401
    assert fake.messages(PANEL)[0]["content"] == "Panel (14 min)"


# -- restarts ------------------------------------------------------------------------------------------------


async def test_a_panel_keeps_working_after_the_client_restarts(fake, seen) -> None:
    first = await start_client(seen, "first")
    panel = await post_panel(first, seen)
    before = await fake.click_button(GUILD, ALICE, PANEL, panel.id, "panel:link")
    await before.wait_response()
    await first.stop()

    second = await start_client(seen, "second")
    try:
        assert fake.identify_count == 2
        after = await fake.click_button(GUILD, BOB, PANEL, panel.id, "panel:link")
        await after.wait_response()
        assert after.ephemeral and after.content == f"second: link for {BOB}"
        # before: the view bound to the message when it was sent; after: only the one add_view registered
        assert [c[:3] for c in seen.clicks] == [("sender", "link", ALICE), ("second", "link", BOB)]
    finally:
        await second.stop()
