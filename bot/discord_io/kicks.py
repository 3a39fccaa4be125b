"""Kick on lapse's calls through discord.py: the facts its rule reads, and the kick itself.

`DELETE /guilds/{g}/members/{u}` needs Kick Members, and Discord refuses (403 50013) the owner and anyone whose
highest role is not below the bot's (Discord's developer documentation, Resources → Guild → Remove Guild Member;
Topics → Permissions → Permission Hierarchy). bot/domain/kick_rules.py refuses those first from these facts, so a
refused kick is never sent; the reason goes into the audit log (`X-Audit-Log-Reason`).
"""

from __future__ import annotations

import discord
from discord.ext import commands

from bot.domain.kick_rules import MemberRank
from bot.guild_admin.lapse_kicks import KickFailed


class KickCalls:
    """Mixed into DiscordRoleGateway (bot/discord_io/roles.py), which reads members the same way."""

    client: commands.Bot

    def missing_kick_permission(self, guild_id: int) -> str | None:
        guild = self.client.get_guild(guild_id)
        if guild is None:
            return "The bot is not in this server."
        if guild.owner_id != guild.me.id and not guild.me.guild_permissions.kick_members:
            return "The bot lacks the Kick Members permission that kick on lapse needs; give its role Kick Members."
        return None

    def member_rank(self, guild_id: int, user_id: int) -> MemberRank | None:
        """From discord.py's cache (the caller has just looked the member up)."""
        guild = self.client.get_guild(guild_id)
        member = guild.get_member(user_id) if guild is not None else None
        if guild is None or member is None:
            return None
        return MemberRank(
            user_id=user_id,
            is_owner=guild.owner_id == user_id,
            is_bot=member.bot or user_id == guild.me.id,
            role_positions={role.id: role.position for role in member.roles if not role.is_default()},
            bot_top_position=guild.me.top_role.position if guild.owner_id != guild.me.id else 1 << 30,
            joined_at=member.joined_at,
        )

    def role_position(self, guild_id: int, role_id: int) -> int | None:
        guild = self.client.get_guild(guild_id)
        role = guild.get_role(role_id) if guild is not None else None
        return role.position if role is not None else None

    async def kick_member(self, guild_id: int, user_id: int, reason: str) -> None:
        guild = self.client.get_guild(guild_id)
        if guild is None:
            raise KickFailed("the bot is not in this server")
        try:
            await guild.kick(discord.Object(user_id), reason=reason[:500])
        except discord.Forbidden as error:
            raise KickFailed(f"Discord refused the kick ({error.text or 'missing permissions'})") from error
        except discord.NotFound as error:
            raise KickFailed("the member is no longer in the server") from error
        except discord.HTTPException as error:
            raise KickFailed(f"Discord failed ({error.status})") from error
