"""Why a tier switch is a PUT and a DELETE, not one PATCH of the member's role list (issue 9, item 2).

Discord's `PATCH /guilds/{g}/members/{u}` with `roles` *replaces* the member's whole list ("array of role ids the
member is assigned", Discord's Modify Guild Member; no version or precondition to make it conditional), while
`PUT`/`DELETE .../roles/{r}` change one role and leave the rest alone. A PATCH would be one call instead of two for
a tier switch, in a bucket of its own, but its list has to come from somewhere:

- from discord.py's cache (or the bot's overlay of its own writes on it, which is what the engine plans from): a
  role a moderator gave moments ago is not in it until Discord's GUILD_MEMBER_UPDATE arrives, so the PATCH takes
  that role away;
- from a fresh `GET` of the member just before: a moderator's grant between the GET and the PATCH is lost the same
  way, and the GET costs a call of its own.

These tests produce both races with the fake alone (it holds the member's gateway events back, as a lagging
gateway does, and answers PATCH as Discord does: the list replaced, the same permission and hierarchy checks, its
own rate-limit bucket) and show the concrete loss; then that the bot's PUT/DELETE path keeps the moderator's role
in the same race. So the bot keeps PUT/DELETE (bot/discord_io/roles.py, docs/discord-api.md).
"""

from __future__ import annotations

import aiohttp
import discord

from bot.discord_io.roles import DiscordRoleGateway
from fakes.world import BOT_TOKEN, SEED
from tests.e2e.polling import wait_for

DAVE = SEED.dave  # a free member at the start: no roles
GUILD = SEED.guild_id


def cached_roles(world, user_id: int) -> set[int]:
    """What discord.py's own member cache shows."""
    member = world.bot.get_guild(GUILD).get_member(user_id)
    return {role.id for role in member.roles if not role.is_default()}


async def dave_is_a_bronze_patron(world) -> None:
    """Dave linked and given Bronze by the bot, and discord.py's cache has seen it."""
    await world.store.save_link(DAVE, "p-dave", GUILD, "admin")
    world.patreon.set_membership("p-dave", "active_patron", tier_ids=[SEED.bronze_tier])
    status, _ = await world.send_webhook("members:pledge:create", "p-dave")
    assert 200 <= status < 300
    await world.settle()
    await wait_for(lambda: cached_roles(world, DAVE) == {SEED.bronze_role})
    world.discord.clear_calls()


def moderator_gives_vip_while_the_gateway_lags(world) -> None:
    world.hold_member_updates(DAVE)
    world.guild.member(DAVE).role_ids.add(SEED.vip_role)  # by hand, in Discord's client
    assert world.discord.held_member_updates == 1, "the moderator's change is on its way, not yet delivered"
    assert world.roles_of(DAVE) == {SEED.bronze_role, SEED.vip_role}
    assert cached_roles(world, DAVE) == {SEED.bronze_role}, "discord.py hasn't seen the VIP role yet"


async def patch_tier_switch(world, known: set[int]) -> None:
    """A tier switch Bronze → Gold as one PATCH: the list the bot knows, Bronze out, Gold in (discord.py's
    `Member.edit(roles=...)`, which sends `PATCH /guilds/{g}/members/{u}` with that full list)."""
    member = world.bot.get_guild(GUILD).get_member(DAVE)
    roles = [discord.Object(role) for role in sorted((known - {SEED.bronze_role}) | {SEED.gold_role})]
    await member.edit(roles=roles, reason="tier switch as one PATCH")


async def test_a_patch_from_the_bots_view_takes_away_a_role_a_moderator_gave_moments_ago(world):
    await dave_is_a_bronze_patron(world)
    moderator_gives_vip_while_the_gateway_lags(world)
    view = await DiscordRoleGateway(world.bot).member_roles(GUILD, DAVE)  # what the engine plans from
    assert view == {SEED.bronze_role}

    await patch_tier_switch(world, set(view))

    assert world.roles_of(DAVE) == {SEED.gold_role}, "the VIP role the moderator gave is gone"
    [patch] = world.role_calls(DAVE)
    assert (patch.method, patch.status, sorted(map(int, patch.json["roles"]))) == ("PATCH", 200, [SEED.gold_role])
    world.release_member_updates()
    await wait_for(lambda: cached_roles(world, DAVE) == {SEED.gold_role})  # and nothing brings it back
    assert world.roles_of(DAVE) == {SEED.gold_role}


async def test_a_patch_after_a_fresh_read_still_loses_a_grant_made_between_the_two(world):
    await dave_is_a_bronze_patron(world)
    fresh = await world.bot.get_guild(GUILD).fetch_member(DAVE)  # GET /guilds/{g}/members/{u}, just before
    known = {role.id for role in fresh.roles if not role.is_default()}
    assert known == {SEED.bronze_role}
    moderator_gives_vip_while_the_gateway_lags(world)  # between the read and the write

    await patch_tier_switch(world, known)

    assert world.roles_of(DAVE) == {SEED.gold_role}, "Discord has no conditional PATCH: the grant is overwritten"
    assert [call.method for call in world.role_calls(DAVE)] == ["PATCH"]


async def test_the_bots_put_and_delete_keep_the_moderators_role_in_the_same_race(world):
    await dave_is_a_bronze_patron(world)
    moderator_gives_vip_while_the_gateway_lags(world)

    world.patreon.set_membership("p-dave", "active_patron", tier_ids=[SEED.gold_tier])
    status, _ = await world.send_webhook("members:pledge:update", "p-dave")
    assert 200 <= status < 300
    await world.settle()

    assert world.roles_of(DAVE) == {SEED.gold_role, SEED.vip_role}, "the moderator's role survives"
    calls = [(call.method, int(call.path.rsplit("/", 1)[1]), call.status) for call in world.role_calls(DAVE)]
    assert sorted(calls) == [("DELETE", SEED.bronze_role, 204), ("PUT", SEED.gold_role, 204)]
    world.release_member_updates()
    await wait_for(lambda: cached_roles(world, DAVE) == {SEED.gold_role, SEED.vip_role})
    assert await world.store.granted_roles(GUILD, DAVE) == {SEED.gold_role}  # VIP was never the bot's


async def test_the_fakes_patch_is_discords_own_route_with_the_same_checks(world):
    """The fake answers PATCH as Discord does: a bucket apart from the member-role one, refused (403 50013, nothing
    changed) when the list would change a role above the bot, and `@everyone` in the list ignored."""
    await dave_is_a_bronze_patron(world)
    base = f"{world.discord.base_url}/api/v10/guilds/{GUILD}/members/{DAVE}"
    headers = {"Authorization": f"Bot {BOT_TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.put(f"{base}/roles/{SEED.bronze_role}") as put:
            assert put.status == 204
            put_bucket = put.headers["X-RateLimit-Bucket"]
        above = {"roles": [str(SEED.bronze_role), str(SEED.above_bot_role)]}
        async with session.patch(base, json=above) as refused:
            assert (refused.status, (await refused.json())["code"]) == (403, 50013)
            assert refused.headers["X-RateLimit-Bucket"] != put_bucket
        assert world.roles_of(DAVE) == {SEED.bronze_role}
        with_everyone = {"roles": [str(GUILD), str(SEED.gold_role)]}
        async with session.patch(base, json=with_everyone) as replaced:
            assert replaced.status == 200
    assert world.roles_of(DAVE) == {SEED.gold_role}, "the list replaced, @everyone not stored as a role"
