"""A server admin's standing read from Discord at the moment it matters (the connect callback, R5-12).

`GET /guilds/{g}/members/{u}` rather than the member cache: a kick or a demotion of the moment must count, and
the cache only knows what the gateway delivered so far. The server itself comes from the cache when this process
holds it, else from `GET /guilds/{g}` (its roles and owner): any process may take the callback, and one of another
shard, or one just started, holds no such server (review 6, R6-2). The rank is read as the admin cog reads an
interaction's member: the owner, or the roles strictly below the highest role; Manage Server from the server-wide
permissions (Administrator includes it), never a channel's overwrite.
"""

from __future__ import annotations

import aiohttp
import discord

from bot.guild_admin.connect_recheck import AdminLookupFailed, AdminStanding, BotNotInServer
from bot.guild_admin.rank import InvokerRank

#: Discord's JSON error code for a server that doesn't exist or that the bot isn't in.
UNKNOWN_GUILD = 10004


class DiscordAdminLookup:
    def __init__(self, client: discord.Client) -> None:
        self._client = client

    async def standing(self, guild_id: int, user_id: int) -> AdminStanding | None:
        try:
            guild = self._client.get_guild(guild_id) or await self._client.fetch_guild(guild_id, with_counts=False)
            member = await guild.fetch_member(user_id)
        except discord.NotFound as error:
            if error.code == UNKNOWN_GUILD:
                raise BotNotInServer(f"{error.status} {error.text}") from error
            return None  # Unknown Member (or User): not in the server
        except discord.Forbidden as error:  # Missing Access: the bot can't see the server
            raise BotNotInServer(f"{error.status} {error.text}") from error
        except discord.HTTPException as error:
            raise AdminLookupFailed(f"{error.status} {error.text}") from error
        except (aiohttp.ClientError, OSError) as error:
            raise AdminLookupFailed(type(error).__name__) from error
        top = member.top_role
        owner = guild.owner_id == member.id
        rank = InvokerRank(
            user_id=member.id,
            owner=owner,
            roles_below=frozenset(role.id for role in guild.roles if role < top),
            top_role_name=top.name if top.is_default() else f"@{top.name}",
            kick_members=member.guild_permissions.kick_members,
            manage_guild=member.guild_permissions.manage_guild,
        )
        return AdminStanding(rank, manages_server=owner or member.guild_permissions.manage_guild)

    async def is_member(self, guild_id: int, user_id: int) -> bool | None:
        """Whether the user is in the server, as Discord says now, from any process (where a Linked Roles
        verification's link lands, bot/accounts/link_home.py); None: Discord didn't answer."""
        try:
            return await self.standing(guild_id, user_id) is not None
        except BotNotInServer:
            return False
        except AdminLookupFailed:
            return None
