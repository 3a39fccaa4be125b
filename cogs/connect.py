"""`/patreon-admin connect`, `disconnect` and `webhook repair`, attached to the admin group.

Stricter than the group's Manage Roles: choosing which campaign a server follows (and what the bot does at
Patreon for it) is for the server owner or an admin with Manage Server, read from the permissions Discord put
in the interaction and the server's owner id.
"""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.accounts.connect_flow import ConnectRefused
from bot.discord_io.client import PatronBot
from bot.guild_admin.connect import ConnectionRefused

#: What the README's command table says of these commands (bot/discord_io/command_reference.py).
WHO_MAY = {"who_may": "Owner or Manage Server"}
ONLY_MANAGERS = "Only the server owner or an admin with the Manage Server permission can do this."


def may_manage_server(interaction: discord.Interaction) -> bool:
    guild = interaction.guild
    if guild is not None and (guild.owner_id == interaction.user.id or interaction.permissions.manage_guild):
        return True
    raise app_commands.CheckFailure(ONLY_MANAGERS)


def connect_commands(bot: PatronBot) -> list[app_commands.Command[Any, ..., None] | app_commands.Group]:
    from cogs.admin import guild_id, invoker_rank, reply  # the admin cog's helpers (cogs.admin imports this module)

    @app_commands.command(
        name="connect", description="Follow a Patreon campaign here (its creator approves)", extras=WHO_MAY
    )
    async def connect(interaction: discord.Interaction) -> None:
        guild = guild_id(interaction)
        services = bot.services
        name = interaction.guild.name if interaction.guild is not None else ""
        rank_refusal = await services.connections.connect_refusal(guild, invoker_rank(interaction))
        if rank_refusal is not None:
            await reply(interaction, rank_refusal)
            return
        try:
            url = await services.connect_flow.button_url(guild, name, interaction.user.id)
        except ConnectRefused as refusal:
            await reply(interaction, str(refusal))
            return
        binding = await services.store.guild_binding(guild)
        lines = [
            "Open this in your browser: sign in to Discord as yourself, then the campaign's creator approves on "
            "Patreon (they can sit with you, or run this command themselves). The link works once, for 15 minutes."
        ]
        if binding is not None:
            lines.append(
                f"This server follows campaign {binding.campaign_id}: approving it again reconnects it; to follow "
                "another campaign, run `/patreon-admin disconnect` first."
            )
        view = discord.ui.View()
        view.add_item(discord.ui.Button(label="Connect on Patreon", url=url))
        await interaction.response.send_message(
            "\n".join(lines), view=view, ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
        )

    @app_commands.command(
        name="disconnect", description="Stop following the connected Patreon campaign here", extras=WHO_MAY
    )
    @app_commands.describe(take_back_roles="Also take back every role the bot gave here (hand-given roles stay)")
    async def disconnect(interaction: discord.Interaction, take_back_roles: bool = False) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        guild = guild_id(interaction)
        connections = bot.services.connections
        parts: list[str] = []
        invoker = invoker_rank(interaction)
        try:
            refusal = await connections.take_back_refusal(guild, invoker) if take_back_roles else None
            if refusal is not None:  # refused before the disconnect, so nothing changes
                raise ConnectionRefused(refusal)
            if await bot.services.store.guild_binding(guild) is not None or not take_back_roles:
                done = await connections.disconnect(guild, invoker)
                parts.append(done.describe(offer_take_back=not take_back_roles))
            if take_back_roles:
                parts.append((await connections.take_back_roles(guild, invoker)).describe())
        except ConnectionRefused as refusal:
            parts.append(str(refusal))
        text = " ".join(parts)
        await reply(interaction, text)

    webhook = app_commands.Group(name="webhook", description="The connected campaign's webhook at Patreon")

    @webhook.command(
        name="repair", description="Re-create the campaign's webhook at Patreon, or unpause it", extras=WHO_MAY
    )
    async def repair(interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            text = await bot.services.connections.repair_webhook(guild_id(interaction))
        except ConnectionRefused as refusal:
            text = str(refusal)
        await reply(interaction, text)

    return [connect, disconnect, webhook]


async def attach(bot: PatronBot, admin: commands.GroupCog) -> None:
    """Called by cogs.admin's setup: the commands join the admin group with their own, stricter check."""
    group = admin.app_command
    if group is None:
        raise RuntimeError("the admin cog has no command group")
    for command in connect_commands(bot):
        if isinstance(command, app_commands.Group):
            for sub in command.commands:
                if isinstance(sub, app_commands.Command):
                    sub.add_check(may_manage_server)
        else:
            command.add_check(may_manage_server)
        group.add_command(command)
