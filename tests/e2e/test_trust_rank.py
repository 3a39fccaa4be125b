"""Admins can't make the bot hand out roles above their own rank (issue 8, item 2), against the real bot and fakes.

Discord lets a member with Manage Roles give only roles strictly below their highest role; the owner is exempt and
Administrator is not (bot/guild_admin/rank.py). Mallory has Manage Roles, but her top role, Staff, sits below
Senior Staff (Kick + Ban); both sit below the bot's role, so only the rank rule stands between her and Senior Staff.
"""

import pytest

from bot.domain.guild_settings import GUILD_SETTINGS, SettingKind
from fakes.world import SEED
from tests.e2e.test_admin import admin

MANAGE_ROLES = 1 << 28
ADMINISTRATOR = 1 << 3
KICK_AND_BAN = (1 << 1) | (1 << 2)
STAFF = 730000000000000040
SENIOR = 730000000000000041
MALLORY = 760000000000000040
REFUSED = "You can't make the bot give @Senior Staff: Discord only lets you hand out roles below your highest role"
ROLE_SPECS = [spec for spec in GUILD_SETTINGS if spec.kind is SettingKind.ROLE]


def add_mallory(world, permissions: int = MANAGE_ROLES) -> None:
    world.guild.add_role(STAFF, "Staff", position=20, permissions=permissions)
    world.guild.add_role(SENIOR, "Senior Staff", position=30, permissions=KICK_AND_BAN)
    world.guild.add_member(MALLORY, username="mallory", roles=[STAFF])


async def mapped_roles(world) -> dict[str, frozenset[int]]:
    return (await world.store.get_tier_roles(SEED.guild_id)).roles_by_tier


@pytest.mark.parametrize("permissions", [MANAGE_ROLES, MANAGE_ROLES | ADMINISTRATOR], ids=["manage-roles", "admin"])
async def test_a_moderator_cannot_map_a_tier_to_a_role_at_or_above_her_own(world, permissions):
    add_mallory(world, permissions)
    before = await mapped_roles(world)
    text = await admin(world, ["map"], {"tier": SEED.gold_tier, "role": SENIOR}, MALLORY)
    assert text.strip() == f"❌ {REFUSED} (@Staff)."
    text = await admin(world, ["map"], {"tier": SEED.gold_tier, "role": STAFF}, MALLORY)
    assert "can't make the bot give @Staff" in text, "her own top role is not below her"
    assert await mapped_roles(world) == before, "nothing changed"
    # A role below her is hers to hand out.
    assert "now get" in await admin(world, ["map"], {"tier": SEED.bronze_tier, "role": SEED.vip_role}, MALLORY)


@pytest.mark.parametrize("spec", ROLE_SPECS, ids=[spec.option for spec in ROLE_SPECS])
async def test_a_moderator_cannot_set_a_policy_role_above_her_own(world, spec):
    add_mallory(world)
    text = await admin(world, ["settings"], {spec.option: SENIOR, "grace_days": 3}, MALLORY)
    assert text.strip() == f"❌ {REFUSED} (@Staff)."
    settings = await world.store.get_settings(SEED.guild_id)
    assert getattr(settings, spec.name) is None and settings.decline_grace_days == 7, "nothing changed"
    assert "Saved" in await admin(world, ["settings"], {spec.option: SEED.vip_role}, MALLORY)


@pytest.mark.parametrize(
    "change",
    [
        {"lifetime_dollars": 0},
        {"grace_days": 60},
        {"keep_until_paid_through": False},
        {"role_mode": "highest"},
        {"currency": "EUR"},  # which amounts are compared with tier prices (a valid code: the rank rule answers)
    ],
    ids=lambda change: next(iter(change)),
)
async def test_a_moderator_cannot_change_who_gets_a_role_above_her(world, change):
    add_mallory(world)
    # The owner gives Senior Staff for $100 of lifetime support; $0 would hand it to every patron, Mallory included.
    assert "Saved" in await admin(world, ["settings"], {"lifetime_role": SENIOR, "lifetime_dollars": 100})
    before = await world.store.get_settings(SEED.guild_id)
    text = await admin(world, ["settings"], change, MALLORY)
    assert text.strip() == (
        "❌ You can't change who gets @Senior Staff: Discord only lets you hand out roles below your highest role "
        "(@Staff)."
    )
    assert await world.store.get_settings(SEED.guild_id) == before, "nothing changed"
    # What only says where lines go is hers to change.
    assert "Saved" in await admin(world, ["settings"], {"welcome": True}, MALLORY)


async def test_a_moderator_cannot_link_by_hand_while_the_policy_hands_out_a_role_above_her(world):
    add_mallory(world)
    # The owner maps Gold to Senior Staff (the owner may: see the next test).
    assert "now get" in await admin(world, ["map"], {"tier": SEED.gold_tier, "role": SENIOR})
    # Mallory links herself to Alice's Patreon (Gold, not linked yet): Discord would never let her give Senior Staff.
    text = await admin(world, ["link-user"], {"member": MALLORY, "patreon_user_id": "p-alice"}, MALLORY)
    assert text.strip() == f"❌ {REFUSED} (@Staff)."
    # Bronze gives only Bronze Patron today, but the link would give Senior Staff the day Bob moves to Gold.
    text = await admin(world, ["link-user"], {"member": MALLORY, "patreon_user_id": "p-bob"}, MALLORY)
    assert REFUSED in text
    assert await world.store.get_link_by_discord(MALLORY) is None
    assert world.roles_of(MALLORY) == {STAFF}

    # Once nothing the policy hands out is above her, linking by hand is hers to do.
    await admin(world, ["unmap"], {"tier": SEED.gold_tier, "role": SENIOR})
    text = await admin(world, ["link-user"], {"member": SEED.bob, "patreon_user_id": "p-bob"}, MALLORY)
    assert "roles are up to date" in text
    assert world.roles_of(SEED.bob) == {SEED.bronze_role}


async def test_the_owner_is_exempt_from_the_rank_rule(world):
    add_mallory(world)
    assert world.guild.member(SEED.owner_id).role_ids == set(), "the owner holds no role at all"
    assert "now get" in await admin(world, ["map"], {"tier": SEED.gold_tier, "role": SENIOR})
    assert "Saved" in await admin(world, ["settings"], {"former_role": SENIOR})
    text = await admin(world, ["link-user"], {"member": SEED.alice, "patreon_user_id": "p-alice"})
    assert "roles are up to date" in text
    assert SENIOR in world.roles_of(SEED.alice)
