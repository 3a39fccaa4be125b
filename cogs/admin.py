"""`/patreon-admin ...`: the server admin's commands, thin over bot.guild_admin.service.

A separate top-level group because Discord only lets a top-level command carry default permissions:
patrons must see `/patreon link`, only role managers should see these.
"""

from __future__ import annotations

from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord_io.client import PatronBot
from bot.domain.models import GuildSettings, RoleMode
from bot.guild_admin.health import health_report
from bot.guild_admin.service import AdminService
from bot.store import LAST_REFRESH, WEBHOOK_LAST_SEEN

SETTING_LABELS = {
    "decline_grace_days": "Grace days after a declined payment",
    "keep_until_paid_through": "Keep roles until the paid-through date after a cancel",
    "role_mode": "Several tiers give",
    "free_member_role_id": "Free-member role",
    "free_trial_role_id": "Free-trial role",
    "trial_gets_tier_roles": "Free trials also get their tier's roles",
    "gifted_role_id": "Gifted-membership role",
    "former_patron_role_id": "Former-patron role",
    "lifetime_role_id": "Lifetime-support role",
    "lifetime_threshold_cents": "Lifetime-support threshold",
    "log_channel_id": "Log channel",
    "welcome_on_link": "Welcome message on a new link",
    "welcome_channel_id": "Welcome channel (the log channel when not set)",
    "auto_match_discord": "Auto-match patrons by the Discord account on their Patreon",
}

Clearable = Literal[
    "free_role", "trial_role", "gifted_role", "former_role", "lifetime_role", "log_channel", "welcome_channel"
]
CLEARABLE_FIELDS = {
    "free_role": "free_member_role_id",
    "trial_role": "free_trial_role_id",
    "gifted_role": "gifted_role_id",
    "former_role": "former_patron_role_id",
    "lifetime_role": "lifetime_role_id",
    "log_channel": "log_channel_id",
    "welcome_channel": "welcome_channel_id",
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
        tiers = await self.bot.services.store.get_tiers()
        needle = current.lower()
        return [
            app_commands.Choice(name=f"{tier.title or tier.id} (${tier.amount_cents / 100:.2f})"[:100], value=tier.id)
            for tier in tiers.values()
            if needle in tier.title.lower() or needle in tier.id
        ][:25]

    @app_commands.command(name="tiers", description="List the campaign's tiers and the roles they give here")
    async def tiers(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        lines = []
        for line in await self.admin.tier_overview(guild_id(interaction)):
            roles = ", ".join(f"<@&{role}>" for role in sorted(line.role_ids)) or "no role"
            patrons = f", {line.tier.patron_count} patrons" if line.tier.patron_count is not None else ""
            price = f"${line.tier.amount_cents / 100:.2f}"
            lines.append(f"**{line.tier.title or line.tier.id}** (`{line.tier.id}`, {price}{patrons}) → {roles}")
        await reply(interaction, "\n".join(lines) or "The campaign has no tiers yet.")

    @app_commands.command(name="map", description="Give a role to patrons of a tier")
    @app_commands.describe(tier="The Patreon tier", role="The Discord role its patrons get")
    @app_commands.autocomplete(tier=tier_autocomplete)
    async def map(self, interaction: discord.Interaction, tier: str, role: discord.Role) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        mapped = await self.admin.map_tier(guild_id(interaction), tier, role.id)
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
        removed = await self.admin.unmap_tier(guild_id(interaction), tier, role.id if role else None)
        await reply(
            interaction,
            f"✅ Removed {removed} mapping(s). Roles the bot gave for it are taken back at the next sync; "
            "roles given by hand stay.",
        )

    @app_commands.command(name="settings", description="View or change the role policy for this server")
    @app_commands.describe(
        grace_days="Days a declined payment keeps its roles (default 7)",
        keep_until_paid_through="After a cancel, keep roles until the paid period ends",
        role_mode="stack: every entitled tier's roles; highest: only the top tier's",
        free_role="Role for free members (never pledged)",
        trial_role="Role for free trials",
        trial_gets_tier_roles="Free trials also get their tier's roles",
        gifted_role="Role for gifted memberships",
        former_role="Role for former patrons",
        lifetime_role="Role for lifetime support above a threshold",
        lifetime_dollars="Lifetime support (in dollars) that earns the lifetime role",
        log_channel="Channel for one line per role change, link and failure",
        welcome="Post a welcome message when someone links",
        welcome_channel="Channel for the welcome message (default: the log channel)",
        auto_match="Also match patrons by the Discord account linked on their Patreon",
        clear="Unset one of the roles or the log channel",
    )
    async def settings(
        self,
        interaction: discord.Interaction,
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
        log_channel: discord.TextChannel | None = None,
        welcome: bool | None = None,
        welcome_channel: discord.TextChannel | None = None,
        auto_match: bool | None = None,
        clear: Clearable | None = None,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        changes: dict[str, object] = {
            "decline_grace_days": grace_days,
            "keep_until_paid_through": keep_until_paid_through,
            "role_mode": RoleMode(role_mode) if role_mode else None,
            "free_member_role_id": free_role.id if free_role else None,
            "free_trial_role_id": trial_role.id if trial_role else None,
            "trial_gets_tier_roles": trial_gets_tier_roles,
            "gifted_role_id": gifted_role.id if gifted_role else None,
            "former_patron_role_id": former_role.id if former_role else None,
            "lifetime_role_id": lifetime_role.id if lifetime_role else None,
            "lifetime_threshold_cents": lifetime_dollars * 100 if lifetime_dollars is not None else None,
            "log_channel_id": log_channel.id if log_channel else None,
            "welcome_on_link": welcome,
            "welcome_channel_id": welcome_channel.id if welcome_channel else None,
            "auto_match_discord": auto_match,
        }
        changes = {name: value for name, value in changes.items() if value is not None}
        if clear:
            changes[CLEARABLE_FIELDS[clear]] = None
        settings = await self.admin.update_settings(guild_id(interaction), **changes)
        header = "✅ Saved.\n" if changes else ""
        await reply(interaction, header + describe_settings(settings))

    @app_commands.command(name="sync", description="Preview (default) or apply the role changes for every member")
    @app_commands.describe(dry_run="Only show what would change (default: yes)")
    async def sync(self, interaction: discord.Interaction, dry_run: bool = True) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        report = await self.admin.sync(guild_id(interaction), dry_run)
        if report.queued:
            minutes = max(1, round(report.queued / 40 / 60))
            await reply(
                interaction,
                f"Checked {report.checked} member(s); queued {report.queued} for role changes. They're applied "
                f"at Discord's pace (about {minutes} min) and survive a restart; the log channel shows each change.",
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
        message = await self.admin.link_user(guild_id(interaction), member.id, patreon_user_id)
        await reply(interaction, f"✅ {member.mention}: {message}")

    @app_commands.command(name="unlink-user", description="Unlink a member and take back the roles the bot gave")
    @app_commands.describe(member="The Discord member")
    async def unlink_user(self, interaction: discord.Interaction, member: discord.Member) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        result = await self.admin.unlink_user(guild_id(interaction), member.id)
        await reply(interaction, f"✅ Unlinked {member.mention}. {result.describe()}")

    @app_commands.command(name="check", description="Check permissions, role order, mappings, webhooks and refreshes")
    async def check(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        services = self.bot.services
        guild = guild_id(interaction)
        lines = health_report(
            guild,
            services.reconcile.gateway,
            await services.store.get_settings(guild),
            await services.store.get_tier_roles(guild),
            await self.admin.campaign_tiers(refresh=True),
            {key: await services.store.get_fact(key) for key in (WEBHOOK_LAST_SEEN, LAST_REFRESH)},
            [(job.user_id, job.last_error) for job in await services.store.failed_role_jobs(guild)],
            sum(1 for job in await services.store.pending_role_jobs() if job.guild_id == guild),
        )
        await reply(interaction, "\n".join(line.render() for line in lines))


def guild_id(interaction: discord.Interaction) -> int:
    assert interaction.guild_id is not None  # the group is guild-only
    return interaction.guild_id


def describe_settings(settings: GuildSettings) -> str:
    lines = ["**Patreon role policy for this server**"]
    for name, label in SETTING_LABELS.items():
        value = getattr(settings, name)
        if value is None:
            shown = "not set"
        elif name.endswith("role_id"):
            shown = f"<@&{value}>"
        elif name.endswith("channel_id"):
            shown = f"<#{value}>"
        elif name == "lifetime_threshold_cents":
            shown = f"${value / 100:.2f}"
        elif name == "role_mode":
            shown = "every entitled tier's roles" if value is RoleMode.STACK else "only the highest tier's roles"
        elif isinstance(value, bool):
            shown = "on" if value else "off"
        else:
            shown = str(value)
        lines.append(f"{label}: {shown}")
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
    await bot.add_cog(Admin(bot))
