"""The fake Discord's message components, against raw HTTP and the real discord.py: what Discord stores and refuses.

Why: the Link-account panel (issue 14) lives on buttons. Its tests can only be trusted if the fake refuses what
Discord refuses (the 50035 form errors, 50005, 50001/50013 in a channel the bot may not post in) and sends clicks
only where a person could click. The clicks, the deadline and the persistent view: test_fake_component_clicks.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from fakes.discord import FakeDiscord
from fakes.discord.permissions import ADMINISTRATOR, SEND_MESSAGES, VIEW_CHANNEL, apply_overwrites

TOKEN = "fake-bot-token"
GUILD, OTHER_GUILD = 100000000000000001, 100000000000000002
PANEL, SECRET = 400000000000000001, 400000000000000002
ALICE, BOB = 200000000000000001, 200000000000000002
HELPER_ROLE = 300000000000000001


def button(custom_id: str | None = "b", *, style: int = 1, **extra: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"type": 2, "style": style, "label": "Click", **extra}
    if custom_id is not None:
        found["custom_id"] = custom_id
    return found


def row(*buttons: dict[str, Any]) -> dict[str, Any]:
    return {"type": 1, "components": list(buttons)}


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord(bot_token=TOKEN)
    await fake.start()
    guild = fake.add_guild(GUILD)
    guild.add_role(HELPER_ROLE, "Helper", position=3)
    guild.add_text_channel(PANEL, "get-roles")
    guild.add_text_channel(SECRET, "staff")
    guild.add_member(ALICE, "alice")
    guild.add_member(BOB, "bob", roles=[HELPER_ROLE])
    try:
        yield fake
    finally:
        await fake.close()


@pytest.fixture
async def rest(fake: FakeDiscord) -> AsyncIterator[Any]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bot {TOKEN}"}) as http:

        async def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
            async with http.request(method, f"{fake.base_url}/api/v10{path}", json=body) as answer:
                text = await answer.text()
                return answer.status, (await answer.json(content_type=None)) if text else None

        yield call


# -- what Discord refuses in a message's components ------------------------------------------------------------

CUSTOM_ID_100 = "x" * 100
REFUSALS = {
    "custom_id over 100": (
        [row(button("x" * 101))],
        {"components": {"0": {"components": {"0": {"custom_id": {"_errors": [
            {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 100 or fewer in length."}]}}}}}},
    ),
    "six buttons in a row": (
        [row(*(button(f"b{i}") for i in range(6)))],
        {"components": {"0": {"components": {"_errors": [
            {"code": "BASE_TYPE_BAD_LENGTH", "message": "Must be between 1 and 5 in length."}]}}}},
    ),
    "six rows": (
        [row(button(f"b{i}")) for i in range(6)],
        {"components": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 5 or fewer in length."}]}},
    ),
    "link button with a custom_id": (
        [row(button("b", style=5, url="https://example.com"))],
        {"components": {"0": {"components": {"0": {"_errors": [{
            "code": "BUTTON_COMPONENT_CUSTOM_ID_URL_MUTUALLY_EXCLUSIVE",
            "message": "A custom id and url cannot both be specified"}]}}}}},
    ),
    "button without a custom_id": (
        [row(button(None))],
        {"components": {"0": {"components": {"0": {"custom_id": {"_errors": [
            {"code": "BUTTON_COMPONENT_CUSTOM_ID_REQUIRED", "message": "A custom id is required"}]}}}}}},
    ),
    "duplicate custom_id across rows": (
        [row(button("same")), row(button("other"), button("same"))],
        {"components": {"1": {"components": {"1": {"custom_id": {"_errors": [
            {"code": "COMPONENT_CUSTOM_ID_DUPLICATED", "message": "Component custom id cannot be duplicated"}]}}}}}},
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_posting_refused_components_is_a_form_error_and_posts_nothing(fake, rest, case: str) -> None:
    components, errors = REFUSALS[case]
    body_sent = {"content": "Get your roles", "components": components}
    status, body = await rest("POST", f"/channels/{PANEL}/messages", body_sent)
    assert (status, body) == (400, {"code": 50035, "message": "Invalid Form Body", "errors": errors})
    assert fake.messages(PANEL) == []


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_editing_to_refused_components_changes_nothing(fake, rest, case: str) -> None:
    panel = {"content": "Panel", "components": [row(button())]}
    status, posted = await rest("POST", f"/channels/{PANEL}/messages", panel)
    assert status == 200
    components, errors = REFUSALS[case]
    status, body = await rest("PATCH", f"/channels/{PANEL}/messages/{posted['id']}", {"components": components})
    assert (status, body["errors"]) == (400, errors)
    assert fake.messages(PANEL)[0]["components"] == posted["components"]


async def test_valid_components_are_stored_with_discord_s_ids_and_link_buttons(fake, rest) -> None:
    components = [
        row(button(CUSTOM_ID_100), button("unlink", style=4, emoji={"name": "✖"})),
        row(button(None, style=5, url="https://example.com/help", label="Help")),
    ]
    status, message = await rest("POST", f"/channels/{PANEL}/messages", {"content": "Panel", "components": components})
    assert status == 200
    [stored] = fake.messages(PANEL)
    assert stored == message
    first, second = message["components"]
    assert [c["id"] for c in (first, *first["components"], second, *second["components"])] == [1, 2, 3, 4, 5]
    assert first["components"][0]["custom_id"] == CUSTOM_ID_100
    assert first["components"][1]["emoji"] == {"name": "✖"} and first["components"][1]["style"] == 4
    assert second["components"][0]["url"] == "https://example.com/help" and "custom_id" not in second["components"][0]


async def test_the_same_custom_id_in_two_messages_is_fine(fake, rest) -> None:
    for _ in range(2):
        status, _ = await rest("POST", f"/channels/{PANEL}/messages", {"components": [row(button("panel:link"))]})
        assert status == 200
    assert len(fake.messages(PANEL)) == 2


# -- editing and deleting --------------------------------------------------------------------------------------


async def test_the_bot_edits_its_own_message_and_not_someone_elses(fake, rest) -> None:
    _, mine = await rest("POST", f"/channels/{PANEL}/messages", {"content": "v1", "components": [row(button("a"))]})
    status, edited = await rest("PATCH", f"/channels/{PANEL}/messages/{mine['id']}", {"content": "v2"})
    assert status == 200 and edited["content"] == "v2" and edited["edited_timestamp"] is not None
    assert edited["components"] == mine["components"]  # an edit without components keeps them
    status, cleared = await rest("PATCH", f"/channels/{PANEL}/messages/{mine['id']}", {"components": []})
    assert status == 200 and cleared["components"] == []

    theirs = fake.post_as_user(PANEL, ALICE, "hello")
    status, body = await rest("PATCH", f"/channels/{PANEL}/messages/{theirs['id']}", {"content": "pwned"})
    assert (status, body) == (403, {"code": 50005, "message": "Cannot edit a message authored by another user"})
    assert fake.messages(PANEL)[-1]["content"] == "hello"
    status, body = await rest("DELETE", f"/channels/{PANEL}/messages/{theirs['id']}")
    assert (status, body["code"]) == (403, 50013)  # deleting others' messages needs Manage Messages


async def test_a_message_is_edited_only_in_its_own_channel_and_until_it_is_deleted(fake, rest) -> None:
    _, mine = await rest("POST", f"/channels/{PANEL}/messages", {"content": "v1"})
    status, body = await rest("PATCH", f"/channels/{SECRET}/messages/{mine['id']}", {"content": "moved"})
    assert (status, body["code"]) == (404, 10008)
    status, body = await rest("PATCH", f"/channels/{PANEL}/messages/{mine['id']}", {"content": "", "embeds": []})
    assert (status, body["code"]) == (400, 50006)
    fake.remove_channel_message(PANEL, int(mine["id"]))
    status, body = await rest("PATCH", f"/channels/{PANEL}/messages/{mine['id']}", {"content": "v2"})
    assert (status, body["code"]) == (404, 10008)
    _, again = await rest("POST", f"/channels/{PANEL}/messages", {"content": "v1"})
    assert (await rest("DELETE", f"/channels/{PANEL}/messages/{again['id']}"))[0] == 204
    assert fake.messages(PANEL) == []


# -- the bot's rights in one channel ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("deny", "status", "code"), [(SEND_MESSAGES, 403, 50013), (VIEW_CHANNEL, 403, 50001)], ids=["send", "view"]
)
async def test_a_channel_overwrite_stops_the_bot_posting_there_only(fake, rest, deny, status, code) -> None:
    guild = fake.guild(GUILD)
    guild.set_channel_overwrite(PANEL, guild.bot_role_id, deny=deny)
    answer = await rest("POST", f"/channels/{PANEL}/messages", {"content": "Panel", "components": [row(button())]})
    assert (answer[0], answer[1]["code"]) == (status, code)
    assert fake.messages(PANEL) == []
    assert (await rest("POST", f"/channels/{SECRET}/messages", {"content": "elsewhere"}))[0] == 200
    guild.set_channel_overwrite(PANEL, guild.bot_role_id)  # removed again
    assert (await rest("POST", f"/channels/{PANEL}/messages", {"content": "Panel"}))[0] == 200


async def test_an_everyone_deny_is_lifted_by_an_allow_for_the_bot_and_the_channel_payload_says_so(fake, rest) -> None:
    guild = fake.guild(GUILD)
    guild.set_channel_overwrite(PANEL, GUILD, deny=SEND_MESSAGES)
    assert (await rest("POST", f"/channels/{PANEL}/messages", {"content": "x"}))[0] == 403
    guild.set_channel_overwrite(PANEL, guild.bot_user_id, allow=SEND_MESSAGES)
    assert (await rest("POST", f"/channels/{PANEL}/messages", {"content": "x"}))[0] == 200
    _, channel = await rest("GET", f"/channels/{PANEL}")
    assert {(o["id"], o["type"], o["allow"], o["deny"]) for o in channel["permission_overwrites"]} == {
        (str(GUILD), 0, "0", str(SEND_MESSAGES)),
        (str(guild.bot_user_id), 1, str(SEND_MESSAGES), "0"),
    }


def test_overwrite_order_follows_discord() -> None:
    base = VIEW_CHANNEL | SEND_MESSAGES
    everyone_deny = (0, SEND_MESSAGES)
    assert apply_overwrites(base, everyone=everyone_deny, roles=[], member=None) == VIEW_CHANNEL
    assert apply_overwrites(base, everyone=everyone_deny, roles=[(SEND_MESSAGES, 0)], member=None) == base
    # among roles an allow beats a deny; the member's own overwrite beats every role
    assert apply_overwrites(base, everyone=None, roles=[(0, SEND_MESSAGES), (SEND_MESSAGES, 0)], member=None) == base
    assert apply_overwrites(base, everyone=None, roles=[(SEND_MESSAGES, 0)], member=(0, SEND_MESSAGES)) == VIEW_CHANNEL
    assert apply_overwrites(base, everyone=(0, VIEW_CHANNEL), roles=[], member=None) == 0  # unseen: nothing at all
    assert apply_overwrites(ADMINISTRATOR, everyone=(0, VIEW_CHANNEL), roles=[], member=(0, VIEW_CHANNEL)) != 0
