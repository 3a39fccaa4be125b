"""A grant the bot made moments ago must not be forgotten because discord.py's cache hasn't caught up."""

import pytest

from tests.fakes.sync_harness import GUILD, SyncHarness

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
