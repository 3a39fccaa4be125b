"""`/patreon refresh` end to end (issue 12, item 1): a patron who just pledged asks the bot to look now.

The real bot, the fake Discord and the fake Patreon; pledges change on the fake Patreon without a webhook, so only
the refresh can bring them in.
"""

from __future__ import annotations

import asyncio

from bot.store import patron_subject
from fakes.discord import InteractionRecord
from fakes.world import PATREON_IDS, SEED, FakeWorld
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin, text_of
from tests.e2e.test_campaign_two_servers import (
    B_ROLE,
    B_TIER,
    BEN,
    roles_in,
    two_campaigns,  # noqa: F401  (the fixture)
)
from tests.e2e.test_campaign_two_servers import OTHER as SERVER_B
from tests.e2e.test_trust_servers import EVE, OTHER, world_with_other_server

IDENTITY = "/api/oauth2/v2/identity"
MEMBERS = "/api/oauth2/v2/members/"


async def patron_command(
    world: FakeWorld, user: int, path: list[str], guild: int = SEED.guild_id
) -> tuple[InteractionRecord, str]:
    """Run `/patreon <path>` as `user`; the record and all the text it answered, once the command returned."""
    assert world.bot is not None
    record = await world.discord.invoke_slash(guild, user, "patreon", path)
    completed = asyncio.ensure_future(
        world.bot.wait_for("app_command_completion", check=lambda done, _command: done.id == record.id, timeout=10)
    )
    try:
        await completed
    finally:
        completed.cancel()
    await wait_for(lambda: any(text_of(response) for response in record.responses))
    assert record.ephemeral, "a patron's answer is for them only"
    return record, "\n".join(text_of(response) for response in record.responses)


def patreon_reads(world: FakeWorld) -> int:
    return world.patreon.count(IDENTITY) + world.patreon.count(MEMBERS)


async def test_the_command_takes_no_option_so_nobody_can_refresh_someone_else(world):
    (patreon,) = [command for command in world.discord.registered_commands() if command["name"] == "patreon"]
    (refresh,) = [option for option in patreon["options"] if option["name"] == "refresh"]
    assert refresh.get("options") in (None, []), "no member option: it always acts for whoever runs it"


async def test_a_patron_who_just_pledged_gets_the_role_at_once_with_the_reasons(world):
    await world.link(SEED.dave)  # a free member: linked, no role
    assert world.roles_of(SEED.dave) == set()
    world.patreon.set_membership("p-dave", patron_status="active_patron", tier_ids=[SEED.bronze_tier])  # no webhook

    _, text = await patron_command(world, SEED.dave, ["refresh"])

    assert "Read your membership from Patreon just now." in text
    assert "active_patron" in text and "✅ @Bronze Patron: held" in text and "❌ @Gold Patron" in text
    assert world.roles_of(SEED.dave) == {SEED.bronze_role}
    stored = await world.store.get_membership("p-dave")
    assert stored is not None and stored.entitled_tier_ids == (SEED.bronze_tier,)


async def test_a_second_refresh_within_a_minute_waits_and_asks_patreon_nothing(world):
    await world.link(SEED.bob)
    await patron_command(world, SEED.bob, ["refresh"])
    reads = patreon_reads(world)

    _, text = await patron_command(world, SEED.bob, ["refresh"])
    assert "try again in" in text and " s." in text
    assert patreon_reads(world) == reads, "a refused refresh costs Patreon nothing"

    world.clock.advance(seconds=61)
    world.patreon.set_membership("p-bob", patron_status="active_patron", tier_ids=[SEED.gold_tier])
    _, text = await patron_command(world, SEED.bob, ["refresh"])
    assert "Read your membership" in text and world.roles_of(SEED.bob) == {SEED.gold_role}


async def test_someone_not_linked_is_pointed_to_link_and_patreon_is_not_asked(world):
    reads = patreon_reads(world)
    _, text = await patron_command(world, SEED.dave, ["refresh"])
    assert "/patreon link" in text and "haven't linked" in text
    assert patreon_reads(world) == reads


async def test_a_patreon_failure_changes_nothing_and_says_so(world):
    await world.link(SEED.alice)
    assert world.roles_of(SEED.alice) == {SEED.vip_role, SEED.gold_role}
    before = await world.store.get_membership("p-alice")
    world.patreon.remove_membership("p-alice")  # what Patreon would say if it answered
    world.patreon.fail_next(IDENTITY, status=503, count=50)
    world.patreon.fail_next(MEMBERS, status=503, count=50)
    calls = len(world.role_calls(SEED.alice))

    _, text = await patron_command(world, SEED.alice, ["refresh"])

    assert "nothing was changed" in text
    assert await world.store.get_membership("p-alice") == before
    assert world.roles_of(SEED.alice) == {SEED.vip_role, SEED.gold_role}, "upstream failure never removes roles"
    assert len(world.role_calls(SEED.alice)) == calls


async def test_an_expired_patron_token_is_refreshed_and_stored_before_use(world):
    await world.link(SEED.bob)
    tokens = await world.store.get_tokens(patron_subject("p-bob"))
    assert tokens is not None
    world.patreon.expire_token(tokens.access_token)
    world.patreon.set_membership("p-bob", patron_status="active_patron", tier_ids=[SEED.gold_tier])

    _, text = await patron_command(world, SEED.bob, ["refresh"])

    assert "Read your membership" in text and world.roles_of(SEED.bob) == {SEED.gold_role}
    fresh = await world.store.get_tokens(patron_subject("p-bob"))
    assert fresh is not None and fresh.access_token != tokens.access_token


async def test_a_member_linked_by_hand_is_read_with_the_creator_token(world):
    text = await admin(world, ["link-user"], {"member": SEED.bob, "patreon_user_id": PATREON_IDS[SEED.bob]})
    assert "Linked" in text and world.roles_of(SEED.bob) == {SEED.bronze_role}
    world.patreon.set_membership("p-bob", patron_status="active_patron", tier_ids=[SEED.gold_tier])
    identity_calls = world.patreon.count(IDENTITY)

    _, text = await patron_command(world, SEED.bob, ["refresh"])

    assert "Read your membership" in text and world.roles_of(SEED.bob) == {SEED.gold_role}
    assert world.patreon.count(IDENTITY) == identity_calls, "no patron token: the creator's member read"


async def test_a_membership_gone_at_patreon_is_patreon_s_word_and_acted_on(world):
    await world.link(SEED.alice)
    world.patreon.remove_membership("p-alice")  # gone at Patreon: identity shows no membership of the campaign

    _, text = await patron_command(world, SEED.alice, ["refresh"])

    assert "Read your membership" in text
    assert await world.store.get_membership("p-alice") is None
    assert world.roles_of(SEED.alice) == {SEED.vip_role}, "Patreon's own word (not a failure) is acted on"


async def test_a_server_that_does_not_take_part_refreshes_nothing(tmp_path):
    world = await world_with_other_server(tmp_path, allowed=(SEED.guild_id,))
    try:
        world.discord.guild(OTHER).add_member(SEED.alice, username="alice")
        await world.link(SEED.alice)
        reads = patreon_reads(world)
        _, text = await patron_command(world, SEED.alice, ["refresh"], guild=OTHER)
        assert "doesn't use the bot" in text and "p-alice" not in text
        assert patreon_reads(world) == reads
        _, text = await patron_command(world, EVE, ["refresh"], guild=OTHER)
        assert "doesn't use the bot" in text
    finally:
        await world.close()


async def test_a_refresh_reads_the_campaign_the_server_follows(two_campaigns):  # noqa: F811
    world = two_campaigns
    await wait_for(lambda: B_ROLE in roles_in(world, SERVER_B, BEN))
    member = await world.store.get_membership("p-ben")
    assert member is not None and member.member_id is not None
    reads = world.patreon.count(MEMBERS + member.member_id)

    _, text = await patron_command(world, BEN, ["refresh"], guild=SERVER_B)

    assert "Read your membership" in text and "✅ @Eve Patron" in text
    assert world.patreon.count(MEMBERS + member.member_id) == reads + 1, "campaign B's creator read Ben's member"
    _, text = await patron_command(world, SEED.alice, ["refresh"], guild=SERVER_B)
    assert "no way to ask Patreon" in text, "Alice has no membership of B to re-read, and A's data is not B's"
    assert roles_in(world, SERVER_B, SEED.alice) == set() and B_TIER not in text
