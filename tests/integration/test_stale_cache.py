"""A grant the bot made moments ago must not be forgotten because discord.py's cache hasn't caught up."""

import pytest

from bot.sync.role_gateway import RoleChangeError
from fakes.sync_harness import GUILD, SyncHarness

GOLD = 630000000000000001
DAN = 650000000000000009


@pytest.fixture
async def harness(tmp_path):
    started = await SyncHarness(tmp_path / "bot.sqlite3").start()
    started.patreon.add_tier("2001", "Gold", 1000)
    await started.store.map_tier_role(GUILD, "2001", GOLD)
    await started.store.save_tiers(started.patreon.campaign.id, [])
    try:
        yield started
    finally:
        await started.close()


async def test_fresh_grant_missing_from_a_lagging_cache_is_kept_and_taken_back_later(harness):
    h = harness
    h.patreon.add_user("p-dan", "Dan")
    h.patreon.set_membership("p-dan", "active_patron", tier_ids=["2001"])
    h.link_member(DAN, set())
    await h.store.save_link(DAN, "p-dan", GUILD, "oauth")
    real_member_roles = h.gateway.member_roles
    lagging = {"on": False}

    async def member_roles(guild_id, user_id):
        if lagging["on"] and user_id == DAN:
            return frozenset()  # Discord's echo of our own PUT has not reached the cache yet
        return await real_member_roles(guild_id, user_id)

    h.gateway.member_roles = member_roles
    await h.deliver("members:pledge:create", "p-dan")
    await h.apply()
    assert h.guild.members[DAN] == {GOLD}

    lagging["on"] = True
    h.patreon.remove_membership("p-dan")
    await h.deliver("members:delete", "p-dan")
    await h.apply()
    lagging["on"] = False
    assert await h.store.granted_roles(GUILD, DAN) == {GOLD}, "the fresh grant is still ours"

    await h.services.refresh.run("later")
    await h.services.jobs.wait_idle(5)
    assert h.guild.members[DAN] == set(), "the next refresh takes back the role Dan no longer pays for"


def lagging_cache(h):
    """Make the bot's view of Dan's roles lag behind Discord while `lag["on"]` (our own PUT not echoed yet)."""
    real_member_roles = h.gateway.member_roles
    lag = {"on": False}

    async def member_roles(guild_id, user_id):
        if lag["on"] and user_id == DAN:
            return frozenset()
        return await real_member_roles(guild_id, user_id)

    h.gateway.member_roles = member_roles
    return lag


async def linked_dan(h):
    h.patreon.add_user("p-dan", "Dan")
    h.patreon.set_membership("p-dan", "active_patron", tier_ids=["2001"])
    h.link_member(DAN, set())
    await h.store.save_link(DAN, "p-dan", GUILD, "oauth")


async def test_a_regrant_after_a_hand_removal_is_fresh_again(harness):
    h = harness
    await linked_dan(h)
    lag = lagging_cache(h)
    await h.deliver("members:pledge:create", "p-dan")
    await h.apply()
    await h.store._db.execute("UPDATE role_grants SET granted_at = '2000-01-01T00:00:00.000000Z'")  # granted long ago
    await h.store._db.commit()
    h.guild.members[DAN] = set()  # a moderator removes Gold by hand; Dan still pays, so the bot gives it back
    await h.deliver("members:pledge:update", "p-dan")
    await h.apply()
    assert h.guild.members[DAN] == {GOLD}
    lag["on"] = True  # seconds later, before the cache shows the re-grant, Dan cancels
    h.patreon.remove_membership("p-dan")
    await h.deliver("members:delete", "p-dan")
    await h.apply()
    lag["on"] = False
    assert await h.store.granted_roles(GUILD, DAN) == {GOLD}, "the re-grant is still known to be ours"


async def test_a_failed_repeat_of_a_grant_does_not_forget_it(harness):
    h = harness
    await linked_dan(h)
    lag = lagging_cache(h)
    real_set = h.gateway.set_member_roles
    failures = {"left": 0}

    async def set_member_roles(*args, **kwargs):
        if failures["left"]:
            failures["left"] -= 1
            raise RoleChangeError("Discord failed (503)", permanent=False)
        return await real_set(*args, **kwargs)

    h.gateway.set_member_roles = set_member_roles
    await h.deliver("members:pledge:create", "p-dan")
    await h.apply()
    assert h.guild.members[DAN] == {GOLD}
    lag["on"], failures["left"] = True, 1  # a second delivery re-adds Gold on a stale view and Discord fails
    await h.deliver("members:update", "p-dan")
    await h.apply()
    lag["on"] = False
    assert await h.store.granted_roles(GUILD, DAN) == {GOLD}
