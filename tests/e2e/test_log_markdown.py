"""What Patreon names can do in the bot's own messages to the log channel (review 5, R5-7).

A patron chooses his Patreon name, a creator her tier titles; both reach the admins' log channel inside a message
the bot posts. Mentions can't ping there (allowed_mentions none), but Markdown rendered: a name like
`[Staff: re-authorise the bot](https://evil…)` became a masked link with the bot's authority. Every such value is
now inert text (bot/domain/dm_templates.py `plain`, as the DMs use): Markdown escaped, mentions broken, one line.
"""

from __future__ import annotations

from dataclasses import replace

from fakes.world import SEED, FakeWorld
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin

MASKED = "[Staff: the bot needs re-authorising, click here](https://evil.example/discord-oauth)"
EVIL_NAME = MASKED + " **✅ verified** ||x|| @everyone\n# Heading"
EVIL_TIER = "**Gold** [renew here](https://evil.example/pay)"


def log_lines(world: FakeWorld) -> list[str]:
    return [message.get("content", "") for message in world.discord.messages(SEED.log_channel)]


def assert_inert(line: str) -> None:
    assert "](https://evil.example" not in line.replace("\\]", ""), line  # no masked link: the brackets are escaped
    assert "\\[" in line and "\\*\\*" in line, line
    assert "@everyone" not in line and "\n" not in line, line


async def line_with(world: FakeWorld, words: str) -> str:
    await wait_for(lambda: any(words in line for line in log_lines(world)))
    return next(line for line in log_lines(world) if words in line)


async def test_a_patreon_name_can_neither_format_nor_mention_in_the_linked_line(world):
    world.patreon.add_user("p-alice", EVIL_NAME, discord_id=None)
    status, _ = await world.link(SEED.alice)
    assert status == 200
    line = await line_with(world, "linked Patreon account")
    assert line.startswith(f"<@{SEED.alice}> linked Patreon account "), "the bot's own mention still works"
    assert MASKED not in line
    assert_inert(line)


async def test_a_patreon_name_is_inert_where_a_sign_in_replaces_a_link_by_hand(world):
    text = await admin(world, ["link-user"], {"member": SEED.carol, "patreon_user_id": "p-alice"})
    assert "Linked" in text, text
    world.patreon.add_user("p-alice", EVIL_NAME, discord_id=None)
    status, _ = await world.link(SEED.alice)
    assert status == 200
    line = await line_with(world, "replaced the link by hand")
    assert MASKED not in line
    assert_inert(line)


async def test_a_tier_title_is_inert_in_the_gave_line_and_the_welcome(world):
    world.patreon.add_tier(tier_id=SEED.gold_tier, title=EVIL_TIER, amount_cents=1000)
    assert world.bot is not None
    assert (await world.bot.services.campaign.refresh_tiers())[SEED.gold_tier].title == EVIL_TIER  # as `tiers` does
    settings = await world.store.get_settings(SEED.guild_id)
    await world.store.save_settings(replace(settings, welcome_on_link=True))
    status, _ = await world.link(SEED.alice)
    assert status == 200
    for words in ("Gave @Gold Patron", "Welcome"):
        line = await line_with(world, words)
        assert EVIL_TIER not in line and "\\*\\*Gold\\*\\*" in line and "\\[renew here\\]" in line, line



async def test_a_tier_title_is_inert_in_the_now_gives_line_of_a_map(world):
    world.patreon.add_tier(tier_id=SEED.bronze_tier, title=EVIL_TIER, amount_cents=500)
    assert world.bot is not None
    await world.bot.services.campaign.refresh_tiers()
    extra = 730000000000000020
    world.guild.add_role(extra, "Supporters", position=7)
    text = await admin(world, ["map"], {"tier": SEED.bronze_tier, "role": extra})
    assert "now get" in text, text
    line = await line_with(world, "now gives")
    assert EVIL_TIER not in line and "\\*\\*Gold\\*\\*" in line and "\\[renew here\\]" in line, line
