"""Kick on lapse counts only the member's own paid entitlement ending at Patreon (review 5): an admin's mapping or
policy change that takes a paying patron's tier role is no lapse (R5-2), nor is anything that happens through a link
made by hand, which a Manage-Roles moderator without Kick Members can point at any patron (R5-1); the sweep spares and
forgets such a lapse however it was recorded."""

from __future__ import annotations

from datetime import timedelta

from fakes.world import SEED, FakeWorld
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin
from tests.e2e.test_lapse_kicks import cancel, give_bot_kick_members, kicks, sweep
from tests.e2e.test_trust_rank import MALLORY, add_mallory

FREE_TIER = "2003"  # a free tier (0 cents): its followers never pledged


async def lapses(world: FakeWorld) -> dict[int, object]:
    return await world.store.lapses_before(SEED.guild_id, world.clock() + timedelta(days=1))


async def nobody_kicked_after(world: FakeWorld, days: int, *members: int) -> None:
    """Days pass, a complete refresh runs (kicks need one), and the sweep kicks none of `members`."""
    world.clock.advance(days=days)
    await world.refresh()
    assert await sweep(world) == [] and kicks(world) == []
    assert all(member in world.guild.members for member in members)
    assert "Would kick nobody" in await admin(world, ["kick-preview"])


async def bob_pays_bronze_but_holds_no_tier_role(world: FakeWorld) -> None:
    """Gold and Bronze both give @Bronze Patron; Mallory (Manage Roles, no Kick Members) unmaps Bronze's, so Bob,
    who still pays for Bronze, loses the role while another tier still gives it."""
    add_mallory(world)
    assert "now get" in await admin(world, ["map"], {"tier": SEED.gold_tier, "role": SEED.bronze_role})
    await world.link(SEED.bob)
    await wait_for(lambda: SEED.bronze_role in world.roles_of(SEED.bob))
    assert "Removed 1" in await admin(world, ["unmap"], {"tier": SEED.bronze_tier}, MALLORY)
    await admin(world, ["sync"], {"dry_run": False}, MALLORY)
    await wait_for(lambda: SEED.bronze_role not in world.roles_of(SEED.bob))


async def test_an_unmap_taking_a_paying_patrons_shared_role_is_no_lapse_and_no_kick(world):
    give_bot_kick_members(world)
    assert "Saved" in await admin(world, ["settings"], {"kick_after_days": 1})
    await bob_pays_bronze_but_holds_no_tier_role(world)
    assert SEED.bob not in await lapses(world), "an admin's unmap is no lapse of a patron who still pays"
    await nobody_kicked_after(world, 2, SEED.bob)


async def test_trial_tier_roles_turned_off_is_no_lapse_for_a_patron_on_a_trial(world):
    give_bot_kick_members(world)
    assert "Saved" in await admin(world, ["settings"], {"kick_after_days": 1})
    world.patreon.set_membership(
        "p-bob", patron_status="active_patron", tier_ids=[SEED.bronze_tier], is_free_trial=True
    )
    await world.link(SEED.bob)
    await wait_for(lambda: SEED.bronze_role in world.roles_of(SEED.bob))
    assert "Saved" in await admin(world, ["settings"], {"trial_gets_tier_roles": False})
    await world.refresh()
    await wait_for(lambda: SEED.bronze_role not in world.roles_of(SEED.bob))
    assert SEED.bob not in await lapses(world), "a setting that takes a trial's tier role is no lapse"
    await nobody_kicked_after(world, 2, SEED.bob)


async def test_the_sweep_spares_and_forgets_the_lapse_of_a_patron_who_still_pays(world):
    """However a lapse got stored (an older version, a race), a member Patreon calls active is never kicked for it."""
    give_bot_kick_members(world)
    assert "Saved" in await admin(world, ["settings"], {"kick_after_days": 1})
    await bob_pays_bronze_but_holds_no_tier_role(world)
    await world.store.record_lapse(SEED.guild_id, SEED.bob, world.clock())
    await nobody_kicked_after(world, 2, SEED.bob)
    assert SEED.bob not in await lapses(world), "the sweep forgets it: a later lapse counts afresh"


async def test_two_hand_links_by_a_moderator_without_kick_members_never_get_a_member_kicked(world):
    """Mallory links Dave (never pledged) by hand to an unlinked paying patron (the bot gives Gold), then to a former
    patron (the bot takes Gold back): no lapse, no kick, whatever the days."""
    give_bot_kick_members(world)
    add_mallory(world)  # Manage Roles only; her top role sits above Gold and Bronze
    assert "Saved" in await admin(world, ["settings"], {"kick_after_days": 1})
    await world.refresh()  # p-alice (active, unlinked) and p-carol (former) are stored members of the campaign
    assert "Kick Members" in await admin(world, ["settings"], {"kick_after_days": 2}, MALLORY)
    text = await admin(world, ["link-user"], {"member": SEED.dave, "patreon_user_id": "p-alice"}, MALLORY)
    assert "Linked" in text, text
    await wait_for(lambda: SEED.gold_role in world.roles_of(SEED.dave))
    text = await admin(world, ["link-user"], {"member": SEED.dave, "patreon_user_id": "p-carol"}, MALLORY)
    assert "Linked" in text, text
    await wait_for(lambda: SEED.gold_role not in world.roles_of(SEED.dave))
    assert SEED.dave not in await lapses(world), "re-pointing a link by hand is no lapse"
    await nobody_kicked_after(world, 2, SEED.dave)


async def test_a_member_linked_by_hand_is_never_kicked_even_when_that_patron_cancels(world):
    """A link by hand is only an admin's word that Dave is p-alice: her cancelling takes the role he got through it,
    but kicking him on it would be that admin's decision, not Patreon's."""
    give_bot_kick_members(world)
    assert "Saved" in await admin(world, ["settings"], {"kick_after_days": 1})
    await world.refresh()
    assert "Linked" in await admin(world, ["link-user"], {"member": SEED.dave, "patreon_user_id": "p-alice"})
    await wait_for(lambda: SEED.gold_role in world.roles_of(SEED.dave))
    cancel(world, "p-alice")
    await world.refresh()
    await wait_for(lambda: SEED.gold_role not in world.roles_of(SEED.dave))
    assert SEED.dave not in await lapses(world)
    await nobody_kicked_after(world, 2, SEED.dave)


async def test_the_sweep_spares_and_forgets_the_lapse_of_a_member_linked_by_hand(world):
    give_bot_kick_members(world)
    assert "Saved" in await admin(world, ["settings"], {"kick_after_days": 1})
    await world.refresh()
    assert "Linked" in await admin(world, ["link-user"], {"member": SEED.dave, "patreon_user_id": "p-carol"})
    await world.store.record_lapse(SEED.guild_id, SEED.dave, world.clock())
    await nobody_kicked_after(world, 2, SEED.dave)
    assert SEED.dave not in await lapses(world)


async def test_a_free_member_who_loses_a_free_tiers_role_never_lapsed(world):
    """A follower of a free tier (patron_status null: never pledged) gets its role; an unmap takes it: no lapse."""
    give_bot_kick_members(world)
    assert "Saved" in await admin(world, ["settings"], {"kick_after_days": 1})
    world.patreon.add_tier(FREE_TIER, "Followers", 0)
    world.patreon.set_membership("p-dave", patron_status=None, tier_ids=[FREE_TIER])
    await world.refresh()
    assert "now get" in await admin(world, ["map"], {"tier": FREE_TIER, "role": SEED.bronze_role})
    await world.link(SEED.dave)
    await wait_for(lambda: SEED.bronze_role in world.roles_of(SEED.dave))
    assert "Removed 1" in await admin(world, ["unmap"], {"tier": FREE_TIER})
    await admin(world, ["sync"], {"dry_run": False})
    await wait_for(lambda: SEED.bronze_role not in world.roles_of(SEED.dave))
    assert SEED.dave not in await lapses(world), "someone who never pledged never lapses"
    await nobody_kicked_after(world, 2, SEED.dave)


async def bob_pays_bronze_then(world: FakeWorld, **membership: object) -> None:
    """Bob signs in holding @Bronze Patron; then Patreon reports his own pledge as `membership` says and a refresh
    takes the role."""
    await world.link(SEED.bob)
    await wait_for(lambda: SEED.bronze_role in world.roles_of(SEED.bob))
    world.patreon.set_membership("p-bob", tier_ids=[SEED.bronze_tier], **membership)  # type: ignore[arg-type]
    await world.refresh()
    await wait_for(lambda: SEED.bronze_role not in world.roles_of(SEED.bob))


async def kicked_after(world: FakeWorld, days: int, member: int) -> None:
    world.clock.advance(days=days)
    await world.refresh()
    assert (SEED.guild_id, member) in await sweep(world) and kicks(world, member)


async def test_an_active_patron_whose_own_charge_was_fraud_lapses_and_is_kicked(world):
    """Patreon still says active_patron, but his last charge is Fraud: the policy counts him as not paying (review 6,
    R6-1), so taking his role is his own entitlement ending, not an admin's change."""
    give_bot_kick_members(world)
    assert "Saved" in await admin(world, ["settings"], {"kick_after_days": 1})
    await bob_pays_bronze_then(world, patron_status="active_patron", last_charge_status="Fraud")
    assert SEED.bob in await lapses(world), "a fraudulent charge paid for nothing: his own lapse"
    await kicked_after(world, 2, SEED.bob)


async def test_an_active_patron_declined_past_the_grace_keeps_his_lapse_and_is_kicked(world):
    """Declined as declined_patron past a 3-day grace (a lapse), then Patreon retries and calls him active_patron
    with the charge still Declined: the policy treats both alike, so the sweep keeps the lapse and kicks him."""
    give_bot_kick_members(world)
    assert "Saved" in await admin(world, ["settings"], {"kick_after_days": 1, "grace_days": 3})
    declined = world.clock() - timedelta(days=5)
    await bob_pays_bronze_then(world, patron_status="declined_patron", last_charge_date=declined)
    assert SEED.bob in await lapses(world)
    world.patreon.set_membership(
        "p-bob", patron_status="active_patron", tier_ids=[SEED.bronze_tier], last_charge_status="Declined",
        last_charge_date=declined,
    )
    await world.refresh()
    assert "Would kick nobody" in await admin(world, ["kick-preview"]), "not yet: one day hasn't passed"
    assert SEED.bob in await lapses(world), "still his own payment failing: the lapse stands"
    await kicked_after(world, 2, SEED.bob)
