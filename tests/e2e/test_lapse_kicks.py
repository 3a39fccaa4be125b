"""Kick on lapse (issue 12, item 5), end to end: the settings, `/patreon-admin kick-preview`, the sweep and the fake
Discord's kick, which refuses like Discord (403 50013: no Kick Members, the owner, anyone not below the bot)."""

from __future__ import annotations

from datetime import timedelta

import discord
import pytest

from fakes.discord.permissions import KICK_MEMBERS
from fakes.world import SEED, FakeWorld
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin
from tests.e2e.test_trust_rank import MALLORY, SENIOR, STAFF, add_mallory

MODERATED = 750000000000000031  # a lapsed patron a moderator made a Moderator (above the bot)


def give_bot_kick_members(world: FakeWorld) -> None:
    world.guild.set_bot_permissions(permissions=world.guild.bot_role.permissions | KICK_MEMBERS)


def kicks(world: FakeWorld, user_id: int | None = None) -> list:
    member = str(user_id) if user_id is not None else r"\d+"
    return world.discord.calls_matching("DELETE", rf"^/guilds/{SEED.guild_id}/members/{member}$")


def log_lines(world: FakeWorld) -> list[str]:
    return [message["content"] for message in world.discord.messages(SEED.log_channel)]


def cancel(world: FakeWorld, patreon_id: str) -> None:
    """The patron cancelled long ago: the period they paid for is over, nothing holds their roles."""
    world.patreon.set_membership(
        patreon_id,
        patron_status="former_patron",
        tier_ids=[],
        last_charge_status="Paid",
        last_charge_date=world.clock() - timedelta(days=60),
    )


async def lapse(world: FakeWorld, discord_id: int, patreon_id: str) -> None:
    """Link, hold the tier role, cancel, refresh: the engine takes the role and records the lapse."""
    await world.link(discord_id)
    assert world.roles_of(discord_id) & {SEED.gold_role, SEED.bronze_role}
    cancel(world, patreon_id)
    await world.refresh()
    assert not world.roles_of(discord_id) & {SEED.gold_role, SEED.bronze_role}


async def link_as(world: FakeWorld, discord_id: int, patreon_id: str) -> None:
    """`world.link` for someone outside the seeded four: `/patreon link`, then signing in as `patreon_id`."""
    world.patreon.next_authorizing_user = patreon_id
    await world.open_in_browser(await world.run_link_command(discord_id), as_user=discord_id)


async def sweep(world: FakeWorld) -> list[tuple[int, int]]:
    assert world.bot is not None
    return await world.bot.services.lapse_kicks.sweep()


async def test_kick_on_lapse_is_off_by_default(world):
    give_bot_kick_members(world)
    await lapse(world, SEED.bob, "p-bob")
    world.clock.advance(days=400)
    await world.refresh()
    assert await sweep(world) == []
    assert SEED.bob in world.guild.members and kicks(world) == []
    assert "is off" in await admin(world, ["kick-preview"])


async def test_a_lapsed_patron_is_kicked_after_the_days_with_a_reason_and_a_log_line(world):
    give_bot_kick_members(world)
    assert "Saved" in await admin(world, ["settings"], {"kick_after_days": 30})
    await lapse(world, SEED.bob, "p-bob")
    world.clock.advance(days=29)
    await world.refresh()
    assert await sweep(world) == [] and "Would kick nobody" in await admin(world, ["kick-preview"])
    world.clock.advance(days=2)
    await world.refresh()
    preview = await admin(world, ["kick-preview"])
    assert f"Would kick 1:\n<@{SEED.bob}>" in preview
    assert SEED.bob in world.guild.members, "a preview kicks nobody"
    assert world.bot is not None
    world.bot.services.kick_sweeper.wake()  # the background sweep, whose hour has come on the moved clock
    await wait_for(lambda: SEED.bob not in world.guild.members)
    (call,) = kicks(world, SEED.bob)
    assert call.status == 204 and "kick on lapse" in (call.reason or "")
    await wait_for(lambda: any(f"Kicked <@{SEED.bob}>" in line for line in log_lines(world)))
    assert await world.store.lapses_before(SEED.guild_id, world.clock() + timedelta(days=1)) == {}
    # He comes back: a rejoin starts afresh, nobody kicks him again.
    world.guild.add_member(SEED.bob, username="bob")
    await world.refresh()
    assert await sweep(world) == [] and len(kicks(world, SEED.bob)) == 1


async def test_never_the_owner_anyone_above_the_bot_or_with_a_role_the_bot_did_not_give(world):
    give_bot_kick_members(world)
    await admin(world, ["settings"], {"kick_after_days": 1})
    world.patreon.add_user(user_id="p-owner", full_name="Owner")
    world.patreon.add_user(user_id="p-mod", full_name="Mod")
    world.guild.add_member(MODERATED, username="mod")
    for user_id in ("p-owner", "p-mod"):
        world.patreon.set_membership(
            user_id,
            patron_status="active_patron",
            tier_ids=[SEED.bronze_tier],
            last_charge_status="Paid",
            last_charge_date=world.clock() - timedelta(days=3),
        )
    for user_id, discord_id in (("p-owner", SEED.owner_id), ("p-mod", MODERATED)):
        await link_as(world, discord_id, user_id)  # their own sign-in: a link by hand never lapses
    await world.link(SEED.alice)  # Alice holds VIP, given by a moderator
    for patreon_id in ("p-owner", "p-mod", "p-alice"):
        cancel(world, patreon_id)
    await world.refresh()
    world.guild.set_member_roles(MODERATED, [SEED.above_bot_role])
    world.clock.advance(days=2)
    await world.refresh()
    preview = await admin(world, ["kick-preview"])
    assert f"<@{SEED.owner_id}>: the server owner" in preview
    assert f"<@{MODERATED}>: holds a role at or above the bot's highest role" in preview
    assert f"<@{SEED.alice}>: holds a role the bot didn't give" in preview
    assert await sweep(world) == [] and kicks(world) == []
    # A protect role above VIP: VIP no longer spares Alice; the owner and the moderator stay spared.
    await admin(world, ["settings"], {"kick_protect_role": SEED.gold_role})
    assert await sweep(world) == [(SEED.guild_id, SEED.alice)]
    assert SEED.owner_id in world.guild.members and MODERATED in world.guild.members
    assert [int(call.path.split("/")[-1]) for call in kicks(world)] == [SEED.alice]


async def test_never_someone_who_never_was_a_patron_here(world):
    give_bot_kick_members(world)
    await admin(world, ["settings"], {"kick_after_days": 1})
    await world.link(SEED.dave)  # a free member, never pledged
    await admin(world, ["comp"], {"member": SEED.dave, "role": SEED.gold_role, "days": 1})
    await admin(world, ["comp"], {"member": SEED.carol, "role": SEED.gold_role, "days": 1})  # unlinked
    world.clock.advance(days=1, minutes=1)
    assert world.bot is not None
    world.bot.services.comp_expiry.wake()
    await wait_for(lambda: SEED.gold_role not in world.roles_of(SEED.dave) | world.roles_of(SEED.carol))
    world.clock.advance(days=5)
    await world.refresh()
    assert await sweep(world) == [] and kicks(world) == []
    assert "Would kick nobody" in await admin(world, ["kick-preview"])


def drop_a_member(document, _query):
    """A listing page that lost a member while its total still counts them: the listing is incomplete."""
    document["data"] = document["data"][1:]
    return document


@pytest.mark.parametrize("fault", ["outage", "incomplete"])
async def test_no_kick_while_patreon_fails(world, fault):
    give_bot_kick_members(world)
    await admin(world, ["settings"], {"kick_after_days": 1})
    await lapse(world, SEED.bob, "p-bob")
    world.clock.advance(days=3)
    if fault == "outage":
        world.patreon.fail_next(r"/members", status=503, count=100)
    else:
        world.patreon.rewrite_responses(r"/campaigns/[^/]+/members", drop_a_member)
    report = await world.refresh()
    assert not report.ok and "nothing was removed" in report.detail, report.detail
    assert await sweep(world) == [] and kicks(world) == []
    assert SEED.bob in world.guild.members
    assert "the last refresh from Patreon failed" in await admin(world, ["kick-preview"])


async def test_no_kick_on_an_old_refresh(world):
    give_bot_kick_members(world)
    await admin(world, ["settings"], {"kick_after_days": 1})
    await lapse(world, SEED.bob, "p-bob")
    world.clock.advance(days=3)  # no refresh since: its listing may no longer be true
    assert await sweep(world) == [] and kicks(world) == []
    assert "too old" in await admin(world, ["kick-preview"])


async def test_the_bot_without_kick_members_kicks_nobody_and_check_says_so(world):
    await admin(world, ["settings"], {"kick_after_days": 1})
    await lapse(world, SEED.bob, "p-bob")
    world.clock.advance(days=3)
    await world.refresh()
    assert await sweep(world) == [] and kicks(world) == []
    assert "Kick on lapse is on (1 day(s)) but can't work" in await admin(world, ["check"])
    give_bot_kick_members(world)
    await wait_for(
        lambda: world.bot is not None and world.bot.role_gateway.missing_kick_permission(SEED.guild_id) is None
    )
    assert "Kick on lapse is on: members lapsed" in await admin(world, ["check"])


async def test_kick_settings_need_kick_members_and_the_rank_rule(world):
    add_mallory(world)  # Manage Roles only
    text = await admin(world, ["settings"], {"kick_after_days": 30}, MALLORY)
    assert "needs the Kick Members permission" in text
    assert (await world.store.get_settings(SEED.guild_id)).kick_after_days == 0
    world.guild.update_role(STAFF, permissions=(1 << 28) | KICK_MEMBERS)
    text = await admin(world, ["settings"], {"kick_after_days": 30, "kick_protect_role": SENIOR}, MALLORY)
    assert "You can't set the kick threshold at @Senior Staff" in text
    settings = await world.store.get_settings(SEED.guild_id)
    assert settings.kick_after_days == 0 and settings.kick_protect_rank_id is None
    await world.store.map_tier_role(SEED.guild_id, SEED.gold_tier, SENIOR)  # the policy hands out a role above her
    assert "can't change who gets" in await admin(world, ["settings"], {"kick_after_days": 30}, MALLORY)
    await world.store.unmap_tier_role(SEED.guild_id, SEED.gold_tier, SENIOR)
    assert "Saved" in await admin(world, ["settings"], {"kick_after_days": 30}, MALLORY)
    world.guild.update_role(STAFF, permissions=1 << 28)
    assert "Saved" in await admin(world, ["settings"], {"kick_after_days": 0}, MALLORY), "switching off is safe"


async def test_the_fake_refuses_kicks_like_discord(world):
    """The real discord.py against the fake: 50013 without Kick Members, for the owner, for a member not below the
    bot; a kick that passes removes the member and carries its audit-log reason."""
    assert world.bot is not None
    guild = world.bot.get_guild(SEED.guild_id)
    assert guild is not None
    with pytest.raises(discord.Forbidden) as refused:
        await guild.kick(discord.Object(SEED.bob), reason="test")
    assert refused.value.code == 50013 and SEED.bob in world.guild.members
    give_bot_kick_members(world)
    world.guild.add_member(MODERATED, username="mod", roles=[SEED.above_bot_role])
    for user_id in (SEED.owner_id, MODERATED):
        with pytest.raises(discord.Forbidden) as refused:
            await guild.kick(discord.Object(user_id), reason="test")
        assert refused.value.code == 50013 and user_id in world.guild.members
    with pytest.raises(discord.NotFound):
        await guild.kick(discord.Object(760000000000000999), reason="test")
    await guild.kick(discord.Object(SEED.bob), reason="why it happened")
    assert SEED.bob not in world.guild.members
    assert kicks(world, SEED.bob)[-1].reason == "why it happened"
