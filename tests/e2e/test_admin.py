"""The admin's experience end to end: /patreon-admin against the fake Discord with the real bot."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.guild_settings import GUILD_SETTINGS, SettingKind
from bot.guild_admin.service import INLINE_SYNC_LIMIT
from fakes.world import SEED
from tests.e2e.polling import wait_for

MANAGE_ROLES = 1 << 28
MOD_ROLE = 730000000000000010
MOD_USER = 760000000000000001


async def admin(world, path, options=None, user=SEED.owner_id, guild=SEED.guild_id, **kwargs) -> str:
    """Run an admin command (in the seeded server unless `guild` says); all the text it answered, once it finished.

    discord.py dispatches `app_command_completion` when a command has returned (every part of a long answer
    sent); a refused command instead sets `Interaction.command_failed` and gets the error handler's one message.
    """
    record = await world.discord.invoke_slash(guild, user, "patreon-admin", path, options=options or {}, **kwargs)
    # Both waiters are registered before the bot can see the interaction (invoke_slash only queues it).
    completed = asyncio.ensure_future(
        world.bot.wait_for("app_command_completion", check=lambda done, _command: done.id == record.id, timeout=10)
    )
    try:
        interaction = await world.bot.wait_for("interaction", check=lambda seen: seen.id == record.id, timeout=5)
        await wait_for(
            lambda: (
                completed.done()
                or (interaction.command_failed and any(text_of(response) for response in record.responses))
            )
        )
    finally:
        completed.cancel()
    await wait_for(lambda: any(text_of(response) for response in record.responses))
    assert record.ephemeral, "admin answers are only for the admin"
    return "\n".join(text_of(response) for response in record.responses)


def text_of(response: dict) -> str:
    """Callbacks carry their message under `data`; followups and edits carry it at the top."""
    return response.get("content") or (response.get("data") or {}).get("content") or ""


async def test_admin_group_is_registered_with_manage_roles_default(world):
    commands = {command["name"]: command for command in world.discord.registered_commands()}
    assert "patreon" in commands and "patreon-admin" in commands
    assert int(commands["patreon-admin"]["default_member_permissions"]) == MANAGE_ROLES
    assert commands["patreon"].get("default_member_permissions") is None
    subcommands = {option["name"] for option in commands["patreon-admin"]["options"]}
    assert subcommands == {
        "tiers", "map", "unmap", "settings", "sync", "link-user", "unlink-user", "check", "panel", "patrons",
        "dm-preview", "stats", "comp", "uncomp", "kick-preview", "connect", "disconnect", "webhook",
    }


async def test_member_without_manage_roles_is_refused_server_side(world):
    with pytest.raises(PermissionError):
        await world.discord.invoke_slash(SEED.guild_id, SEED.bob, "patreon-admin", ["tiers"])
    text = await admin(world, ["tiers"], user=SEED.bob, bypass_default_permissions=True)
    assert "Manage Roles" in text


async def test_tiers_lists_campaign_tiers_with_their_roles(world):
    text = await admin(world, ["tiers"])
    assert "**Gold** (`2001`, 10.00 USD" in text and f"<@&{SEED.gold_role}>" in text
    assert "**Bronze** (`2002`, 5.00 USD" in text and f"<@&{SEED.bronze_role}>" in text
    assert "Free" in text and "no role" in text


async def test_tier_autocomplete_offers_the_campaign_tiers(world):
    choices = await world.discord.autocomplete(
        SEED.guild_id, SEED.owner_id, "patreon-admin", ["map"], focused="tier", options={"tier": "go"}
    )
    assert choices == [{"name": "Gold (10.00 USD)", "value": "2001"}]


async def test_map_then_sync_preview_then_apply(world):
    await world.link(SEED.bob)
    assert world.roles_of(SEED.bob) == {SEED.bronze_role}
    extra = 730000000000000020
    world.guild.add_role(extra, "Supporters", position=7)
    text = await admin(world, ["map"], {"tier": SEED.bronze_tier, "role": extra})
    assert "now get" in text and f"<@&{extra}>" in text
    calls_before = len(world.discord.calls_matching("PATCH", r"/members/\d+$"))

    preview = await admin(world, ["sync"])
    assert f"<@{SEED.bob}>: +@Supporters" in preview
    assert "would change" in preview
    assert world.roles_of(SEED.bob) == {SEED.bronze_role}, "a preview changes nothing"
    assert len(world.discord.calls_matching("PATCH", r"/members/\d+$")) == calls_before

    applied = await admin(world, ["sync"], {"dry_run": False})
    assert "1 changed" in applied
    assert world.roles_of(SEED.bob) == {SEED.bronze_role, extra}
    again = await admin(world, ["sync"], {"dry_run": False})
    assert "0 changed" in again


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        (SEED.above_bot_role, "above the bot's highest role"),
        (SEED.managed_role, "managed by an integration"),
        (SEED.guild_id, "@everyone"),
    ],
)
async def test_map_refuses_roles_the_bot_cannot_manage(world, role, expected):
    text = await admin(world, ["map"], {"tier": SEED.gold_tier, "role": role})
    assert expected in text
    assert role not in (await world.store.get_tier_roles(SEED.guild_id)).roles_by_tier[SEED.gold_tier]


async def test_map_refuses_unknown_tier(world):
    text = await admin(world, ["map"], {"tier": "999999", "role": SEED.vip_role})
    assert "isn't one of this campaign's tiers" in text
    assert "999999" not in (await world.store.get_tier_roles(SEED.guild_id)).roles_by_tier


async def bot_loses_manage_roles(world) -> None:
    """Someone takes Manage Roles from the bot's role; wait until the bot has seen it."""
    world.guild.set_bot_permissions(manage_roles=False)
    gateway = world.bot.services.gateway
    await wait_for(lambda: gateway.missing_permissions(SEED.guild_id) is not None)


async def test_changes_refused_when_bot_lacks_manage_roles(world):
    await bot_loses_manage_roles(world)
    text = await admin(world, ["map"], {"tier": SEED.gold_tier, "role": SEED.vip_role})
    assert "Manage Roles" in text
    assert SEED.vip_role not in (await world.store.get_tier_roles(SEED.guild_id)).roles_by_tier[SEED.gold_tier]
    text = await admin(world, ["settings"], {"grace_days": 2})
    assert "Manage Roles" in text
    assert (await world.store.get_settings(SEED.guild_id)).decline_grace_days == 7


@pytest.mark.parametrize("inline_limit", [25, 0], ids=["inline", "queued"])
async def test_real_sync_refused_when_bot_lacks_manage_roles(world, monkeypatch, inline_limit):
    monkeypatch.setattr("bot.guild_admin.service.INLINE_SYNC_LIMIT", inline_limit)
    await world.link(SEED.bob)
    extra = 730000000000000020
    world.guild.add_role(extra, "Supporters", position=7)
    await admin(world, ["map"], {"tier": SEED.bronze_tier, "role": extra})
    assert "1 would change" in await admin(world, ["sync"])
    await bot_loses_manage_roles(world)
    calls_before = len(world.role_calls())

    text = await admin(world, ["sync"], {"dry_run": False})
    assert text.strip() == "❌ The bot lacks the Manage Roles permission; give its role Manage Roles."
    await world.settle()
    assert await world.store.pending_role_jobs() == [], "nothing handed to the queue either"
    assert len(world.role_calls()) == calls_before
    assert world.roles_of(SEED.bob) == {SEED.bronze_role}


async def test_links_unchanged_when_bot_lacks_manage_roles(world):
    await world.link(SEED.alice)
    await bot_loses_manage_roles(world)
    text = await admin(world, ["unlink-user"], {"member": SEED.alice})
    assert text.strip() == "❌ The bot lacks the Manage Roles permission; give its role Manage Roles."
    link = await world.store.get_link_by_discord(SEED.alice)
    assert link is not None and link.patreon_user_id == "p-alice", "the link survives a refused unlink"
    assert world.roles_of(SEED.alice) == {SEED.vip_role, SEED.gold_role}
    text = await admin(world, ["link-user"], {"member": SEED.bob, "patreon_user_id": "p-bob"})
    assert text.strip() == "❌ The bot lacks the Manage Roles permission; give its role Manage Roles."
    assert await world.store.get_link_by_discord(SEED.bob) is None
    text = await admin(world, ["unmap"], {"tier": SEED.gold_tier})
    assert "Manage Roles" in text
    assert SEED.gold_role in (await world.store.get_tier_roles(SEED.guild_id)).roles_by_tier[SEED.gold_tier]


async def test_unmap_and_sync_take_back_only_bot_granted_roles(world):
    extra = 730000000000000020
    world.guild.add_role(extra, "Supporters", position=7)
    await admin(world, ["map"], {"tier": SEED.bronze_tier, "role": extra})
    await admin(world, ["map"], {"tier": SEED.gold_tier, "role": extra})
    world.guild.member(SEED.alice).role_ids.add(extra)  # a moderator gave Alice Supporters by hand
    await world.link(SEED.alice)  # Gold: Supporters is desired but already held, so not ours
    await world.link(SEED.bob)  # Bronze: the bot grants Supporters to Bob
    assert extra in world.roles_of(SEED.bob) and extra in world.roles_of(SEED.alice)

    await admin(world, ["unmap"], {"tier": SEED.bronze_tier, "role": extra})
    text = await admin(world, ["unmap"], {"tier": SEED.gold_tier, "role": extra})
    assert "Removed 1 mapping" in text
    preview = await admin(world, ["sync"])
    assert f"<@{SEED.bob}>: −@Supporters" in preview
    assert f"<@{SEED.alice}>" not in preview, "Alice's hand-given Supporters is not the bot's to take"
    await admin(world, ["sync"], {"dry_run": False})
    assert extra not in world.roles_of(SEED.bob), "bot-granted role taken back"
    assert extra in world.roles_of(SEED.alice), "hand-given role survives unmap and sync"
    assert world.roles_of(SEED.alice) == {SEED.vip_role, SEED.gold_role, extra}


async def test_unmap_of_nothing_says_so(world):
    text = await admin(world, ["unmap"], {"tier": "424242"})
    assert "no such mapping" in text


async def test_settings_view_and_change(world):
    text = await admin(world, ["settings"])
    assert "Grace days after a declined payment: 7" in text
    assert f"Log channel: <#{SEED.log_channel}>" in text
    text = await admin(
        world,
        ["settings"],
        {"grace_days": 3, "role_mode": "highest", "former_role": SEED.vip_role, "lifetime_dollars": 50},
    )
    assert "Saved" in text and "Grace days after a declined payment: 3" in text
    settings = await world.store.get_settings(SEED.guild_id)
    assert settings.decline_grace_days == 3
    assert settings.role_mode.value == "highest"
    assert settings.former_patron_role_id == SEED.vip_role
    assert settings.lifetime_threshold_cents == 5000
    await admin(world, ["settings"], {"clear": "former_role"})
    assert (await world.store.get_settings(SEED.guild_id)).former_patron_role_id is None


ROLE_SPECS = [spec for spec in GUILD_SETTINGS if spec.kind is SettingKind.ROLE]


@pytest.mark.parametrize("spec", ROLE_SPECS, ids=[spec.option for spec in ROLE_SPECS])
async def test_settings_refuse_a_role_above_the_bot(world, spec):
    text = await admin(world, ["settings"], {spec.option: SEED.above_bot_role})
    assert "above the bot's highest role" in text
    assert getattr(await world.store.get_settings(SEED.guild_id), spec.name) is None


async def test_former_patron_role_from_settings_reaches_a_former_patron(world):
    await admin(world, ["settings"], {"former_role": SEED.vip_role})
    await world.link(SEED.carol)
    assert world.roles_of(SEED.carol) == {SEED.vip_role}


async def test_check_reports_hierarchy_and_unmapped_tiers(world):
    healthy = await admin(world, ["check"])
    assert "✅ The bot has Manage Roles." in healthy
    assert "⚠️ Tiers without a role: Free." in healthy
    assert "✅ No member is stuck" in healthy
    world.guild.update_role(SEED.gold_role, position=99)  # someone drags Gold above the bot
    gateway = world.bot.services.gateway
    await wait_for(lambda: SEED.gold_role in gateway.unassignable_roles(SEED.guild_id, frozenset({SEED.gold_role})))
    text = await admin(world, ["check"])
    assert "Gold Patron is above the bot's highest role" in text


async def test_check_counts_this_servers_queued_role_changes(world):
    later = datetime.now(UTC) + timedelta(days=1)  # not due yet, so they stay queued while the check runs
    other_guild = 710000000000000099
    await world.store.enqueue_role_jobs([(SEED.guild_id, SEED.carol), (SEED.guild_id, SEED.dave)], "test", later)
    await world.store.enqueue_role_jobs([(other_guild, SEED.carol)], "test", later)
    text = await admin(world, ["check"])
    assert "✅ 2 member(s) queued for role changes." in text


async def test_link_user_and_unlink_user_by_admin(world):
    await world.link(SEED.alice)
    text = await admin(world, ["unlink-user"], {"member": SEED.alice})
    assert "Unlinked" in text and "@Gold Patron" in text
    assert world.roles_of(SEED.alice) == {SEED.vip_role}
    text = await admin(world, ["link-user"], {"member": SEED.alice, "patreon_user_id": "p-alice"})
    assert "roles are up to date" in text
    assert world.roles_of(SEED.alice) == {SEED.vip_role, SEED.gold_role}
    link = await world.store.get_link_by_discord(SEED.alice)
    assert link is not None and link.source == "admin"
    text = await admin(world, ["unlink-user"], {"member": SEED.dave})
    assert "isn't linked" in text


async def test_link_user_never_takes_a_patreon_account_from_its_owner(world):
    await world.link(SEED.alice)
    text = await admin(world, ["link-user"], {"member": SEED.bob, "patreon_user_id": "p-alice"})
    assert f"already linked to <@{SEED.alice}>" in text
    assert (await world.store.get_link_by_patreon("p-alice")).discord_user_id == SEED.alice
    assert SEED.gold_role in world.roles_of(SEED.alice) and SEED.gold_role not in world.roles_of(SEED.bob)


async def test_sync_reports_roles_it_cannot_change(world):
    await world.link(SEED.alice)
    world.guild.member(SEED.alice).role_ids.discard(SEED.gold_role)
    world.guild.update_role(SEED.gold_role, position=99)
    gateway = world.bot.services.gateway
    await wait_for(lambda: SEED.gold_role in gateway.unassignable_roles(SEED.guild_id, frozenset({SEED.gold_role})))
    text = await admin(world, ["sync"])
    assert f"<@{SEED.alice}>: ⚠️@Gold Patron (@Gold Patron is above the bot's highest role" in text


async def test_a_role_manager_who_is_not_owner_can_administer(world):
    world.guild.add_role(MOD_ROLE, "Mods", position=20, permissions=MANAGE_ROLES)
    world.guild.add_member(MOD_USER, username="mod", roles=[MOD_ROLE])
    text = await admin(world, ["tiers"], user=MOD_USER)
    assert "**Gold**" in text


async def test_log_channel_gets_a_line_for_link_and_mapping(world):
    await world.link(SEED.bob)
    await admin(world, ["map"], {"tier": SEED.gold_tier, "role": SEED.vip_role})
    await wait_for(lambda: len(world.discord.messages(SEED.log_channel)) >= 3)
    lines = [message["content"] for message in world.discord.messages(SEED.log_channel)]
    assert any("Gave @Bronze Patron" in line and f"<@{SEED.bob}>" in line for line in lines)
    assert any("linked Patreon account Bob" in line for line in lines)
    assert any("Tier Gold now gives @VIP" in line for line in lines)


async def test_linked_member_who_rejoins_gets_roles_at_once(world):
    await world.link(SEED.bob)
    world.guild.remove_member(SEED.bob)
    await wait_for(lambda: world.bot.get_guild(SEED.guild_id).get_member(SEED.bob) is None)  # the bot saw him leave
    world.guild.add_member(SEED.bob, username="bob")
    await wait_for(lambda: SEED.bronze_role in world.roles_of(SEED.bob))


async def test_welcome_message_is_off_by_default_and_posted_when_on(world):
    welcome_channel = 740000000000000002
    world.guild.add_text_channel(welcome_channel, name="welcome")
    await world.link(SEED.bob)  # the page comes back after the link's posts, any welcome included
    assert any("linked Patreon account Bob" in m["content"] for m in world.discord.messages(SEED.log_channel))
    assert not any("Welcome" in m["content"] for m in world.discord.messages(SEED.log_channel))
    await admin(world, ["settings"], {"welcome": True, "welcome_channel": welcome_channel})
    await world.link(SEED.alice)
    await wait_for(lambda: len(world.discord.messages(welcome_channel)) == 1)
    message = world.discord.messages(welcome_channel)[0]["content"]
    assert f"<@{SEED.alice}>" in message and "**Gold**" in message
    await world.link(SEED.alice)  # linking the same account again is not new
    await world.link(SEED.carol)  # a former patron is not thanked for supporting
    assert any("linked Patreon account Carol" in m["content"] for m in world.discord.messages(SEED.log_channel))
    assert len(world.discord.messages(welcome_channel)) == 1


async def test_check_lists_members_whose_roles_could_not_be_set(world):
    await world.link(SEED.dave)
    world.fail_role_changes(SEED.dave, status=403, count=10, code=50013, message="Missing Permissions")
    world.patreon.set_membership("p-dave", "active_patron", tier_ids=[SEED.gold_tier])
    await world.send_webhook("members:pledge:create", "p-dave")
    await wait_for(lambda: any("Could not update" in m["content"] for m in world.discord.messages(SEED.log_channel)))
    text = await admin(world, ["check"])
    assert f"⚠️ 1 member(s) whose roles couldn't be set: <@{SEED.dave}>:" in text
    assert "Missing Permissions" in text


async def test_a_large_sync_is_handed_to_the_durable_queue(world):
    fans = [770000000000000000 + n for n in range(INLINE_SYNC_LIMIT + 1)]  # one more than a sync applies inline
    for n, user_id in enumerate(fans):
        world.guild.add_member(user_id, username=f"fan{n}")
        world.patreon.add_user(f"p-fan{n}", f"Fan {n}")
        world.patreon.set_membership(f"p-fan{n}", "active_patron", tier_ids=[SEED.bronze_tier])
        await world.store.save_link(user_id, f"p-fan{n}", SEED.guild_id, "admin")
    assert (await world.refresh()).ok  # their memberships are stored and their Bronze given
    extra = 730000000000000020
    world.guild.add_role(extra, "Supporters", position=7)
    await admin(world, ["map"], {"tier": SEED.bronze_tier, "role": extra})
    text = await admin(world, ["sync"], {"dry_run": False})
    assert f"queued {len(fans)} for role changes" in text
    await world.settle()
    assert all(extra in world.roles_of(user_id) for user_id in fans)
    assert await world.store.pending_role_jobs() == []
