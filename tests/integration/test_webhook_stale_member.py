"""A 404 for a member id other than the stored one: the stored membership is re-read, not trusted blindly.

The story (found by tests/e2e/test_webhook_property.py): the store holds membership X; Patreon deletes X and that
webhook is lost; the patron pledges again as Y and Y is deleted too. The 404 for Y used to keep X (its member id
differs), so X went on paying for a tier and the role stayed with nobody paying, until the next full refresh.
"""

from datetime import timedelta

import pytest

from bot.domain.models import MembershipSnapshot, PatronStatus
from fakes.discord import FakeDiscord
from fakes.sync_harness import GUILD, SyncHarness

BRONZE_ROLE, VIP_ROLE = 630000000000000002, 630000000000000003
ANN = 650000000000000001


@pytest.fixture
async def harness(tmp_path):
    """Ann (Discord) linked to p-ann, a Bronze patron whose membership X the bot has stored and acted on."""
    h = await SyncHarness(tmp_path / "bot.sqlite3").start()
    h.patreon.add_tier("2002", "Bronze", 500)
    h.patreon.add_user("p-ann", "Ann")
    h.patreon.set_membership("p-ann", "active_patron", tier_ids=["2002"])
    await h.store.map_tier_role(GUILD, "2002", BRONZE_ROLE)
    await h.store.save_tiers(h.patreon.campaign.id, [])
    h.link_member(ANN, {VIP_ROLE})
    await h.store.save_link(ANN, "p-ann", GUILD, "oauth")
    await h.deliver("members:create", "p-ann")
    await h.apply()
    assert h.guild.members[ANN] == {VIP_ROLE, BRONZE_ROLE}
    try:
        yield h
    finally:
        await h.close()


def fetches_of(h: SyncHarness, member_id: str) -> int:
    return sum(1 for _m, path, _q in h.patreon.calls if path == f"/api/oauth2/v2/members/{member_id}")


def member_id_of(h: SyncHarness) -> str:
    return h.patreon.campaign.member_by_user["p-ann"]


async def lose_x_then_pledge_and_delete_y(h: SyncHarness, *, y_create_arrives: bool) -> tuple[str, str]:
    """Steps 2-4: X deleted (webhook lost); Y pledged and deleted; Y's delete (maybe its late create) delivered."""
    x = member_id_of(h)
    h.patreon.remove_membership("p-ann")  # X's members:delete is lost
    h.patreon.set_membership("p-ann", "active_patron", tier_ids=["2002"])
    y = member_id_of(h)
    assert y != x, "a re-pledge is a new membership with a new member id"
    create_y = h.patreon.render_member_webhook_body("members:pledge:create", "p-ann")
    h.patreon.remove_membership("p-ann")
    if y_create_arrives:
        await h.post(create_y, trigger="members:pledge:create")  # delivered late, after Y is already gone
    await h.deliver("members:delete", "p-ann")
    return x, y


@pytest.mark.parametrize("y_create_arrives", [False, True], ids=["y-create-lost", "y-create-late"])
async def test_a_404_for_a_new_member_forgets_the_stored_one_patreon_also_deleted(harness, y_create_arrives):
    x, y = await lose_x_then_pledge_and_delete_y(harness, y_create_arrives=y_create_arrives)
    await harness.apply()  # no refresh: the webhook alone must put it right
    assert await harness.store.get_membership("p-ann") is None, "X is gone at Patreon too"
    assert harness.guild.members[ANN] == {VIP_ROLE}, "the Bronze role goes; the hand-given VIP stays"
    assert fetches_of(harness, y) == 1 and fetches_of(harness, x) == 2, "one extra call: X re-read once"
    assert await harness.store.webhook_event_counts() == {"done": 3 if y_create_arrives else 2}  # with X's create


async def test_a_late_listing_page_cannot_bring_back_either_membership(harness):
    x, y = await lose_x_then_pledge_and_delete_y(harness, y_create_arrives=False)
    before_404 = harness.clock() - timedelta(seconds=1)
    await harness.apply()
    assert await harness.store.get_membership("p-ann") is None
    # A refresh page read before the 404s but written after them: it may show X (read before X went) or Y.
    for member_id in (x, y):
        stale = MembershipSnapshot(
            member_id,
            harness.patreon.campaign.id,
            "p-ann",
            patron_status=PatronStatus.ACTIVE,
            entitled_tier_ids=("2002",),
            observed_at=before_404,
        )
        assert await harness.store.save_memberships([stale]) == 0, member_id
    assert await harness.store.get_membership("p-ann") is None


async def test_a_404_for_an_old_member_keeps_and_refreshes_the_stored_one_that_still_exists(harness):
    old_body = harness.patreon.render_member_webhook_body("members:delete", "p-ann")
    harness.patreon.remove_membership("p-ann")
    harness.patreon.set_membership("p-ann", "active_patron", tier_ids=["2002"])  # renewed as Y
    await harness.deliver("members:create", "p-ann")
    await harness.apply()
    y = member_id_of(harness)
    stored = await harness.store.get_membership("p-ann")
    assert stored is not None and stored.member_id == y
    harness.patreon.set_membership("p-ann", "declined_patron", tier_ids=["2002"])  # Y changed; its webhook is late
    await harness.post(old_body, trigger="members:delete")  # the old X: 404
    await harness.apply()
    kept = await harness.store.get_membership("p-ann")
    assert kept is not None and kept.member_id == y, "the stored membership still exists: it is the current truth"
    assert kept.patron_status is PatronStatus.DECLINED, "and what Patreon says of it now is stored"
    assert harness.guild.members[ANN] == {VIP_ROLE, BRONZE_ROLE}, "a decline keeps its roles for the grace days"


async def test_a_404_for_the_stored_member_costs_no_extra_call(harness):
    x = member_id_of(harness)
    harness.patreon.remove_membership("p-ann")
    await harness.deliver("members:delete", "p-ann")
    await harness.apply()
    assert await harness.store.get_membership("p-ann") is None
    assert harness.guild.members[ANN] == {VIP_ROLE}
    assert fetches_of(harness, x) == 2, "the create's fetch and the delete's: nothing re-read"


async def test_patreon_down_on_the_re_read_removes_nothing_and_retries(harness):
    x, _y = await lose_x_then_pledge_and_delete_y(harness, y_create_arrives=False)
    harness.patreon.fail_next(rf"/members/{x}$", status=500, count=100)
    await harness.apply()
    stored = await harness.store.get_membership("p-ann")
    assert stored is not None and stored.member_id == x, "an upstream failure never removes roles"
    assert harness.guild.members[ANN] == {VIP_ROLE, BRONZE_ROLE}
    assert (await harness.store.webhook_event_counts()).get("pending") == 1
    harness.patreon.faults.clear()
    harness.clock.advance(hours=1)
    await harness.apply()
    assert await harness.store.get_membership("p-ann") is None
    assert harness.guild.members[ANN] == {VIP_ROLE}


# ------------------------------------------------------------------ the fake Discord's public door for gateway lag
# (FakeWorld.hold_member_updates, which the webhook property test uses, goes through it instead of a private part.)


def test_fake_discord_holds_one_members_updates_until_released():
    discord = FakeDiscord()
    discord.hold_member_updates(GUILD, ANN)
    held = {"guild_id": str(GUILD), "user": {"id": str(ANN)}, "roles": [str(BRONZE_ROLE)]}
    other = {"guild_id": str(GUILD), "user": {"id": str(ANN + 1)}, "roles": []}
    discord.dispatch("GUILD_MEMBER_UPDATE", held)
    discord.dispatch("GUILD_MEMBER_UPDATE", other)
    assert discord.held_member_updates == 1, "only the held member's update waits"
    assert discord.release_member_updates() == 1
    assert discord.held_member_updates == 0
    discord.dispatch("GUILD_MEMBER_UPDATE", held)
    assert discord.held_member_updates == 0, "after the release nothing is held"
