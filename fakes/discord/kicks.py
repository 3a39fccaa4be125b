"""The fake's kick: `DELETE /guilds/{g}/members/{u}`, with Discord's rules, as unkind as Discord.

Discord's developer documentation (Resources → Guild → Remove Guild Member): "Requires KICK_MEMBERS permission",
answers 204 and fires a Guild Member Remove event, and takes an `X-Audit-Log-Reason` header (the transport records
it on the call). Topics → Permissions → Permission Hierarchy: a bot "can kick, ban, and edit nicknames for users
whose highest role is lower than the bot's highest role", and no one can kick the owner; Discord answers 403 50013
(Missing Permissions) to both, as to a missing permission. A member not in the guild is 404 10007 (Unknown
Member). The route has its own bucket in Discord; the fake counts it in the default route's window (an assumption:
its numbers aren't published).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import errors
from .permissions import KICK_MEMBERS

if TYPE_CHECKING:
    from .guild import FakeGuild


def kick_member(guild: FakeGuild, user_id: int) -> None:
    """The bot removes `user_id` from `guild`, or the refusal Discord would send is raised."""
    member = guild.members.get(user_id)
    if member is None:
        raise errors.unknown_member()
    bot_is_owner = guild.bot_user_id == guild.owner_id
    if not bot_is_owner:
        if not guild.permissions_of(guild.bot_user_id) & KICK_MEMBERS:
            raise errors.missing_permissions()
        if user_id == guild.owner_id or user_id == guild.bot_user_id:
            raise errors.missing_permissions()
        if guild.top_rank(user_id) >= guild.top_rank(guild.bot_user_id):
            raise errors.missing_permissions()
    guild.remove_member(user_id)
