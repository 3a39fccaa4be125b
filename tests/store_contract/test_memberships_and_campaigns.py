"""Contract: snapshots (newer wins, unchanged members skipped by hash), tombstones against late listing pages,
campaign scoping of memberships and tiers, campaigns and server bindings, re-keying migrated rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.models import MembershipSnapshot, PatronStatus, Tier
from bot.store import CREATOR_SUBJECT
from bot.store.campaigns import DISCONNECTED, UNKNOWN_CAMPAIGN, campaign_token_subject
from bot.store.codec import snapshot_hash

T0 = datetime(2026, 11, 1, tzinfo=UTC)
G1, G2 = 900_000_000_000_000_001, 900_000_000_000_000_002
ANN = 310_000_000_000_000_001


def member(user: str, at: datetime, status: PatronStatus = PatronStatus.ACTIVE, campaign: str = "c1", **more):
    return MembershipSnapshot(f"m-{user}", campaign, user, patron_status=status, observed_at=at, **more)


async def test_every_field_round_trips_and_an_older_look_never_overwrites_a_newer(store):
    full = member(
        "p1", T0 + timedelta(hours=1), PatronStatus.DECLINED, full_name="Ann", last_charge_date=T0,
        currently_entitled_amount_cents=500, entitled_tier_ids=("t1", "t2"), social_discord_id=ANN, is_gifted=True,
    )
    assert await store.save_membership(full)
    assert not await store.save_membership(member("p1", T0))
    assert await store.get_membership("p1") == full
    assert await store.get_membership("p1", "c2") is None
    async with store._db.execute("SELECT snapshot_hash FROM memberships WHERE patreon_user_id = 'p1'") as cursor:
        assert bytes((await cursor.fetchone())[0]) == snapshot_hash(full)


async def test_a_refresh_page_writes_only_the_members_patreon_describes_differently(store):
    assert await store.save_memberships([member(f"p{i}", T0) for i in range(5)], campaign_id="c1") == 5
    later = T0 + timedelta(minutes=15)
    page = [member(f"p{i}", later) for i in range(5)]
    page[2] = member("p2", later, PatronStatus.FORMER)
    written = await store.save_membership_page(page, "c1")
    assert [snapshot.patreon_user_id for snapshot in written] == ["p2"]
    assert (await store.get_membership("p1", "c1")).observed_at == T0
    assert await store.membership_count("c1") == 5
    assert await store.patreon_users_by_member_id(["m-p3", "m-zz"], "c1") == {"m-p3": "p3"}
    assert set(await store.memberships_of(["p1", "p4", "nobody"], "c1")) == {"p1", "p4"}


async def test_a_listing_hash_is_kept_only_with_the_snapshot_read_from_its_bytes(store):
    """The refresh skips a member unread when the stored listing hash is its bytes' (bot/sync/page_changes.py):
    so a hash is written only with the snapshot read from those bytes, any other write clears it, and one remembered
    later is taken only while the stored snapshot is still the one it was compared with."""
    later = T0 + timedelta(minutes=15)
    page = [member("p1", T0), member("p2", T0), member("p3", T0, campaign="c2")]
    await store.save_membership_page(page[:2], "c1", {"p1": b"bytes-p1", "p2": b"bytes-p2"})
    await store.save_membership_page(page[2:], "c2")
    looks = await store.listing_looks("c1", ["p1", "p2", "p3", None])
    assert looks == {"p1": (snapshot_hash(page[0]), b"bytes-p1"), "p2": (snapshot_hash(page[1]), b"bytes-p2")}
    assert await store.listing_looks("c2", ["p3"]) == {"p3": (snapshot_hash(page[2]), None)}

    rewritten = member("p1", later, PatronStatus.FORMER)  # a webhook's re-fetch: not read from the listing
    assert await store.save_membership(rewritten, "c1")
    assert (await store.listing_looks("c1", ["p1"]))["p1"] == (snapshot_hash(rewritten), None)

    await store.remember_listing_hashes("c1", [
        (page[0], snapshot_hash(page[0]), b"stale"),  # compared with the snapshot the webhook replaced: refused
        (page[1], snapshot_hash(page[1]), b"bytes-p2-spelt-anew"),
        (page[2], snapshot_hash(page[2]), b"another-campaign"),  # not a member of c1
    ])  # fmt: skip
    looks = await store.listing_looks("c1", ["p1", "p2"])
    assert looks["p1"][1] is None and looks["p2"][1] == b"bytes-p2-spelt-anew"
    assert (await store.listing_looks("c2", ["p3"]))["p3"][1] is None
    await store.remember_listing_hashes("c1", [])
    assert await store.listing_looks("c1", []) == {}
    assert await store.listing_hashes("c1") == {"p1": None, "p2": b"bytes-p2-spelt-anew"}
    assert await store.listing_hashes("c2") == {"p3": None} and await store.listing_hashes("c9") == {}


async def test_every_stored_listing_hash_is_read_whatever_the_chunks_and_a_page_looks_up_its_users(store):
    """The refresh reads a campaign's listing hashes once a listing, a chunk at a time along the key, and looks up
    a page's users in one query (`PAGE_CHUNK`, bot/store/bulk.py), more a chunk at a time: every stored user is
    answered once, in any order, and another campaign's never."""
    stored = [member(f"p{i:04}", T0) for i in range(2300)]
    await store.save_membership_page(stored, "c1", {s.patreon_user_id: f"h{i}".encode() for i, s in enumerate(stored)})
    await store.save_membership_page([member("p0001", T0, campaign="c2")], "c2")
    expected = {f"p{i:04}": f"h{i}".encode() for i in range(2300)}
    for chunk in (1, 7, 1000, 2300, 10_000):
        assert await store.listing_hashes("c1", chunk) == expected, chunk
    assert await store.listing_hashes("c2", 1) == {"p0001": None}
    asked = [*[f"p{i:04}" for i in range(2400)][::-1], None]
    looks = await store.listing_looks("c1", asked)
    assert looks.keys() == expected.keys() and all(looks[user][1] == expected[user] for user in looks)
    assert looks["p0007"][0] == snapshot_hash(stored[7])


async def test_the_sweep_reads_a_campaign_a_chunk_at_a_time_and_finds_every_absentee(store):
    await store.save_memberships([member(f"p{i}", T0) for i in range(7)], campaign_id="c1")
    await store.save_memberships([member(f"p{i}", T0, campaign="c2") for i in range(3)], campaign_id="c2")
    seen_since = member("p5", T0 + timedelta(hours=1), PatronStatus.FORMER)  # a webhook's look since it began
    await store.save_memberships([seen_since], campaign_id="c1")
    before = T0 + timedelta(minutes=1)
    for chunk in (1, 2, 3, 10_000):
        gone = await store.memberships_not_listed({"p0", "p3"}, before, "c1", chunk=chunk)
        assert gone == ["p1", "p2", "p4", "p6"], chunk
    assert sorted(await store.memberships_not_listed({"p0"}, before)) == ["p1", "p2", "p3", "p4", "p6"]


async def test_a_tombstone_keeps_a_late_page_from_bringing_a_membership_back_but_not_a_renewal(store):
    now = datetime.now(UTC)  # tombstones last a day of real time
    await store.save_membership(member("p1", now))
    assert await store.delete_membership_observed_before("p1", now + timedelta(minutes=2), "m-p1", campaign_id="c1")
    assert await store.save_memberships([member("p1", now + timedelta(minutes=1))], campaign_id="c1") == 0
    assert await store.get_membership("p1") is None
    renewed = MembershipSnapshot("m-new", "c1", "p1", patron_status=PatronStatus.ACTIVE, observed_at=now)
    assert await store.save_memberships([renewed], campaign_id="c1") == 1, "another membership id: a renewal"
    assert not await store.delete_membership_observed_before("p1", now + timedelta(minutes=3), "m-p1")


async def test_a_complete_listing_forgets_only_its_campaigns_absentees(store):
    await store.save_memberships([member("p1", T0), member("p2", T0)], campaign_id="c1")
    await store.save_memberships([member("p3", T0, campaign="c2")], campaign_id="c2")
    await store.save_link(ANN, "p2", None, "oauth")
    assert await store.memberships_not_listed({"p1"}, T0 + timedelta(minutes=1), "c1") == ["p2"]
    assert await store.delete_memberships_except({"p1"}, T0 + timedelta(minutes=1), "c1") == ["p2"]
    assert await store.links_without_membership(G1, "c1") == {ANN}
    assert [s.patreon_user_id for s in await store.stored_memberships()] == ["p1", "p3"]
    assert [s.patreon_user_id for s in await store.stored_memberships("c2")] == ["p3"]
    await store.delete_membership("p3", "c2")
    assert await store.membership_count() == 1


async def test_a_sweep_told_whom_the_listing_missed_forgets_only_those_seen_before_it_began(store):
    """The refresh names the stored members its listing didn't show (`Listing.stored_not_listed`): of those, only
    ones last seen before the listing began go; the listed, a look since, another campaign's never."""
    await store.save_memberships([member(f"p{i}", T0) for i in range(4)], campaign_id="c1")
    await store.save_memberships([member("p5", T0 + timedelta(hours=1))], campaign_id="c1")  # a webhook's look since
    await store.save_memberships([member("p2", T0, campaign="c2")], campaign_id="c2")
    before = T0 + timedelta(minutes=1)
    among = ["p1", "p2", "p3", "p5", "p9"]  # p9: forgotten meanwhile; p3 listed after all
    assert sorted(await store.delete_memberships_except({"p0", "p3"}, before, "c1", among)) == ["p1", "p2"]
    assert sorted(s.patreon_user_id for s in await store.stored_memberships("c1")) == ["p0", "p3", "p5"]
    assert [s.patreon_user_id for s in await store.stored_memberships("c2")] == ["p2"]
    many = [f"q{i:04}" for i in range(2300)]  # more than one look-up's worth of ids
    await store.save_memberships([member(user, T0) for user in many], campaign_id="c1")
    assert sorted(await store.delete_memberships_except(set(), before, "c1", many)) == many


async def test_memberships_read_a_chunk_at_a_time_are_every_one_once_in_order(store):
    # Two campaigns share user ids, so a chunk can end between p2 of c1 and p2 of c2 (the keyset takes both).
    await store.save_memberships([member(f"p{i}", T0) for i in range(5)], campaign_id="c1")
    await store.save_memberships([member(f"p{i}", T0, campaign="c2") for i in (1, 2, 7)], campaign_id="c2")
    every = [(s.patreon_user_id, s.campaign_id) for s in await store.stored_memberships()]
    for chunk in (1, 2, 3, 1000):
        read = [(s.patreon_user_id, s.campaign_id) async for s in store.iter_stored_memberships(chunk=chunk)]
        assert sorted(read) == sorted(every) and len(read) == 8, chunk
        of_c2 = [s.patreon_user_id async for s in store.iter_stored_memberships("c2", chunk=chunk)]
        assert of_c2 == ["p1", "p2", "p7"], chunk
    assert [s async for s in store.iter_stored_memberships("none", chunk=2)] == []


async def test_tiers_belong_to_their_campaign(store):
    await store.save_tiers("c1", [Tier("t2", "Gold", 1000, 3, True), Tier("t1", "Bronze", 300, None, None)])
    await store.save_tiers("c2", [Tier("t9", "Other", 100, 1, False)])
    await store.save_tiers("c1", [Tier("t2", "Gold", 1200, 4, True), Tier("t1", "Bronze", 300, None, None)])
    tiers = await store.get_tiers("c1")
    assert list(tiers) == ["t1", "t2"] and tiers["t2"] == Tier("t2", "Gold", 1200, 4, True)
    assert tiers["t1"].published is None
    assert set(await store.get_tiers()) == {"t1", "t2", "t9"}
    assert (await store.get_tiers("c2"))["t9"].published is False


async def test_campaigns_keep_their_webhook_secret_sealed_and_servers_follow_one_each(store):
    subject = campaign_token_subject("c2")
    await store.save_campaign("c1", token_subject=CREATOR_SUBJECT, source="env", webhook_secret="s1", at=T0)
    await store.save_campaign("c2", token_subject=subject, source="oauth", webhook_secret="s2", webhook_id="w2")
    await store.save_campaign("c2", token_subject=subject, source="oauth")  # a re-connect keeps the secret
    record = await store.get_campaign("c2")
    assert record.webhook_secret == "s2" and record.webhook_id == "w2" and record.state == "active"
    async with store._db.execute("SELECT webhook_secret FROM campaigns ORDER BY campaign_id") as cursor:
        assert all(row[0] not in ("s1", "s2") for row in await cursor.fetchall())
    with pytest.raises(ValueError):
        await store.bind_guild(G1, "nope", ANN)
    await store.bind_guild(G1, "c1", None)
    await store.bind_guild(G2, "c1", ANN)
    await store.bind_guild(G2, "c2", ANN)  # a server follows one campaign: the binding moves
    assert await store.guild_bindings() == {G1: "c1", G2: "c2"}
    assert (await store.guild_binding(G2)).bound_by == ANN
    await store.set_campaign_state("c2", "revoked")
    assert [c.campaign_id for c in await store.campaign_records()] == ["c1", "c2"]
    assert await store.forget_campaign("c2") == [G2]
    assert await store.guild_bindings() == {G1: "c1", G2: DISCONNECTED}, "a disconnected server follows nothing"
    assert await store.get_campaign("c2") is None
    assert await store.unbind_guild(G1) == "c1"
    assert await store.guild_bindings() == {G1: DISCONNECTED, G2: DISCONNECTED}
    assert await store.guild_binding(G1) is None and await store.disconnected_guilds() == {G1, G2}
    await store.bind_guild(G1, "c1", ANN)  # connecting again clears the mark
    assert await store.guild_bindings() == {G1: "c1", G2: DISCONNECTED}
    assert await store.disconnected_guilds() == {G2}


async def test_rows_migrated_without_a_campaign_are_re_keyed_and_the_real_ones_win(store):
    await store.save_memberships([member("p1", T0), member("p2", T0)], campaign_id=UNKNOWN_CAMPAIGN)
    newer = member("p2", T0 + timedelta(hours=1), PatronStatus.FORMER)
    await store.save_membership(newer, "c1")
    await store.save_tiers(UNKNOWN_CAMPAIGN, [Tier("t1", "Bronze", 300, None, None)])
    assert await store.adopt_unknown_campaign("c1") == 2
    assert await store.membership_count(UNKNOWN_CAMPAIGN) == 0
    assert (await store.get_membership("p2", "c1")) == newer
    assert (await store.get_membership("p1", "c1")).observed_at == T0
    assert list(await store.get_tiers("c1")) == ["t1"]
