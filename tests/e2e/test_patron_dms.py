"""Opt-in DMs end to end (issue 12, item 3): the real bot, the fake Discord's DM channels (50007 included), the fake
Patreon's webhooks and refreshes.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from fakes.world import SEED, FakeWorld
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin
from tests.e2e.test_trust_servers import EVE, OTHER, world_with_other_server

DM_SENDS = r"/channels/\d+/messages$"
DM_OPENS = r"/users/@me/channels$"


async def turn_on(world: FakeWorld, **switches: bool) -> None:
    await admin(world, ["settings"], dict(switches))


def dm_calls(world: FakeWorld) -> list:
    dm_ids = set(world.discord.dm_channels.channels)
    return [call for call in world.discord.calls_matching("POST", DM_SENDS) if int(call.path.split("/")[2]) in dm_ids]


async def dm_states(world: FakeWorld, user_id: int) -> list[tuple[str, str]]:
    return [(kind, state) for _guild, _user, kind, state in await world.store.dm_states(user_id)]


async def states_are(world: FakeWorld, user_id: int, expected: list[tuple[str, str]]) -> bool:
    return await dm_states(world, user_id) == expected


async def test_no_dm_is_sent_unless_the_server_turned_it_on(world):
    await world.link(SEED.alice)
    await world.settle()
    assert world.discord.calls_matching("POST", DM_OPENS) == []
    assert await world.store.dm_states() == []


async def test_a_welcome_dm_after_linking_names_the_roles_and_pings_no_one(world):
    await turn_on(world, dm_welcome=True)
    await world.link(SEED.alice)

    await wait_for(lambda: world.discord.dm_channels.messages_to(SEED.alice))
    (message,) = world.discord.dm_channels.messages_to(SEED.alice)
    assert "Thanks for linking your Patreon in **Creator's Server**" in message["content"]
    assert "Gold Patron" in message["content"]
    (call,) = dm_calls(world)
    assert call.json["allowed_mentions"] == {"parse": []}, "the DM can mention nobody"
    assert call.json["nonce"].startswith("dm-") and call.json["enforce_nonce"] is True
    await wait_for(lambda: states_are(world, SEED.alice, [("welcome", "sent")]))


async def test_a_declined_payment_dm_says_until_when_the_roles_are_kept_and_comes_once(world):
    await turn_on(world, dm_declined=True)
    await world.link(SEED.bob)
    charged = datetime.now(UTC) - timedelta(days=1)
    world.patreon.set_membership(
        "p-bob",
        patron_status="declined_patron",
        tier_ids=[SEED.bronze_tier],
        last_charge_status="Declined",
        last_charge_date=charged,
    )
    await world.send_webhook("members:pledge:update", "p-bob")
    await world.settle()
    await wait_for(lambda: world.discord.dm_channels.messages_to(SEED.bob))

    (message,) = world.discord.dm_channels.messages_to(SEED.bob)
    until = (charged + timedelta(days=7)).strftime("%Y-%m-%d")
    assert "your last payment was declined" in message["content"]
    assert f"kept until **{until}** (UTC)" in message["content"]
    assert SEED.bronze_role in world.roles_of(SEED.bob), "the roles are kept meanwhile"

    await world.send_webhook("members:pledge:update", "p-bob")  # Patreon delivers again
    await world.refresh()
    await world.settle()
    assert len(world.discord.dm_channels.messages_to(SEED.bob)) == 1, "one declined charge, one DM"


async def test_a_decline_found_by_the_refresh_alone_gets_its_dm(world):
    """No webhook came (missed, or Patreon paused it): the refresh sees the declined charge; the roles are kept, so
    no role job runs, and the refresh's own hook queues the DM."""
    await turn_on(world, dm_declined=True)
    await world.link(SEED.bob)
    world.patreon.set_membership(
        "p-bob", patron_status="declined_patron", tier_ids=[SEED.bronze_tier], last_charge_status="Declined"
    )
    await world.refresh()
    await wait_for(lambda: world.discord.dm_channels.messages_to(SEED.bob))
    assert "your last payment was declined" in world.discord.dm_channels.messages_to(SEED.bob)[0]["content"]
    await world.refresh()
    await world.settle()
    assert len(world.discord.dm_channels.messages_to(SEED.bob)) == 1


async def test_a_removal_dm_says_why(world):
    await turn_on(world, dm_removed=True)
    await world.link(SEED.bob)
    world.patreon.set_membership(
        "p-bob",
        patron_status="former_patron",
        tier_ids=[],
        last_charge_status="Paid",
        last_charge_date=datetime.now(UTC) - timedelta(days=60),
        next_charge_date=None,
    )
    await world.refresh()
    await world.settle()
    await wait_for(lambda: world.discord.dm_channels.messages_to(SEED.bob))

    assert SEED.bronze_role not in world.roles_of(SEED.bob)
    (message,) = world.discord.dm_channels.messages_to(SEED.bob)
    removed = "Your Patreon roles in **Creator's Server** were removed (Bronze Patron) because: Former patron"
    assert removed in message["content"]


async def test_a_link_made_by_hand_gets_no_dm(world):
    """An admin linked Dave to Bob's Patreon account by hand (wrongly, or maliciously): a DM about that account's
    payments would tell Dave about Bob's money, so none is sent."""
    await turn_on(world, dm_removed=True, dm_declined=True)
    await admin(world, ["link-user"], {"member": SEED.dave, "patreon_user_id": "p-bob"})
    await wait_for(lambda: SEED.bronze_role in world.roles_of(SEED.dave))
    world.patreon.set_membership(
        "p-bob", patron_status="declined_patron", tier_ids=[SEED.bronze_tier], last_charge_status="Declined"
    )
    await world.send_webhook("members:pledge:update", "p-bob")
    await world.refresh()
    world.patreon.set_membership("p-bob", patron_status="former_patron", tier_ids=[], next_charge_date=None)
    await world.refresh()
    await world.settle()
    await wait_for(lambda: SEED.bronze_role not in world.roles_of(SEED.dave))
    assert world.discord.calls_matching("POST", DM_OPENS) == []
    assert await world.store.dm_states() == []


async def test_unlinking_yourself_sends_no_removal_dm(world):
    await turn_on(world, dm_removed=True)
    await world.link(SEED.alice)
    interaction = await world.discord.invoke_slash(SEED.guild_id, SEED.alice, "patreon", ["unlink"])
    await interaction.wait_response(timeout=5)
    await wait_for(lambda: SEED.gold_role not in world.roles_of(SEED.alice))
    await world.settle()
    assert world.discord.dm_channels.messages_to(SEED.alice) == []


async def test_a_member_who_blocks_dms_costs_one_failed_call_and_is_not_tried_again(world, caplog):
    world.discord.dm_channels.block_dms(SEED.alice)
    await turn_on(world, dm_welcome=True, dm_removed=True)
    await world.link(SEED.alice)
    await wait_for(lambda: len(dm_calls(world)) == 1)
    (refused,) = dm_calls(world)
    assert refused.status == 403

    world.patreon.set_membership(
        "p-alice", patron_status="former_patron", tier_ids=[], next_charge_date=None, last_charge_status="Deleted"
    )
    await world.refresh()
    await world.settle()
    await wait_for(lambda: SEED.gold_role not in world.roles_of(SEED.alice))

    await wait_for(lambda: states_are(world, SEED.alice, [("welcome", "blocked"), ("removed", "blocked")]))
    assert len(dm_calls(world)) == 1, "the second DM cost no call"
    blocked_lines = [r for r in caplog.records if "doesn't take DMs" in r.getMessage()]
    assert len(blocked_lines) == 1, "logged once"


async def test_discord_being_down_is_retried_with_the_same_nonce(world):
    world.bot.services.patron_dms.retry_base = 0.05  # seconds instead of 30 (the back-off, not the subject)
    await turn_on(world, dm_welcome=True)
    world.discord.fail_next("POST", rf"/channels/(?!{SEED.log_channel}/)\d+/messages$", status=503, count=2)
    await world.link(SEED.alice)
    await wait_for(lambda: states_are(world, SEED.alice, [("welcome", "sent")]))
    calls = dm_calls(world)
    assert [call.status for call in calls] == [503, 503, 200]
    assert len({call.json["nonce"] for call in calls}) == 1, "every try is the same DM to Discord"
    assert len(world.discord.dm_channels.messages_to(SEED.alice)) == 1


async def test_a_crash_between_sending_and_recording_doubles_nothing(world):
    """The send reaches Discord, the bot stops before it hears back; after the restart the row is sent again with
    the same nonce and Discord answers with the message it already made."""
    await turn_on(world, dm_welcome=True)
    held = world.discord.hold_next("POST", rf"/channels/(?!{SEED.log_channel}/)\d+/messages$", seconds=10)
    await world.link(SEED.alice)
    await wait_for(lambda: held.held >= 1)
    await world.stop_bot()  # the bot is gone before Discord has answered
    held.release()
    await wait_for(lambda: len(world.discord.dm_channels.messages_to(SEED.alice)) == 1)

    await world.start_bot()
    await wait_for(lambda: len(dm_calls(world)) == 2, timeout=15)

    await wait_for(lambda: states_are(world, SEED.alice, [("welcome", "sent")]))
    assert len(world.discord.dm_channels.messages_to(SEED.alice)) == 1, "the same nonce made no second message"


async def test_a_server_that_does_not_take_part_sends_no_dm(tmp_path):
    """Alice is also in Eve's server, which the creator didn't list; Eve's settings there ask for every DM."""
    world = await world_with_other_server(tmp_path, allowed=(SEED.guild_id,))
    try:
        world.discord.guild(OTHER).add_member(SEED.alice, username="alice")
        settings = await world.store.get_settings(OTHER)
        await world.store.save_settings(replace(settings, dm_welcome=True, dm_removed=True, dm_declined=True))
        await world.link(SEED.alice)
        await world.settle()
        assert world.discord.calls_matching("POST", DM_OPENS) == []
        assert await world.store.dm_states() == []
    finally:
        await world.close()


async def test_dm_preview_shows_the_template_to_role_managers_only(world):
    text = await admin(world, ["dm-preview"], {"kind": "declined"})
    assert "Preview of the declined DM** (off" in text and "dm_declined:True" in text
    assert "your last payment was declined" in text and "**Creator's Server**" in text

    await turn_on(world, dm_removed=True)
    text = await admin(world, ["dm-preview"], {"kind": "removed"})
    assert "Preview of the removed DM** (on)" in text and "Gold Patron" in text

    refused = await admin(world, ["dm-preview"], {"kind": "welcome"}, user=SEED.dave, bypass_default_permissions=True)
    assert "Manage Roles" in refused and "Preview" not in refused


async def test_dm_preview_in_a_server_that_does_not_take_part_is_refused(tmp_path):
    world = await world_with_other_server(tmp_path)
    try:
        text = await admin(world, ["dm-preview"], {"kind": "welcome"}, user=EVE, guild=OTHER)
        assert "Preview" not in text
    finally:
        await world.close()
