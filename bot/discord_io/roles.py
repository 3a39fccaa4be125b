"""The adapter that applies role changes through discord.py (the engine's RoleGateway).

It checks Discord's rules before calling, because every refused call counts toward Discord's
invalid-request limit: a role the bot may not manage is reported, never sent.
"""

from __future__ import annotations

import logging

import discord

from bot.sync.reconcile import RoleChangeError

log = logging.getLogger(__name__)


class DiscordRoleGateway:
    def __init__(self, client: discord.Client) -> None:
        self.client = client

    def guild_ids(self) -> list[int]:
        return [guild.id for guild in self.client.guilds]

    async def member_roles(self, guild_id: int, user_id: int) -> frozenset[int] | None:
        member = await self._member(guild_id, user_id)
        if member is None:
            return None
        return frozenset(role.id for role in member.roles if not role.is_default())

    def cached_member_roles(self, guild_id: int, user_id: int) -> frozenset[int] | None:
        guild = self.client.get_guild(guild_id)
        member = guild.get_member(user_id) if guild is not None else None
        if member is None:
            return None
        return frozenset(role.id for role in member.roles if not role.is_default())

    def knows_all_members(self, guild_id: int) -> bool:
        guild = self.client.get_guild(guild_id)
        return guild is not None and guild.chunked

    def missing_permissions(self, guild_id: int) -> str | None:
        guild = self.client.get_guild(guild_id)
        if guild is None:
            return "The bot is not in this server."
        if not guild.me.guild_permissions.manage_roles:
            return "The bot lacks the Manage Roles permission; give its role Manage Roles."
        return None

    def unassignable_roles(self, guild_id: int, role_ids: frozenset[int]) -> dict[int, str]:
        problem = self.missing_permissions(guild_id)
        guild = self.client.get_guild(guild_id)
        if problem is not None or guild is None:
            return {role_id: (problem or "").rstrip(".") for role_id in role_ids}
        refused: dict[int, str] = {}
        for role_id in role_ids:
            reason = role_refusal(guild, guild.get_role(role_id))
            if reason:
                refused[role_id] = reason
        return refused

    async def set_member_roles(
        self, guild_id: int, user_id: int, add: frozenset[int], remove: frozenset[int], reason: str
    ) -> None:
        """One atomic call per changed role (PUT or DELETE of that role), adds first.

        Not one PATCH of the whole role list: that list would come from discord.py's cache, which lags
        behind Discord (a moderator's edit, or our own previous write, arrives later by gateway), and a
        PATCH from a stale list would silently drop a hand-given role. A member whose roles are right
        costs no call at all; the usual change (one tier role) costs one.
        """
        guild = self.client.get_guild(guild_id)
        member = await self._member(guild_id, user_id)
        if guild is None or member is None:
            raise RoleChangeError("the member is no longer in the server", permanent=True)
        applied: set[int] = set()
        try:
            for role_id in sorted(add):
                await member.add_roles(discord.Object(role_id), reason=reason, atomic=True)
                applied.add(role_id)
            for role_id in sorted(remove):
                await member.remove_roles(discord.Object(role_id), reason=reason, atomic=True)
        except discord.Forbidden as error:
            detail = error.text or "missing permissions"
            raise RoleChangeError(
                f"Discord refused the change ({detail})", permanent=True, added=frozenset(applied)
            ) from error
        except discord.NotFound as error:
            raise RoleChangeError(
                f"Discord could not find it ({error.text})", permanent=True, added=frozenset(applied)
            ) from error
        except discord.HTTPException as error:
            raise RoleChangeError(
                f"Discord failed ({error.status})", permanent=False, added=frozenset(applied)
            ) from error

    def role_name(self, guild_id: int, role_id: int) -> str:
        guild = self.client.get_guild(guild_id)
        role = guild.get_role(role_id) if guild else None
        return role.name if role else f"deleted-role-{role_id}"

    def user_name(self, user_id: int) -> str:
        user = self.client.get_user(user_id)
        return user.name if user else str(user_id)

    async def post_log(self, channel_id: int, text: str) -> None:
        channel = self.client.get_channel(channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            log.warning("log channel %s is not a text channel the bot can see", channel_id)
            return
        try:
            await channel.send(text[:2000], allowed_mentions=discord.AllowedMentions.none())
        except discord.HTTPException as error:
            log.warning("could not post to log channel %s: %s", channel_id, error)

    async def _member(self, guild_id: int, user_id: int) -> discord.Member | None:
        guild = self.client.get_guild(guild_id)
        if guild is None:
            return None
        member = guild.get_member(user_id)
        if member is not None:
            return member
        try:
            return await guild.fetch_member(user_id)
        except discord.NotFound:
            return None
        except discord.HTTPException as error:
            raise RoleChangeError(f"Discord failed to look the member up ({error.status})", permanent=False) from error


def role_refusal(guild: discord.Guild, role: discord.Role | None) -> str | None:
    """Why the bot may not give or take this role, or None when it may (Discord's own rules)."""
    if role is None:
        return "the role no longer exists"
    if role.is_default():
        return "@everyone cannot be given"
    if role.managed:
        return f"@{role.name} is managed by an integration"
    if guild.owner_id != guild.me.id and role >= guild.me.top_role:
        return f"@{role.name} is above the bot's highest role ({guild.me.top_role.name}); move the bot's role up"
    return None
