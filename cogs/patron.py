"""`/patreon link`, `/patreon unlink`, `/patreon status`: the patron's side, thin over bot.accounts.linking."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.accounts.link_flow import LinkRefused
from bot.accounts.status_report import member_status
from bot.discord_io.client import PatronBot


@app_commands.guild_only()
class Patron(commands.GroupCog, group_name="patreon", group_description="Link your Patreon to get your roles"):
    def __init__(self, bot: PatronBot) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(name="link", description="Link your Patreon account to get your patron roles")
    async def link(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        try:
            url = await self.bot.services.link_flow.button_url(interaction.guild_id, interaction.user.id)
        except LinkRefused as refused:
            await interaction.response.send_message(str(refused), ephemeral=True)
            return
        view = discord.ui.View()
        view.add_item(discord.ui.Button(label="Link Patreon", url=url, style=discord.ButtonStyle.link))
        existing = await self.bot.services.store.get_link_by_discord(interaction.user.id)
        already = (
            f"You're already linked (Patreon user `{existing.patreon_user_id}`); signing in again refreshes it, "
            "or switches to another Patreon account. "
            if existing
            else ""
        )
        await interaction.response.send_message(
            f"{already}Press the button to sign in with Discord, then Patreon. It works only for you, in one "
            "browser, once, for 15 minutes. Your roles arrive as soon as you're back.",
            view=view,
            ephemeral=True,
        )

    @app_commands.command(name="unlink", description="Unlink your Patreon account and remove the roles it gave")
    async def unlink(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        result = await self.bot.services.linking.unlink(interaction.user.id)
        if not result.was_linked:
            await interaction.followup.send("Your Discord account isn't linked to Patreon.", ephemeral=True)
            return
        await interaction.followup.send(
            f"Unlinked. {result.describe()} Roles you got any other way were left alone.", ephemeral=True
        )

    @app_commands.command(name="status", description="What's linked, your tier, and why you have each role")
    async def status(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        await interaction.response.defer(ephemeral=True, thinking=True)
        services = self.bot.services
        text = await member_status(
            services.store, services.reconcile, services.gateway.role_name, interaction.guild_id, interaction.user.id
        )
        await interaction.followup.send(text[:2000], ephemeral=True)


async def setup(bot: PatronBot) -> None:
    await bot.add_cog(Patron(bot))
