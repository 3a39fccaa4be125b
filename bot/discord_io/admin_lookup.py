"""A server admin's standing read from Discord at the moment it matters (the connect callback, R5-12).

`GET /guilds/{g}/members/{u}` rather than the member cache: a kick or a demotion of the moment must count, and
the cache only knows what the gateway delivered so far. The rank is read as the admin cog reads an interaction's
member: the owner, or the roles strictly below the highest role; Manage Server from the server-wide permissions
(Administrator includes it), never a channel's overwrite.
"""

from __future__ import annotations

import discord

from bot.guild_admin.connect_recheck import AdminLookupFailed, AdminStanding
from bot.guild_admin.rank import InvokerRank


class DiscordAdminLookup:
    def __init__(self, client: discord.Client) -> None:
        self._client = client

    async def standing(self, guild_id: int, user_id: int) -> AdminStanding | None:
        guild = self._client.get_guild(guild_id)
        if guild is None:
            return None
        try:
            member = await guild.fetch_member(user_id)
        except discord.NotFound:
            return None
        except discord.HTTPException as error:
            raise AdminLookupFailed(f"{error.status} {error.text}") from error
        top = member.top_role
        owner = guild.owner_id == member.id
        rank = InvokerRank(
            user_id=member.id,
            owner=owner,
            roles_below=frozenset(role.id for role in guild.roles if role < top),
            top_role_name=top.name if top.is_default() else f"@{top.name}",
            kick_members=member.guild_permissions.kick_members,
        )
        return AdminStanding(rank, manages_server=owner or member.guild_permissions.manage_guild)
