"""The Link-account panel end to end (issue 14): an admin posts it once, patrons click, the real bot answers.

Every click goes through the fake Discord's `click_button`, which sends only clicks a Discord client can make; the
bot must act for the clicker, in the server of the click, whatever message the button sits on.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest

from bot.accounts.oauth_state import verify_state
from bot.accounts.panel import LINK_ID, STATUS_ID, UNLINK_ID, unlink_answer_id
from fakes.discord import InteractionRecord
from fakes.discord.permissions import SEND_MESSAGES, VIEW_CHANNEL
from fakes.world import PATREON_IDS, SEED, FakeWorld
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin
from tests.e2e.test_trust_servers import EVE, OTHER, OTHER_GOLD, OTHER_LOG, world_with_other_server

GET_ROLES = 740000000000000014
WELCOME = 740000000000000015
OTHER_ROLES = 740000000000000067
NEWCOMER = 750000000000000077
SECOND_NEWCOMER = 750000000000000078


def add_channel(world: FakeWorld, channel_id: int = GET_ROLES, guild_id: int = SEED.guild_id) -> None:
    world.discord.guild(guild_id).add_text_channel(channel_id, name="get-roles")


async def bot_sees_channel(world: FakeWorld, channel_id: int) -> None:
    assert world.bot is not None
    await wait_for(lambda: world.bot is not None and world.bot.get_channel(channel_id) is not None)


async def post_panel(world: FakeWorld, channel_id: int = GET_ROLES, **options: object) -> str:
    await bot_sees_channel(world, channel_id)
    return await admin(world, ["panel"], {"channel": channel_id, **options})


def the_panel(world: FakeWorld, channel_id: int = GET_ROLES) -> dict:
    [message] = world.discord.messages(channel_id)
    return message


def custom_ids(message: dict) -> list[str]:
    return [button.get("custom_id") for row in message["components"] for button in row["components"]]


async def click(world: FakeWorld, user: int, custom_id: str, channel_id: int = GET_ROLES, *,
                message_id: int | None = None, guild_id: int = SEED.guild_id) -> InteractionRecord:
    target = message_id if message_id is not None else int(the_panel(world, channel_id)["id"])
    return await world.discord.click_button(guild_id, user, channel_id, target, custom_id)


async def answer_text(record: InteractionRecord, needle: str = "") -> str:
    """The clicker's ephemeral answer once it holds `needle` (a deferred answer arrives in two steps)."""
    await record.wait_response()
    await wait_for(lambda: bool(record.content) and needle in (record.content or ""))
    assert record.ephemeral, "a click's answer is for the clicker only"
    return record.content or ""


def state_of(world: FakeWorld, url: str):
    token = parse_qs(urlparse(url).query)["state"][0]
    return verify_state(world.config.signing_key, token, world.clock())


# -- posting and updating --------------------------------------------------------------------------------------


async def test_the_panel_is_posted_once_and_a_second_run_edits_the_same_message(world):
    add_channel(world)
    assert "Posted the panel" in await post_panel(world)
    panel = the_panel(world)
    assert custom_ids(panel) == [LINK_ID, STATUS_ID, UNLINK_ID]
    assert "**Gold** (10.00 USD) → " + f"<@&{SEED.gold_role}>" in panel["content"]
    assert "**Bronze** (5.00 USD) → " + f"<@&{SEED.bronze_role}>" in panel["content"]
    assert panel["content"].index("Gold") < panel["content"].index("Bronze"), "most expensive first"

    text = await post_panel(world, title="Patron roles", text="Thanks for supporting the show!")
    assert "Updated the panel" in text and "same message" in text
    edited = the_panel(world)  # still exactly one message, the same one
    assert edited["id"] == panel["id"] and edited["content"].startswith("## Patron roles\nThanks for supporting")
    assert (await world.store.get_panel(SEED.guild_id)).message_id == int(panel["id"])

    await post_panel(world)  # options left out keep the admin's title and text
    assert the_panel(world)["content"].startswith("## Patron roles")

    world.discord.remove_channel_message(GET_ROLES, int(panel["id"]))  # someone deleted it: the next run posts anew
    assert "Posted the panel" in await post_panel(world)
    assert the_panel(world)["id"] != panel["id"]


async def test_the_panel_s_tier_list_follows_map_and_unmap(world):
    add_channel(world)
    await post_panel(world)
    assert "now get" in await admin(world, ["map"], {"tier": SEED.gold_tier, "role": SEED.vip_role})
    await wait_for(lambda: f"<@&{SEED.vip_role}>" in the_panel(world)["content"])
    assert "Removed 1" in await admin(world, ["unmap"], {"tier": SEED.bronze_tier})
    await wait_for(lambda: "Bronze" not in the_panel(world)["content"])
    content = the_panel(world)["content"]
    assert f"<@&{SEED.gold_role}>, <@&{SEED.vip_role}>" in content and len(world.discord.messages(GET_ROLES)) == 1


# -- the buttons -----------------------------------------------------------------------------------------------


async def test_link_account_gives_the_clicker_their_own_button_and_completing_it_grants_the_role(world):
    add_channel(world)
    await post_panel(world)
    record = await click(world, SEED.bob, LINK_ID)
    assert "works only for you" in await answer_text(record)
    [button] = record.link_buttons()
    state = state_of(world, button["url"])
    assert (state.guild_id, state.discord_user_id) == (SEED.guild_id, SEED.bob)  # the clicker, this server
    world.patreon.next_authorizing_user = PATREON_IDS[SEED.bob]
    status, _ = await world.open_in_browser(button["url"], as_user=SEED.bob)
    assert status == 200 and SEED.bronze_role in world.roles_of(SEED.bob)

    linked = await click(world, SEED.bob, LINK_ID)  # a linked member is told, and may sign in again
    assert "already linked (Patreon user `p-bob`)" in await answer_text(linked)


async def test_check_my_roles_answers_like_patreon_status(world):
    add_channel(world)
    await post_panel(world)
    assert "Not linked" in await answer_text(await click(world, SEED.dave, STATUS_ID), "linked")
    await world.link(SEED.alice)
    text = await answer_text(await click(world, SEED.alice, STATUS_ID), "Linked")
    assert "Linked** to Patreon user `p-alice`" in text and "@Gold Patron: held" in text


async def test_unlink_asks_first_and_only_the_clicker_can_answer(world):
    add_channel(world)
    await post_panel(world)
    assert "isn't linked" in await answer_text(await click(world, SEED.dave, UNLINK_ID))
    await world.link(SEED.bob)

    asked = await click(world, SEED.bob, UNLINK_ID)
    assert "Unlink your Patreon account" in await answer_text(asked)
    question = asked.message
    assert question is not None and custom_ids(question) == [
        unlink_answer_id("yes", SEED.bob),
        unlink_answer_id("no", SEED.bob),
    ]
    with pytest.raises(PermissionError, match="ephemeral"):  # nobody else even sees Bob's question
        await click(world, SEED.alice, unlink_answer_id("yes", SEED.bob), message_id=int(question["id"]))
    cancel = await click(world, SEED.bob, unlink_answer_id("no", SEED.bob), message_id=int(question["id"]))
    assert (await cancel.wait_response())["type"] == 7 and "Nothing was changed" in (cancel.content or "")
    assert await world.store.get_link_by_discord(SEED.bob) is not None

    asked = await click(world, SEED.bob, UNLINK_ID)
    await answer_text(asked)
    assert asked.message is not None
    confirm = await click(world, SEED.bob, unlink_answer_id("yes", SEED.bob), message_id=int(asked.message["id"]))
    assert "Unlinked. Roles removed: @Bronze Patron" in await answer_text(confirm, "Unlinked")
    assert await world.store.get_link_by_discord(SEED.bob) is None
    assert SEED.bronze_role not in world.roles_of(SEED.bob) and confirm.message is asked.message


async def test_a_panel_posted_before_a_restart_still_works(world):
    add_channel(world)
    await post_panel(world)
    await world.link(SEED.bob)
    asked = await click(world, SEED.bob, UNLINK_ID)
    await answer_text(asked)
    assert asked.message is not None
    await world.stop_bot()
    await world.start_bot()

    record = await click(world, SEED.alice, LINK_ID)  # the message is the old one; only add_view serves it now
    await answer_text(record)
    assert state_of(world, record.link_buttons()[0]["url"]).discord_user_id == SEED.alice
    assert "Linked" in await answer_text(await click(world, SEED.bob, STATUS_ID), "Linked")
    confirm = await click(world, SEED.bob, unlink_answer_id("yes", SEED.bob), message_id=int(asked.message["id"]))
    assert "Unlinked." in await answer_text(confirm, "Unlinked")  # the confirm from before the restart too


# -- other servers -----------------------------------------------------------------------------------------------


@pytest.fixture
async def two_servers(tmp_path):
    """Both servers are the creator's; the second's admin (Eve) turned the bot on, mapped Gold and posted a panel."""
    world = await world_with_other_server(tmp_path, allowed=(SEED.guild_id, OTHER))
    try:
        world.discord.guild(OTHER).add_member(SEED.alice, username="alice")
        assert "Saved" in await admin(world, ["settings"], {"enabled": True, "log_channel": OTHER_LOG}, EVE, OTHER)
        assert "now get" in await admin(world, ["map"], {"tier": SEED.gold_tier, "role": OTHER_GOLD}, EVE, OTHER)
        add_channel(world, OTHER_ROLES, OTHER)
        await bot_sees_channel(world, OTHER_ROLES)
        assert "Posted" in await admin(world, ["panel"], {"channel": OTHER_ROLES}, EVE, OTHER)
        yield world
    finally:
        await world.close()


async def test_a_click_on_another_server_s_panel_acts_there_for_the_clicker(two_servers):
    world = two_servers
    assert f"<@&{OTHER_GOLD}>" in the_panel(world, OTHER_ROLES)["content"]
    record = await click(world, SEED.alice, LINK_ID, OTHER_ROLES, guild_id=OTHER)
    await answer_text(record)
    state = state_of(world, record.link_buttons()[0]["url"])
    assert (state.guild_id, state.discord_user_id) == (OTHER, SEED.alice)  # Alice, in Eve's server; not Eve
    world.patreon.next_authorizing_user = PATREON_IDS[SEED.alice]
    status, _ = await world.open_in_browser(record.link_buttons()[0]["url"], as_user=SEED.alice)
    assert status == 200 and OTHER_GOLD in set(world.discord.guild(OTHER).member(SEED.alice).role_ids)
    assert EVE not in {link.discord_user_id for link in await world.store.all_links()}

    # The server stops taking part: its old panel links nothing and tells nothing of anyone's Patreon account.
    assert "Saved" in await admin(world, ["settings"], {"enabled": False}, EVE, OTHER)
    refused = await click(world, EVE, LINK_ID, OTHER_ROLES, guild_id=OTHER)
    assert "doesn't use the bot" in await answer_text(refused) and refused.link_buttons() == []
    status_text = await answer_text(await click(world, SEED.alice, STATUS_ID, OTHER_ROLES, guild_id=OTHER), "server")
    assert "doesn't use the bot" in status_text and "p-alice" not in status_text


async def test_a_server_that_is_not_the_creator_s_cannot_post_a_panel(tmp_path):
    world = await world_with_other_server(tmp_path, allowed=(SEED.guild_id,))
    try:
        await bot_sees_channel(world, OTHER_LOG)
        text = await admin(world, ["panel"], {"channel": OTHER_LOG}, EVE, OTHER)
        assert "isn't one of the creator's servers" in text
        assert world.discord.messages(OTHER_LOG) == [] and await world.store.get_panel(OTHER) is None
    finally:
        await world.close()


# -- who may post it, and where ----------------------------------------------------------------------------------


async def test_posting_the_panel_needs_manage_roles(world):
    add_channel(world)
    await bot_sees_channel(world, GET_ROLES)
    with pytest.raises(PermissionError):  # Discord hides the command from him (default permissions)
        await world.discord.invoke_slash(SEED.guild_id, SEED.bob, "patreon-admin", ["panel"], {"channel": GET_ROLES})
    text = await admin(world, ["panel"], {"channel": GET_ROLES}, SEED.bob, bypass_default_permissions=True)
    assert "Manage Roles" in text and world.discord.messages(GET_ROLES) == []


@pytest.mark.parametrize(
    ("denied", "flag", "named"),
    [
        (SEND_MESSAGES, "send_messages", "Send Messages"),
        (VIEW_CHANNEL, "view_channel", "View Channel and Send Messages"),  # without View, Send goes too
    ],
)
async def test_the_bot_s_rights_in_the_channel_are_checked_before_posting(world, denied, flag, named):
    add_channel(world)
    await bot_sees_channel(world, GET_ROLES)
    world.guild.set_channel_overwrite(GET_ROLES, world.guild.bot_role_id, deny=denied)
    assert world.bot is not None
    cached = world.bot.get_channel(GET_ROLES)
    await wait_for(lambda: not getattr(cached.permissions_for(cached.guild.me), flag))  # the bot's cache knows
    text = await post_panel(world)
    assert f"I can't post in <#{GET_ROLES}>: I need {named} there" in text and "nothing was posted" in text
    assert world.discord.messages(GET_ROLES) == [] and await world.store.get_panel(SEED.guild_id) is None
    assert world.discord.calls_matching("POST", rf"/channels/{GET_ROLES}/messages$") == []  # not even tried


# -- new members -------------------------------------------------------------------------------------------------


def invitations(world: FakeWorld, user_id: int) -> list[dict]:
    return [m for m in world.discord.messages(WELCOME) if f"<@{user_id}>" in m["content"]]


async def test_welcome_link_invites_each_new_member_once(world):
    world.guild.add_text_channel(WELCOME, name="welcome")
    await bot_sees_channel(world, WELCOME)
    world.guild.add_member(NEWCOMER, username="newcomer")  # off by default: no invitation
    text = await admin(world, ["settings"], {"welcome_link": True, "welcome_channel": WELCOME})
    assert "Invite new members to link (in the welcome channel): on" in text
    world.guild.add_member(SECOND_NEWCOMER, username="second")
    await wait_for(lambda: len(invitations(world, SECOND_NEWCOMER)) == 1)
    assert invitations(world, NEWCOMER) == []  # it joined before the setting; events arrive in order

    [invitation] = invitations(world, SECOND_NEWCOMER)
    assert custom_ids(invitation) == [LINK_ID]
    [sent] = world.discord.calls_matching("POST", rf"/channels/{WELCOME}/messages$")
    assert [int(user) for user in sent.json["allowed_mentions"]["users"]] == [SECOND_NEWCOMER]  # only they're pinged
    world.guild.remove_member(SECOND_NEWCOMER)
    world.guild.add_member(SECOND_NEWCOMER, username="second")  # a rejoin is not invited again
    world.guild.remove_member(NEWCOMER)
    world.guild.add_member(NEWCOMER, username="newcomer")  # the first join the bot sees with the setting on
    await wait_for(lambda: len(invitations(world, NEWCOMER)) == 1)
    assert len(invitations(world, SECOND_NEWCOMER)) == 1
    assert await world.store.claim_link_invitation(SEED.guild_id, SECOND_NEWCOMER) is False

    record = await click(world, NEWCOMER, LINK_ID, WELCOME, message_id=int(invitations(world, NEWCOMER)[0]["id"]))
    await answer_text(record)
    assert state_of(world, record.link_buttons()[0]["url"]).discord_user_id == NEWCOMER
