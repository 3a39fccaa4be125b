"""`/patreon-admin comp`, `uncomp` and `kick-preview`, attached to the admin group, and the two workers behind them
(the comp expiry sweep and kick on lapse), started once discord.py is ready like the other background work."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord_io.client import PatronBot
from bot.guild_admin.lapse_kicks import KickSweep


def comp_commands(bot: PatronBot) -> list[app_commands.Command[Any, ..., None]]:
    from cogs.admin import guild_id, invoker_rank, reply  # the admin cog's helpers (cogs.admin imports this module)

    @app_commands.command(name="comp", description="Give a member a tier's role for some days, whatever they pledge")
    @app_commands.describe(
        member="Who gets it",
        role="A role one of this server's tiers gives",
        days="How many days (1 to 3650); again on an active comp adds the days",
        reason="Shown in the log channel, status and the patrons report",
    )
    async def comp(
        interaction: discord.Interaction,
        member: discord.Member,
        role: discord.Role,
        days: app_commands.Range[int, 1, 3650],
        reason: app_commands.Range[str, 1, 200] | None = None,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        answer = await bot.services.comps.comp(
            guild_id(interaction), member.id, role.id, days, reason, invoker_rank(interaction)
        )
        await reply(interaction, f"✅ {answer}")

    @app_commands.command(name="uncomp", description="Take back a comp before it ends")
    @app_commands.describe(member="Whose comp", role="The comped role")
    async def uncomp(interaction: discord.Interaction, member: discord.Member, role: discord.Role) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        answer = await bot.services.comps.uncomp(guild_id(interaction), member.id, role.id, invoker_rank(interaction))
        await reply(interaction, f"✅ {answer}")

    @app_commands.command(name="kick-preview", description="Who kick on lapse would remove now, and who it spares")
    async def kick_preview(interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        guild = guild_id(interaction)
        refusal = await bot.services.admin.participation_refusal(guild)
        if refusal is not None:
            await reply(interaction, refusal)
            return
        days = (await bot.services.store.get_settings(guild)).kick_after_days
        await reply(interaction, describe_preview(await bot.services.lapse_kicks.preview(guild), days))

    return [comp, uncomp, kick_preview]


async def comp_lines(bot: PatronBot, guild_id: int) -> list[str]:
    """The server's active comps for `check`, one phrase each."""
    services = bot.services
    active = await services.store.guild_comps(guild_id, services.clock())
    return [
        f"<@{comp.user_id}> @{services.gateway.role_name(guild_id, comp.role_id)} ({comp.describe()})"
        for comps in active.values()
        for comp in comps
    ]


def kick_problem(bot: PatronBot, guild_id: int) -> str | None:
    return bot.role_gateway.missing_kick_permission(guild_id)


def describe_preview(sweep: KickSweep, days: int) -> str:
    head = (
        f"**Kick on lapse**: members whose entitlement ended more than {days} day(s) ago"
        if days
        else ("**Kick on lapse** is off.")
    )
    lines = [head]
    if sweep.blocked is not None and days:
        lines.append(f"Nobody is kicked now: {sweep.blocked}.")
    going = sweep.going
    lines.append(f"Would kick {len(going)}:" if going else "Would kick nobody.")
    lines += [f"<@{c.user_id}> (entitlement ended {c.lapsed_at:%Y-%m-%d})" for c in going]
    spared = [c for c in sweep.candidates if c.spared is not None]
    if spared:
        lines.append(f"Spared {len(spared)}:")
        lines += [f"<@{c.user_id}>: {c.spared}" for c in spared]
    return "\n".join(lines)


class CompWorkers(commands.Cog):
    """Starts the comp expiry sweep and kick on lapse when discord.py is ready; stops them on unload."""

    def __init__(self, bot: PatronBot) -> None:
        self.bot = bot
        self._starter: asyncio.Task[None] | None = None

    async def cog_load(self) -> None:
        self._starter = asyncio.create_task(self._start_when_ready())

    async def _start_when_ready(self) -> None:
        await self.bot.wait_until_ready()
        self.bot.services.comp_expiry.start()
        self.bot.services.kick_sweeper.start()

    async def cog_unload(self) -> None:
        if self._starter is not None and not self._starter.done():
            self._starter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._starter
        services = self.bot.services
        await asyncio.gather(services.comp_expiry.stop(timeout=5.0), services.kick_sweeper.stop(timeout=5.0))


async def attach(bot: PatronBot, admin: commands.GroupCog) -> None:
    """Called by cogs.admin's setup: the commands join the admin group with its Manage Roles check."""
    group = admin.app_command
    if group is None:
        raise RuntimeError("the admin cog has no command group")
    for command in comp_commands(bot):
        command.add_check(admin.interaction_check)
        group.add_command(command)
    await bot.add_cog(CompWorkers(bot))
