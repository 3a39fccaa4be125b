"""`/patreon link`, `/patreon unlink`, `/patreon status`, `/patreon refresh`: the patron's side, thin over bot.accounts.

The panel's buttons (cogs/panel.py) answer with the same helpers, for the interaction's own user and server.
"""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.accounts.link_flow import LinkRefused
from bot.accounts.patron_replies import LinkOffer, offer_link, unlink_reply
from bot.accounts.self_refresh import SelfRefresh
from bot.accounts.status_report import member_status
from bot.discord_io.client import PatronBot
from bot.sync.campaign import CampaignService


def link_button(offer: LinkOffer) -> discord.ui.View:
    """The one link button the answer carries (a URL button: it sends the bot nothing when pressed)."""
    view = discord.ui.View()
    view.add_item(discord.ui.Button(label="Link Patreon", url=offer.url, style=discord.ButtonStyle.link))
    return view


async def answer_link(bot: PatronBot, interaction: discord.Interaction) -> None:
    """Ephemeral: the link button for whoever this interaction is from, in its server, or the one-line refusal."""
    assert interaction.guild_id is not None
    services = bot.services
    try:
        offer = await offer_link(services.link_flow, services.store, interaction.guild_id, interaction.user.id)
    except LinkRefused as refused:
        await interaction.response.send_message(str(refused), ephemeral=True)
        return
    await interaction.response.send_message(offer.text, view=link_button(offer), ephemeral=True)


async def status_text(bot: PatronBot, interaction: discord.Interaction) -> str:
    """`/patreon status` for whoever this interaction is from, in its server."""
    assert interaction.guild_id is not None
    services = bot.services
    text = await member_status(
        services.store, services.reconcile, services.gateway.role_name, interaction.guild_id, interaction.user.id
    )
    return text[:2000]


@app_commands.guild_only()
class Patron(commands.GroupCog, group_name="patreon", group_description="Link your Patreon to get your roles"):
    def __init__(self, bot: PatronBot, self_refresh: SelfRefresh) -> None:
        self.bot = bot
        self.self_refresh = self_refresh
        super().__init__()

    @app_commands.command(name="link", description="Link your Patreon account to get your patron roles")
    async def link(self, interaction: discord.Interaction) -> None:
        await answer_link(self.bot, interaction)

    @app_commands.command(name="unlink", description="Unlink your Patreon account and remove the roles it gave")
    async def unlink(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        text = await unlink_reply(self.bot.services.linking, interaction.user.id)
        await interaction.followup.send(text, ephemeral=True)

    @app_commands.command(name="status", description="What's linked, your tier, and why you have each role")
    async def status(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await interaction.followup.send(await status_text(self.bot, interaction), ephemeral=True)

    @app_commands.command(name="refresh", description="Re-read your Patreon membership now and update your roles")
    async def refresh(self, interaction: discord.Interaction) -> None:
        """Always the invoking user's own membership, in the server the command came from: there is no option."""
        assert interaction.guild_id is not None
        await interaction.response.defer(ephemeral=True, thinking=True)
        text = await self.self_refresh.refresh(interaction.guild_id, interaction.user.id)
        await interaction.followup.send(text[:2000], ephemeral=True)


def build_self_refresh(bot: PatronBot) -> SelfRefresh:
    """One per process (it holds the cooldowns), from the services the wiring built."""
    services = bot.services

    async def campaign_of(guild_id: int) -> CampaignService | None:
        return await services.reconcile.campaign_for(guild_id)  # the campaign this server follows

    return SelfRefresh(
        services.patreon,
        services.store,
        campaign_of,
        services.reconcile,
        services.gateway.role_name,
        services.clock,
    )


async def setup(bot: PatronBot) -> None:
    await bot.add_cog(Patron(bot, build_self_refresh(bot)))
