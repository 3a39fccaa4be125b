"""Who may connect, asked again when the connect callback binds (review 5, R5-12).

`/patreon-admin connect` checks Manage Server and the rank rule when it makes the button, but the button works for
15 minutes: an admin kicked or demoted meanwhile (the usual moment: a moderator seen misbehaving), or one below a
tier role the owner mapped meanwhile, could still bind the server to his own campaign. So the callback asks
Discord again, fresh (not the member cache), before the creator's code is exchanged and again at the picker:
still a member, still the owner or holding Manage Server, and `CampaignConnections.connect_refusal` with his
rank now.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from bot.guild_admin.connect import CampaignConnections
from bot.guild_admin.rank import InvokerRank

log = logging.getLogger(__name__)

GONE = "You're no longer a member of this server, so nothing was connected."
NOT_MANAGER = "Only the server owner or an admin with Manage Server can connect it; nothing was connected."
UNKNOWN = "Discord didn't say who you are in this server just now; nothing was connected. Try again in a few minutes."


@dataclass(frozen=True)
class AdminStanding:
    """A member as Discord sees them now: their rank, and whether they may manage the server."""

    rank: InvokerRank
    #: The owner, or Manage Server (Administrator includes it).
    manages_server: bool


class AdminLookupFailed(Exception):
    """Discord didn't answer usefully; nothing can be decided."""


class AdminLookup(Protocol):
    """bot/discord_io/admin_lookup.py is the real one."""

    async def standing(self, guild_id: int, user_id: int) -> AdminStanding | None:
        """Read from Discord now; None when they aren't a member, or the bot isn't in the server."""
        ...


class ConnectRecheck:
    def __init__(self, admins: AdminLookup | None, connections: CampaignConnections) -> None:
        """`admins` None (no Discord in this process): nobody may connect, since nobody can be checked."""
        self._admins = admins
        self._connections = connections

    async def refusal(self, guild_id: int, user_id: int) -> str | None:
        """Why this Discord user may not connect this server now (one sentence), or None."""
        if self._admins is None:
            return UNKNOWN
        try:
            standing = await self._admins.standing(guild_id, user_id)
        except AdminLookupFailed as error:
            log.warning("connect: guild=%s user=%s could not be looked up: %s", guild_id, user_id, error)
            return UNKNOWN
        if standing is None:
            return GONE
        if not standing.manages_server:
            return NOT_MANAGER
        return await self._connections.connect_refusal(guild_id, standing.rank)
