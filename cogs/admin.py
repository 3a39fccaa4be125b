"""`/patreon-admin ...`: the server admin's commands, thin over bot.guild_admin.service.

A separate top-level group because Discord only lets a top-level command carry default permissions:
patrons must see `/patreon link`, only role managers should see these.
"""

from __future__ import annotations

from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

import cogs.comps
import cogs.connect
from bot.discord_io.client import PatronBot
from bot.discord_io.roles import DiscordRoleGateway
from bot.domain.dm_templates import DmKind
from bot.domain.guild_settings import GUILD_SETTINGS, GuildSettings, RoleMode, SettingKind, SettingSpec
from bot.domain.money import format_money
from bot.guild_admin.health import health_report
from bot.guild_admin.rank import InvokerRank
from bot.guild_admin.service import AdminError, AdminService
from bot.sync.role_jobs import ROLE_CALLS_PER_SECOND
from bot.sync.role_pacing import describe_duration
from cogs.patron_dms import PatronDmsCog
from cogs.patrons_report import WeeklyPatronsCog, answer_patrons_report, everyone_can_view
from cogs.stats import DailyCountCog, answer_stats

#: Patreon's supported currencies as the `currency:` option's choices (bot/domain/money.py).
Currency = Literal[
    "USD", "EUR", "GBP", "CAD", "AUD", "DKK", "NOK", "SEK", "HKD", "SGD", "NZD", "CZK", "HUF", "PLN", "MXN", "BRL"
]

#: `clear:` choice → the setting it unsets: every role and channel setting, by its option name.
CLEARABLE_FIELDS = {
    spec.option: spec.name
    for spec in GUILD_SETTINGS
    if spec.kind in (SettingKind.ROLE, SettingKind.CHANNEL, SettingKind.RANK)
}


@app_commands.guild_only()
@app_commands.default_permissions(manage_roles=True)
class Admin(commands.GroupCog, group_name="patreon-admin", group_description="Patreon role sync: server settings"):
    def __init__(self, bot: PatronBot) -> None:
        self.bot = bot
        super().__init__()

    @property
    def admin(self) -> AdminService:
        return self.bot.services.admin

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """The server-side check: default permissions can be overridden by a server, this can't."""
        member = interaction.user
        if not isinstance(member, discord.Member) or not member.guild_permissions.manage_roles:
            raise app_commands.CheckFailure("You need the Manage Roles permission to use this.")
        return True

    async def tier_autocomplete(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        if await self.admin.creators_server_refusal(guild_id(interaction)) is not None:
            return []  # the campaign's tiers are not shown to a server that isn't the creator's
        tiers = await self.admin.campaign_tiers(refresh=False, guild_id=guild_id(interaction))
        currency = (await self.bot.services.store.get_settings(guild_id(interaction))).currency
        needle = current.lower()
        return [
            app_commands.Choice(
                name=f"{tier.title or tier.id} ({format_money(tier.amount_cents, currency)})"[:100], value=tier.id
            )
            for tier in tiers.values()
            if needle in tier.title.lower() or needle in tier.id
        ][:25]

    @app_commands.command(name="tiers", description="List the campaign's tiers and the roles they give here")
    async def tiers(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        lines = []
        currency = (await self.bot.services.store.get_settings(guild_id(interaction))).currency
        for line in await self.admin.tier_overview(guild_id(interaction)):
            roles = ", ".join(f"<@&{role}>" for role in sorted(line.role_ids)) or "no role"
            patrons = f", {line.tier.patron_count} patrons" if line.tier.patron_count is not None else ""
            price = format_money(line.tier.amount_cents, currency)
            lines.append(f"**{line.tier.title or line.tier.id}** (`{line.tier.id}`, {price}{patrons}) → {roles}")
        await reply(interaction, "\n".join(lines) or "The campaign has no tiers yet.")

    @app_commands.command(name="map", description="Give a role to patrons of a tier")
    @app_commands.describe(tier="The Patreon tier", role="The Discord role its patrons get")
    @app_commands.autocomplete(tier=tier_autocomplete)
    async def map(self, interaction: discord.Interaction, tier: str, role: discord.Role) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        mapped = await self.admin.map_tier(guild_id(interaction), tier, role.id, invoker_rank(interaction))
        self.bot.dispatch("patreon_mapping_changed", guild_id(interaction))  # the Link-account panel re-renders
        await reply(
            interaction,
            f"✅ Patrons of **{mapped.title}** now get {role.mention}. Run `/patreon-admin sync` to apply it "
            "to everyone now (a preview comes first).",
        )

    @app_commands.command(name="unmap", description="Stop giving a role (or all roles) for a tier")
    @app_commands.describe(tier="The Patreon tier", role="Only this role (leave empty for all of the tier's roles)")
    @app_commands.autocomplete(tier=tier_autocomplete)
    async def unmap(self, interaction: discord.Interaction, tier: str, role: discord.Role | None = None) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        removed = await self.admin.unmap_tier(
            guild_id(interaction), tier, role.id if role else None, invoker_rank(interaction)
        )
        self.bot.dispatch("patreon_mapping_changed", guild_id(interaction))
        await reply(
            interaction,
            f"✅ Removed {removed} mapping(s). Roles the bot gave for it are taken back at the next sync; "
            "roles given by hand stay.",
        )

    @app_commands.command(name="settings", description="View or change the role policy for this server")
    @app_commands.describe(
        **{spec.option: spec.help for spec in GUILD_SETTINGS}, clear="Unset one of the roles or channels"
    )
    @app_commands.choices(clear=[app_commands.Choice(name=option, value=option) for option in CLEARABLE_FIELDS])
    async def settings(
        self,
        interaction: discord.Interaction,
        # One option per GuildSettings field, named by its SettingSpec (tests/unit/test_settings_fields.py checks).
        enabled: bool | None = None,
        grace_days: app_commands.Range[int, 0, 60] | None = None,
        keep_until_paid_through: bool | None = None,
        role_mode: Literal["stack", "highest"] | None = None,
        free_role: discord.Role | None = None,
        trial_role: discord.Role | None = None,
        trial_gets_tier_roles: bool | None = None,
        gifted_role: discord.Role | None = None,
        former_role: discord.Role | None = None,
        lifetime_role: discord.Role | None = None,
        lifetime_dollars: app_commands.Range[int, 0, 1_000_000] | None = None,
        currency: Currency | None = None,
        log_channel: discord.TextChannel | None = None,
        welcome: bool | None = None,
        welcome_channel: discord.TextChannel | None = None,
        auto_match: bool | None = None,
        welcome_link: bool | None = None,
        patrons_report_weekly: bool | None = None,
        dm_welcome: bool | None = None,
        dm_declined: bool | None = None,
        dm_removed: bool | None = None,
        kick_after_days: app_commands.Range[int, 0, 3650] | None = None,
        kick_protect_role: discord.Role | None = None,
        clear: str | None = None,
    ) -> None:
        given = dict(locals())  # the options by name, as discord.py converted them: read before any other local
        await interaction.response.defer(ephemeral=True, thinking=True)
        changes = {
            spec.name: stored_value(spec, given[spec.option])
            for spec in GUILD_SETTINGS
            if given[spec.option] is not None
        }
        if clear:
            changes[CLEARABLE_FIELDS[clear]] = None
        await self._assert_private_report_channel(interaction, changes)
        settings = await self.admin.update_settings(guild_id(interaction), invoker_rank(interaction), **changes)
        header = "✅ Saved.\n" if changes else ""
        await reply(interaction, header + describe_settings(settings))

    async def _assert_private_report_channel(
        self, interaction: discord.Interaction, changes: dict[str, object]
    ) -> None:
        """The weekly report lists every patron and their payment status, so it is never routed to a channel
        @everyone can view (review 5, R5-8); the weekly post checks again when it sends (bot/guild_admin/
        weekly_patrons.py), since a channel can be opened up later."""
        guild = interaction.guild
        touched = "log_channel_id" in changes or changes.get("patrons_report_weekly") is True
        if guild is None or not touched:
            return
        current = await self.bot.services.store.get_settings(guild.id)
        channel_id = changes.get("log_channel_id", current.log_channel_id)
        if not changes.get("patrons_report_weekly", current.patrons_report_weekly) or not isinstance(channel_id, int):
            return
        channel = guild.get_channel(channel_id)
        if channel is not None and everyone_can_view(channel):
            raise AdminError(
                f"Everyone in the server can read {channel.mention}, and the weekly patrons report lists every "
                "patron and their payment status: pick a log channel @everyone can't view, or leave the report off."
            )

    @app_commands.command(name="sync", description="Preview (default) or apply the role changes for every member")
    @app_commands.describe(dry_run="Only show what would change (default: yes)")
    async def sync(self, interaction: discord.Interaction, dry_run: bool = True) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        report = await self.admin.sync(guild_id(interaction), dry_run)
        if not dry_run:  # the sync planned from stored snapshots; the next refresh re-plans on a fresh listing
            self.bot.services.refresh.request_full_plan(guild_id(interaction))
        if report.queued:
            pacer = self.bot.services.jobs.pacer
            rate = pacer.calls_per_second if pacer is not None else ROLE_CALLS_PER_SECOND
            await reply(
                interaction,
                f"Checked {report.checked} member(s); queued {report.queued} for role changes. Discord lets a bot "
                f"change about {rate:.1f} role per second per server, so that takes "
                f"{describe_duration(report.queued / rate)} or more; the changes survive a restart, the log "
                "channel shows each one and the progress, and `/patreon-admin check` shows how many are left.",
            )
            return
        verb = "would change" if dry_run else "changed"
        head = f"Checked {report.checked} member(s); {report.changed_members} {verb}"
        head += f", {report.failures} failed." if report.failures else "."
        tail = "\nRun `/patreon-admin sync dry_run:False` to apply." if dry_run and report.changed_members else ""
        await reply(interaction, "\n".join([head, *report.lines]) + tail)

    @app_commands.command(name="link-user", description="Link a member to a Patreon user by hand")
    @app_commands.describe(member="The Discord member", patreon_user_id="Their Patreon user id")
    async def link_user(self, interaction: discord.Interaction, member: discord.Member, patreon_user_id: str) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        message = await self.admin.link_user(
            guild_id(interaction), member.id, patreon_user_id, invoker_rank(interaction)
        )
        await reply(interaction, f"✅ {member.mention}: {message}")

    @app_commands.command(name="unlink-user", description="Unlink a member and take back the roles the bot gave")
    @app_commands.describe(member="The Discord member")
    async def unlink_user(self, interaction: discord.Interaction, member: discord.Member) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        result = await self.admin.unlink_user(guild_id(interaction), member.id, invoker_rank(interaction))
        await reply(interaction, f"✅ Unlinked {member.mention}. {result.describe()}")

    @app_commands.command(
        name="patrons", description="Who pays but hasn't linked, who is linked, who is in grace; with a CSV of all"
    )
    async def patrons(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await answer_patrons_report(self.bot, interaction)

    @app_commands.command(name="dm-preview", description="Show one of the opt-in DMs as a member here would get it")
    @app_commands.describe(kind="welcome (after linking), declined (payment declined) or removed (roles removed)")
    async def dm_preview(
        self, interaction: discord.Interaction, kind: Literal["welcome", "declined", "removed"]
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        guild = guild_id(interaction)
        refusal = await self.admin.participation_refusal(guild)
        if refusal is not None:
            await reply(interaction, refusal)
            return
        name = interaction.guild.name if interaction.guild is not None else "this server"
        await reply(interaction, await self.bot.services.patron_dms.preview(guild, DmKind(kind), name))

    @app_commands.command(name="stats", description="Patrons per tier and the share linked, over 90 days, as a chart")
    async def stats(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await answer_stats(self.bot, interaction)

    @app_commands.command(name="check", description="Check permissions, role order, mappings, webhooks and refreshes")
    async def check(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        services = self.bot.services
        guild = guild_id(interaction)
        lines = health_report(
            guild,
            services.gateway,
            await services.store.get_settings(guild),
            await services.store.get_tier_roles(guild),
            await self.admin.campaign_tiers(refresh=True, guild_id=guild),
            await self.admin.campaign_facts(guild),
            [(job.user_id, job.last_error) for job in await services.store.failed_role_jobs(guild)],
            await services.store.count_pending_role_jobs(guild),
            await self.admin.participation_refusal(guild),
            role_calls_per_second=services.jobs.pacer.calls_per_second if services.jobs.pacer else None,
            rate_limited_calls=(
                services.gateway.rate_limit_watch.count if isinstance(services.gateway, DiscordRoleGateway) else None
            ),
            campaign=await self.admin.campaign_description(guild),
            comps=await cogs.comps.comp_lines(self.bot, guild),
            kick_problem=cogs.comps.kick_problem(self.bot, guild),
        )
        lines += await services.connections.health_lines(guild)  # the webhook at Patreon, a revoked creator
        await reply(interaction, "\n".join(line.render() for line in lines))


def guild_id(interaction: discord.Interaction) -> int:
    assert interaction.guild_id is not None  # the group is guild-only
    return interaction.guild_id


def invoker_rank(interaction: discord.Interaction) -> InvokerRank:
    """Who asks, as Discord's role hierarchy sees them: the owner, or the roles strictly below their top role."""
    member = interaction.user
    guild = interaction.guild
    if not isinstance(member, discord.Member) or guild is None:
        return InvokerRank(user_id=interaction.user.id, owner=False, roles_below=frozenset())
    top = member.top_role
    return InvokerRank(
        user_id=member.id,
        owner=guild.owner_id == member.id,
        roles_below=frozenset(role.id for role in guild.roles if role < top),
        top_role_name=top.name if top.is_default() else f"@{top.name}",
        kick_members=member.guild_permissions.kick_members,
        manage_guild=member.guild_permissions.manage_guild,
    )


def stored_value(spec: SettingSpec, value: object) -> object:
    """An option's value as GuildSettings keeps it."""
    if spec.kind in (SettingKind.ROLE, SettingKind.CHANNEL, SettingKind.RANK):
        return value.id if isinstance(value, discord.abc.Snowflake) else value
    if spec.kind is SettingKind.DOLLARS and isinstance(value, int):
        return value * 100
    if spec.kind is SettingKind.MODE and isinstance(value, str):
        return RoleMode(value)
    return value


def describe_settings(settings: GuildSettings) -> str:
    lines = ["**Patreon role policy for this server**"]
    for spec in GUILD_SETTINGS:
        value = getattr(settings, spec.name)
        if value is None:
            shown = "not set"
        elif spec.kind in (SettingKind.ROLE, SettingKind.RANK):
            shown = f"<@&{value}>"
        elif spec.kind is SettingKind.CHANNEL:
            shown = f"<#{value}>"
        elif spec.kind is SettingKind.DOLLARS:
            shown = format_money(value, settings.currency)
        elif spec.kind is SettingKind.MODE:
            shown = "every entitled tier's roles" if value is RoleMode.STACK else "only the highest tier's roles"
        elif spec.kind is SettingKind.SWITCH:
            shown = "on" if value else "off"
        else:
            shown = str(value)
        lines.append(f"{spec.label}: {shown}")
    return "\n".join(lines)


async def reply(interaction: discord.Interaction, text: str) -> None:
    """Ephemeral, split at line breaks to stay under Discord's 2,000 characters a message."""
    chunks: list[str] = []
    for line in text.splitlines() or [""]:
        if chunks and len(chunks[-1]) + len(line) + 1 <= 1900:
            chunks[-1] += "\n" + line
        else:
            chunks.append(line[:1900])
    for chunk in chunks:
        if interaction.response.is_done():
            await interaction.followup.send(chunk, ephemeral=True, allowed_mentions=discord.AllowedMentions.none())
        else:
            await interaction.response.send_message(
                chunk, ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
            )


async def setup(bot: PatronBot) -> None:
    admin = Admin(bot)
    await bot.add_cog(admin)
    await cogs.comps.attach(bot, admin)
    await cogs.connect.attach(bot, admin)
    await bot.add_cog(WeeklyPatronsCog(bot))
    await bot.add_cog(PatronDmsCog(bot))
    await bot.add_cog(DailyCountCog(bot))
