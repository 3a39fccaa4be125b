"""End to end, the refresh plans only what changed: a moderator's hand on Discord reaches the refresh through the
gateway's GUILD_MEMBER_UPDATE, and `/patreon-admin sync` asks for a full re-plan (issue 9, item 4)."""

from fakes.world import SEED
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin


def cached_roles(world, user_id: int) -> frozenset[int] | None:
    return world.bot.services.gateway.cached_member_roles(SEED.guild_id, user_id)


async def test_a_role_taken_by_hand_on_discord_is_given_back_by_the_next_refresh(world):
    await world.link(SEED.alice)
    assert (await world.refresh()).members_planned == 1, "a new link is planned once"
    assert (await world.refresh()).members_planned == 0, "then Alice costs nothing"
    world.guild.member(SEED.alice).role_ids.discard(SEED.gold_role)  # a moderator, in Discord's UI
    await wait_for(lambda: SEED.gold_role not in (cached_roles(world, SEED.alice) or {SEED.gold_role}))
    world.discord.clear_calls()
    report = await world.refresh()
    assert report.ok and report.full_replan_guilds == 0
    assert report.members_planned == 1 and report.roles_differ == 1, "only Alice was planned"
    assert world.roles_of(SEED.alice) == {SEED.vip_role, SEED.gold_role}
    assert [call.method for call in world.role_calls(SEED.alice)] == ["PUT"]


async def test_a_member_update_in_a_server_that_does_not_act_changes_nothing(world):
    await world.link(SEED.alice)
    await world.refresh()
    assert "Saved" in await admin(world, ["settings"], {"enabled": False})  # the owner: this server stops taking part
    world.guild.member(SEED.alice).role_ids.discard(SEED.gold_role)
    await wait_for(lambda: SEED.gold_role not in (cached_roles(world, SEED.alice) or {SEED.gold_role}))
    world.discord.clear_calls()
    report = await world.refresh()
    assert report.ok and report.members_planned == 0 and world.role_calls() == []


async def test_an_applied_sync_makes_the_next_refresh_plan_every_member(world):
    await world.link(SEED.alice)
    await world.link(SEED.bob)
    assert (await world.refresh()).full_replan_guilds == 0
    await admin(world, ["sync"])  # a preview asks for nothing
    assert (await world.refresh()).full_replan_guilds == 0
    await admin(world, ["sync"], {"dry_run": False})
    report = await world.refresh()
    assert report.full_replan_guilds == 1 and report.members_planned >= 2
