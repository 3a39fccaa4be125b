"""Helpers of the connect tests: a world whose .env has no campaign, the owner's and Eve's servers, and the
`/patreon-admin connect` click-through in a person's own browser."""

from __future__ import annotations

import re
from html import unescape

from bot.domain.guild_settings import GuildSettings
from fakes.browser import Browser
from fakes.discord.interactions import InteractionRecord
from fakes.world import SEED, FakeWorld, button_url, page_text
from tests.e2e.backend import postgres_server

EVE = 750000000000000077
BEN = 750000000000000078  # a patron of Eve's campaign, in both servers
OTHER = 710000000000000077
B_ROLE = 730000000000000077
OTHER_LOG = 740000000000000077
CAMPAIGN_B = "9100001"
B_TIER = "9200001"
MANAGE_GUILD = 1 << 5
MANAGE_ROLES = 1 << 28
_FORM = re.compile(r'<form method="post" action="([^"]+)">(.*?)</form>', re.S)
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
_RADIO = re.compile(r'<input type="radio" name="campaign" value="([^"]+)"')


async def no_env_world(tmp_path, *, start: bool = True) -> FakeWorld:
    """The seeded world without .env creator tokens, plus Eve's server and campaign B (tier, patron Ben)."""
    world = FakeWorld(tmp_path / "bot.sqlite3", postgres_server=postgres_server())
    world.env_campaign = False
    await world.start(start_bot=False)
    del world.patreon.webhooks.hooks[world.webhook.id]  # nobody made a webhook by hand in Patreon's portal
    other = world.discord.add_guild(OTHER, name="Eve's Server", owner_id=EVE)
    other.add_role(B_ROLE, "Eve Patron", position=10)
    other.add_member(EVE, username="eve")
    other.add_text_channel(OTHER_LOG, name="patreon-log")
    for guild in (other, world.guild):
        guild.add_member(BEN, username="ben")
    other.add_member(SEED.alice, username="alice")
    campaign = world.patreon.add_creator("p-eve", "Eve", CAMPAIGN_B)
    campaign.add_tier(B_TIER, "Eve's tier", 700)
    campaign.add_user("p-ben", "Ben", None)
    campaign.set_membership("p-ben", patron_status="active_patron", tier_ids=[B_TIER])
    await world.seed_store()
    store = await world.open_store()
    try:  # Eve's admin choices, made before she connects (mapping needs the tiers, so only the switch here)
        await store.save_settings(GuildSettings(guild_id=OTHER, enabled=True, log_channel_id=OTHER_LOG))
    finally:
        await store.close()
    if start:
        await world.start_bot()
    return world


def browser(world: FakeWorld, username: str) -> Browser:
    """A person's own browser, signed in to (fake) Discord as `username` when Discord asks."""
    key = hash(username)
    if key not in world.browsers:
        world.browsers[key] = Browser(world.discord.base_url, username)
    return world.browsers[key]


async def connect_button(
    world: FakeWorld, user: int, guild: int = SEED.guild_id, *, bypass: bool = False
) -> tuple[InteractionRecord, str]:
    """Run `/patreon-admin connect` and return the interaction and the URL behind its button ('' if none);
    `bypass`: as someone Discord wouldn't even show the command to (its default permissions)."""
    interaction = await world.discord.invoke_slash(
        guild, user, "patreon-admin", ["connect"], bypass_default_permissions=bypass
    )
    await interaction.wait_response(timeout=10)
    assert interaction.ephemeral
    try:
        return interaction, button_url(interaction.components)
    except AssertionError:
        return interaction, ""


async def connect(
    world: FakeWorld, user: int, username: str, creator: str, guild: int = SEED.guild_id
) -> tuple[int, str]:
    """The whole connect: the command, Discord sign-in as `username`, Patreon approval by `creator`; the page."""
    _, url = await connect_button(world, user, guild)
    world.patreon.approve_next_as(creator)
    status, html = await browser(world, username).open(url)
    return status, html


async def connect_both(world: FakeWorld) -> None:
    """The creator connects the seeded server to campaign A, Eve hers (OTHER) to campaign B: two campaigns."""
    for user, name, creator, guild in (
        (SEED.owner_id, "creator", world.patreon.owner_id, SEED.guild_id),
        (EVE, "eve", "p-eve", OTHER),
    ):
        status, html = await connect(world, user, name, creator, guild)
        assert status == 200, page_text(html)


async def link_in(world: FakeWorld, guild: int, user: int, username: str, patreon_id: str) -> tuple[int, str]:
    """`/patreon link` in `guild`, then the person's own browser through Discord and Patreon."""
    world.patreon.next_authorizing_user = patreon_id
    interaction = await world.discord.invoke_slash(guild, user, "patreon", ["link"])
    await interaction.wait_response(timeout=10)
    return await browser(world, username).open(button_url(interaction.components))


def picker(html: str) -> tuple[str, dict[str, str], list[str]]:
    """The campaign picker's form: its action, hidden fields, and the campaign ids offered."""
    found = _FORM.search(html)
    assert found is not None, page_text(html)
    fields = {name: unescape(value) for name, value in _HIDDEN.findall(found.group(2))}
    return found.group(1), fields, _RADIO.findall(found.group(2))


def hook_uri(world: FakeWorld, campaign_id: str) -> str:
    return f"{world.bot_url}/patreon/webhook/{campaign_id}"


def hooks_at(world: FakeWorld, campaign_id: str) -> list:
    return [hook for hook in world.patreon.webhooks.hooks.values() if hook.uri == hook_uri(world, campaign_id)]
