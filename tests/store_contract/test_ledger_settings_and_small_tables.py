"""Contract: the grant ledger, settings and tier maps, facts, panels and invitations, comps and lapses, the DM
outbox, daily counts and Linked Roles' push queue."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from bot.domain.comps import Comp
from bot.domain.guild_settings import GuildSettings, RoleMode
from bot.domain.models import TokenPair
from bot.store.daily_counts import TierCount
from bot.store.dm_outbox import DM_BLOCKED, DM_PENDING, DM_SENT
from bot.store.panels import PanelRecord

T0 = datetime(2026, 11, 1, tzinfo=UTC)
G1, G2 = 900_000_000_000_000_001, 900_000_000_000_000_002
ANN, BOB = 310_000_000_000_000_001, 310_000_000_000_000_002
GOLD, SILVER = 700_000_000_000_000_001, 700_000_000_000_000_002


async def test_the_ledger_records_what_the_bot_granted_and_a_regrant_restarts_its_clock(store):
    await store.record_grants(G1, ANN, [GOLD, SILVER], "linked", at=T0)
    await store.record_grants(G2, ANN, [GOLD], "linked", at=T0)
    await store.record_grants(G1, ANN, [GOLD], "tier change", at=T0 + timedelta(hours=1))
    assert await store.grant_times(G1, ANN) == {GOLD: T0 + timedelta(hours=1), SILVER: T0}
    await store.forget_grants(G1, ANN, [SILVER])
    assert await store.granted_roles(G1, ANN) == {GOLD}
    assert await store.granted_roles(G1, BOB) == frozenset()
    assert await store.users_with_grants(G1) == [ANN]
    assert await store.grants_in_guild(G2) == {ANN: frozenset({GOLD})}
    assert await store.grants_of_users(G1, [ANN, BOB]) == {ANN: frozenset({GOLD})}
    assert await store.grant_holders_without_link(G1) == {ANN}
    await store.save_link(ANN, "p1", G2, "admin")  # linked by hand in the other server: still no link here
    assert await store.grant_holders_without_link(G1) == {ANN}
    assert await store.grant_holders_without_link(G2) == set()


async def test_settings_tier_maps_and_facts(store):
    assert await store.get_settings(G1) == GuildSettings(guild_id=G1)
    changed = GuildSettings(guild_id=G1, enabled=True, decline_grace_days=3, role_mode=RoleMode.HIGHEST)
    await store.save_settings(changed)
    await store.save_settings(changed)
    assert await store.get_settings(G1) == changed
    assert await store.map_tier_role(G2, "gold", GOLD)
    assert not await store.map_tier_role(G2, "gold", GOLD)
    assert await store.map_tier_role(G2, "gold", SILVER) and await store.map_tier_role(G2, "silver", SILVER)
    assert (await store.get_tier_roles(G2)).roles_by_tier == {"gold": {GOLD, SILVER}, "silver": {SILVER}}
    assert await store.unmap_tier_role(G2, "gold") == 2
    assert await store.configured_guild_ids() == [G1, G2]
    await store.set_fact("last_refresh", {"ok": True, "members": 3})
    await store.set_fact("last_refresh", {"ok": False})
    assert await store.get_fact("last_refresh") == {"ok": False}
    assert await store.get_fact("missing") is None


async def test_one_panel_per_server_and_one_invitation_per_member(store):
    await store.save_panel(PanelRecord(G1, 11, 12, "Link up", None))
    await store.save_panel(PanelRecord(G1, 11, 13))
    await store.save_panel(PanelRecord(G2, 21, 22))
    assert await store.get_panel(G1) == PanelRecord(G1, 11, 13)
    assert not await store.forget_panel(G1, 12), "an older message id leaves the newer panel alone"
    assert await store.forget_panel(G1, 13) and await store.get_panel(G1) is None
    assert await store.claim_link_invitation(G1, ANN)
    assert not await store.claim_link_invitation(G1, ANN)
    assert await store.claim_link_invitation(G2, ANN)


async def test_comps_are_active_until_they_end_once_and_the_first_lapse_stands(store):
    comp = Comp(G1, ANN, GOLD, T0 + timedelta(days=7), "contest", BOB, T0)
    await store.save_comp(comp)
    assert await store.active_comps(G1, ANN, T0 + timedelta(days=1)) == [comp]
    assert await store.guild_comps(G1, T0 + timedelta(days=8)) == {}
    assert await store.next_comp_expiry() == comp.expires_at
    [due] = await store.due_comps(T0 + timedelta(days=8))
    assert await store.end_comps([due], T0 + timedelta(days=8), "expired") == [due]
    assert await store.end_comps([due], T0 + timedelta(days=8), "expired") == []
    await store.save_comp(comp)  # renewed
    assert (await store.get_comp(G1, ANN, GOLD)).state == "active"
    await store.record_lapse(G1, ANN, T0)
    await store.record_lapse(G1, ANN, T0 + timedelta(days=1))
    assert await store.lapses_before(G1, T0 + timedelta(days=2)) == {ANN: T0}
    await store.clear_lapse(G1, ANN)
    assert await store.lapses_before(G1, T0 + timedelta(days=2)) == {}


async def test_the_same_dm_is_queued_once_and_a_block_is_remembered(store):
    assert await store.queue_dm(G1, ANN, "declined", "charge-1", {"tier": "Gold"}, T0)
    assert not await store.queue_dm(G1, ANN, "declined", "charge-1", {"tier": "Gold"}, T0)
    assert await store.queue_dm(G1, BOB, "declined", "charge-1", {}, T0)
    [first, second] = await store.due_dms(T0)
    assert first.params == {"tier": "Gold"} and first.id < second.id
    await store.mark_dm_sending(first.id, T0)
    await store.finish_dm(first.id, DM_SENT, T0)
    await store.retry_dm_at(second.id, T0 + timedelta(minutes=5), "503")
    assert await store.next_dm_due() == T0 + timedelta(minutes=5)
    await store.finish_dm(second.id, DM_BLOCKED, T0 + timedelta(minutes=5), "50007")
    assert await store.dms_blocked_since(BOB, T0) and not await store.dms_blocked_since(ANN, T0)
    assert await store.dm_states(ANN) == [(G1, ANN, "declined", DM_SENT)]
    assert [state for *_, state in await store.dm_states()] == [DM_SENT, DM_BLOCKED]
    assert DM_PENDING not in {state for *_, state in await store.dm_states()}


async def test_a_days_count_is_written_once(store):
    day = date(2026, 11, 1)
    counts = [TierCount("", "", 10, 4), TierCount("t1", "Gold", 6, 3), TierCount("t2", "Silver", 4, 1)]
    assert await store.record_day_count(G1, day, counts)
    assert not await store.record_day_count(G1, day, [TierCount("", "", 99, 99)])
    [stored] = await store.day_counts(G1, day)
    assert stored.total == TierCount("", "", 10, 4) and [c.tier_id for c in stored.tiers] == ["", "t1", "t2"]


async def test_linked_roles_pushes_wait_until_done_and_a_revoked_user_drops_out(store):
    pair = TokenPair("discord-access", "discord-refresh", T0 + timedelta(days=7), ("role_connections.write",))
    await store.connect_role_connection(ANN, pair, T0)
    assert await store.want_push(ANN, {"tier": "2"}, "ann", T0)
    assert not await store.want_push(BOB, {"tier": "1"}, "bob", T0), "no connection, nothing queued"
    [due] = await store.due_pushes(T0)
    assert due.wanted == {"tier": "2"}
    await store.push_later(ANN, "429", T0 + timedelta(seconds=30), count=False)
    assert await store.next_push_due() == T0 + timedelta(seconds=30)
    await store.push_done(ANN, {"tier": "2"}, T0 + timedelta(seconds=30))
    done = await store.role_connection(ANN)
    assert done.pushed == {"tier": "2"} and done.wanted is None and done.attempts == 0
    await store.revoke_role_connection(ANN, "invalid_grant", T0 + timedelta(minutes=1))
    assert (await store.role_connection(ANN)).revoked and await store.active_role_connections() == []
    assert await store.get_tokens(f"discord:{ANN}") is None
