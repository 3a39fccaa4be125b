"""Comps with an expiry (issue 12, item 4), end to end: `/patreon-admin comp` and `uncomp` against the real bot and
the fakes, with the world's clock moved past a comp's end and the bot restarted in the middle of expiring."""

from __future__ import annotations

from datetime import timedelta

import pytest

from fakes.world import SEED, FakeWorld
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin
from tests.e2e.test_trust_rank import MALLORY, SENIOR, add_mallory
from tests.e2e.test_trust_servers import EVE, OTHER, OTHER_GOLD, eves_world  # noqa: F401 (fixture)


def deletes(world: FakeWorld, user_id: int, role_id: int) -> list:
    return world.discord.calls_matching("DELETE", rf"/guilds/{SEED.guild_id}/members/{user_id}/roles/{role_id}$")


def log_lines(world: FakeWorld) -> list[str]:
    return [message["content"] for message in world.discord.messages(SEED.log_channel)]


async def expire(world: FakeWorld, **delta: float) -> None:
    """Move the clock, wake the expiry sweep, and wait until it has nothing due and the queue is drained."""
    world.clock.advance(**delta)
    assert world.bot is not None
    world.bot.services.comp_expiry.wake()
    await wait_for(lambda: _not_busy(world))
    await world.settle()


async def _not_busy(world: FakeWorld) -> bool:
    assert world.bot is not None
    return not await world.bot.services.comp_expiry.busy()


async def status_of(world: FakeWorld, user_id: int) -> str:
    interaction = await world.discord.invoke_slash(SEED.guild_id, user_id, "patreon", ["status"])
    await interaction.wait_response(timeout=5)
    await wait_for(lambda: "Decision" in (interaction.content or ""))
    return interaction.content


async def test_a_comp_gives_the_role_shows_everywhere_and_its_end_takes_it_back_once(world):
    text = await admin(
        world, ["comp"], {"member": SEED.dave, "role": SEED.gold_role, "days": 3, "reason": "podcast guest"}
    )
    assert "Comped @Gold Patron" in text and f"<@{SEED.dave}>" in text
    assert SEED.gold_role in world.roles_of(SEED.dave), "a free member holds the tier role while the comp lasts"
    assert SEED.gold_role in await world.store.granted_roles(SEED.guild_id, SEED.dave), "a comp is the bot's grant"
    await wait_for(
        lambda: any("a comp of @Gold Patron" in line and "podcast guest" in line for line in log_lines(world))
    )
    assert "comp until" in await status_of(world, SEED.dave)
    report = await admin(world, ["patrons"])
    assert "🎁 **Comps: 1**" in report and "podcast guest" in report
    assert "1 comp(s) active" in await admin(world, ["check"])

    await world.refresh()  # the refresh's batch path sees the comp too: nothing queued to take it
    assert SEED.gold_role in world.roles_of(SEED.dave) and deletes(world, SEED.dave, SEED.gold_role) == []

    await expire(world, days=2)
    assert SEED.gold_role in world.roles_of(SEED.dave), "not before its end"
    await expire(world, days=1, minutes=1)
    assert SEED.gold_role not in world.roles_of(SEED.dave)
    assert len(deletes(world, SEED.dave, SEED.gold_role)) == 1
    await wait_for(lambda: any("comp of @Gold Patron" in line and "ended" in line for line in log_lines(world)))
    await world.refresh()
    await world.stop_bot()
    await world.start_bot()
    await expire(world, minutes=1)
    assert len(deletes(world, SEED.dave, SEED.gold_role)) == 1, "removed exactly once, restart or not"
    assert sum("ended" in line and "comp of" in line for line in log_lines(world)) == 1


async def test_a_restart_in_the_middle_of_expiring_removes_the_role_once(world):
    await admin(world, ["comp"], {"member": SEED.dave, "role": SEED.gold_role, "days": 1})
    await admin(world, ["comp"], {"member": SEED.carol, "role": SEED.bronze_role, "days": 1})
    await world.stop_bot()
    world.clock.advance(days=1, minutes=5)
    # The sweep died after queueing Dave's role job and before marking his comp ended (the state a crash leaves).
    from bot.store import Store

    store = await Store.open(world.db_path)
    try:
        await store.enqueue_role_jobs([(SEED.guild_id, SEED.dave)], "comp ended", world.clock())
    finally:
        await store.close()
    await world.start_bot()
    await wait_for(lambda: _not_busy(world))
    await world.settle()
    for user, role in ((SEED.dave, SEED.gold_role), (SEED.carol, SEED.bronze_role)):
        assert role not in world.roles_of(user)
        assert len(deletes(world, user, role)) == 1
    await world.stop_bot()
    await world.start_bot()
    await expire(world, minutes=1)
    assert len(deletes(world, SEED.dave, SEED.gold_role)) == 1
    assert len(deletes(world, SEED.carol, SEED.bronze_role)) == 1
    ended = [line for line in log_lines(world) if "ended" in line and "comp of" in line]
    assert len(ended) == 2, ended


async def test_a_comp_and_a_paid_tier_giving_the_same_role_keep_it_while_either_holds(world):
    await world.link(SEED.bob)
    assert SEED.bronze_role in world.roles_of(SEED.bob)
    await admin(world, ["comp"], {"member": SEED.bob, "role": SEED.bronze_role, "days": 2})
    await expire(world, days=2, minutes=1)
    assert SEED.bronze_role in world.roles_of(SEED.bob), "his pledge still gives it"
    assert deletes(world, SEED.bob, SEED.bronze_role) == []
    # The other way round: the pledge ends while the comp lasts.
    await admin(world, ["comp"], {"member": SEED.bob, "role": SEED.bronze_role, "days": 5})
    world.patreon.set_membership(
        "p-bob",
        patron_status="former_patron",
        tier_ids=[],
        last_charge_status="Paid",
        last_charge_date=world.clock() - timedelta(days=60),
    )
    await world.refresh()
    assert SEED.bronze_role in world.roles_of(SEED.bob), "the comp holds it"
    await expire(world, days=5, minutes=1)
    assert SEED.bronze_role not in world.roles_of(SEED.bob)


async def test_a_comp_never_takes_a_role_given_by_hand(world):
    await world.store.map_tier_role(SEED.guild_id, SEED.bronze_tier, SEED.vip_role)  # VIP becomes a tier role
    assert SEED.vip_role in world.roles_of(SEED.alice)  # a moderator gave it
    text = await admin(world, ["comp"], {"member": SEED.alice, "role": SEED.vip_role, "days": 1})
    assert "given by hand: it stays theirs" in text
    await expire(world, days=1, minutes=1)
    assert SEED.vip_role in world.roles_of(SEED.alice)
    assert deletes(world, SEED.alice, SEED.vip_role) == []


async def test_comp_again_extends_and_uncomp_takes_it_back(world):
    await admin(world, ["comp"], {"member": SEED.dave, "role": SEED.gold_role, "days": 2})
    text = await admin(world, ["comp"], {"member": SEED.dave, "role": SEED.gold_role, "days": 3})
    assert "Extended" in text
    (comp,) = await world.store.active_comps(SEED.guild_id, SEED.dave, world.clock())
    assert 4.9 < (comp.expires_at - world.clock()).total_seconds() / 86400 <= 5
    text = await admin(world, ["uncomp"], {"member": SEED.dave, "role": SEED.gold_role})
    assert "Took back" in text
    assert SEED.gold_role not in world.roles_of(SEED.dave)
    assert "no comp of that role" in await admin(world, ["uncomp"], {"member": SEED.dave, "role": SEED.gold_role})


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"days": 0}, "between 1 and 3650 days"),
        ({"days": 3651}, "between 1 and 3650 days"),
        ({"days": 1, "reason": "x" * 201}, "under 200 characters"),
        ({"days": 1, "role": SEED.vip_role}, "Only a role one of this server's tiers gives"),
        ({"days": 1, "role": SEED.above_bot_role}, "Only a role one of this server's tiers gives"),
    ],
    ids=["zero-days", "too-long", "long-reason", "unmapped-role", "above-bot"],
)
async def test_bad_comps_are_refused_and_change_nothing(world, options, expected):
    text = await admin(world, ["comp"], {"member": SEED.dave, "role": SEED.gold_role, **options})
    assert expected in text
    assert await world.store.active_comps(SEED.guild_id, SEED.dave, world.clock()) == []
    assert SEED.gold_role not in world.roles_of(SEED.dave)


async def test_a_comp_above_the_bot_is_refused(world):
    await world.store.map_tier_role(SEED.guild_id, SEED.gold_tier, SEED.above_bot_role)
    text = await admin(world, ["comp"], {"member": SEED.dave, "role": SEED.above_bot_role, "days": 1})
    assert "above the bot's highest role" in text
    assert await world.store.active_comps(SEED.guild_id, SEED.dave, world.clock()) == []


async def test_a_lower_ranked_admin_can_neither_comp_nor_uncomp_a_role_at_or_above_her_own(world):
    add_mallory(world)
    await world.store.map_tier_role(SEED.guild_id, SEED.gold_tier, SENIOR)
    text = await admin(world, ["comp"], {"member": SEED.dave, "role": SENIOR, "days": 30}, MALLORY)
    assert "You can't comp @Senior Staff" in text
    assert (
        SENIOR not in world.roles_of(SEED.dave)
        and await world.store.active_comps(SEED.guild_id, SEED.dave, world.clock()) == []
    )
    await admin(world, ["comp"], {"member": SEED.dave, "role": SENIOR, "days": 30})  # the owner may
    assert "You can't take back @Senior Staff" in await admin(
        world, ["uncomp"], {"member": SEED.dave, "role": SENIOR}, MALLORY
    )
    assert SENIOR in world.roles_of(SEED.dave)
    assert "Comped @Gold Patron" in await admin(
        world, ["comp"], {"member": SEED.dave, "role": SEED.gold_role, "days": 1}, MALLORY
    ), "a role below her is hers to comp"


async def test_another_servers_admin_cannot_comp(eves_world):  # noqa: F811
    world = eves_world
    await world.store.map_tier_role(OTHER, SEED.gold_tier, OTHER_GOLD)
    text = await admin(world, ["comp"], {"member": EVE, "role": OTHER_GOLD, "days": 30}, EVE, guild=OTHER)
    assert "❌" in text
    assert await world.store.active_comps(OTHER, EVE, world.clock()) == []
    assert OTHER_GOLD not in set(world.discord.guilds[OTHER].member(EVE).role_ids)


async def test_a_comp_belongs_to_the_member_and_outlives_an_unlink(world):
    await world.link(SEED.dave)
    await admin(world, ["comp"], {"member": SEED.dave, "role": SEED.gold_role, "days": 2})
    await admin(world, ["unlink-user"], {"member": SEED.dave})
    assert SEED.gold_role in world.roles_of(SEED.dave), "the comp isn't the Patreon link's"
    await expire(world, days=2, minutes=1)
    assert SEED.gold_role not in world.roles_of(SEED.dave)
    assert len(deletes(world, SEED.dave, SEED.gold_role)) == 1


async def test_a_comp_for_someone_not_in_this_server_is_refused(world):
    """Discord resolves a member option only for members; the service checks again, so a forged id from another
    server (or a member who left meanwhile) gets nothing."""
    from bot.guild_admin.rank import InvokerRank
    from bot.guild_admin.service import AdminError

    assert world.bot is not None
    owner = InvokerRank(user_id=SEED.owner_id, owner=True, roles_below=frozenset())
    stranger = 760000000000000777
    with pytest.raises(AdminError, match="isn't in this server"):
        await world.bot.services.comps.comp(SEED.guild_id, stranger, SEED.gold_role, 5, None, owner)
    assert await world.store.active_comps(SEED.guild_id, stranger, world.clock()) == []
