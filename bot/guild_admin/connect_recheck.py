"""Who may connect, asked again when the connect callback binds (review 5, R5-12).

`/patreon-admin connect` checks Manage Server and the rank rule when it makes the button, but the button works for
15 minutes: an admin kicked or demoted meanwhile (the usual moment: a moderator seen misbehaving), or one below a
tier role the owner mapped meanwhile, could still bind the server to his own campaign. So the callback asks
Discord again, fresh (not the member cache), before the creator's code is exchanged and again at the picker:
still a member, still the owner or holding Manage Server, and `CampaignConnections.connect_refusal` with his
rank now. Any process may take the callback (README, shards), so the lookup reads the server over REST when this
process doesn't hold it (review 6, R6-2); only Discord's own answer refuses for good, and a Discord that didn't
answer refuses with "try again", forgetting nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from bot.accounts.connect_refusal import ConnectRefusal
from bot.guild_admin.connect import CampaignConnections
from bot.guild_admin.rank import InvokerRank

log = logging.getLogger(__name__)

GONE = "You're no longer a member of this server, so nothing was connected."
NOT_IN_SERVER = "The bot isn't in this server any more, so nothing was connected."
NOT_MANAGER = "Only the server owner or an admin with Manage Server can connect it; nothing was connected."
UNKNOWN = "Discord didn't say who you are in this server just now; nothing was connected. Try again in a few minutes."


@dataclass(frozen=True)
class AdminStanding:
    """A member as Discord sees them now: their rank, and whether they may manage the server."""

    rank: InvokerRank
    #: The owner, or Manage Server (Administrator includes it).
    manages_server: bool


class AdminLookupFailed(Exception):
    """Discord didn't answer usefully (a 5xx, a rate limit, no connection); nothing can be decided."""


class BotNotInServer(Exception):
    """Discord says the bot isn't in the server (Unknown Guild, Missing Access): nobody can connect it."""


class AdminLookup(Protocol):
    """bot/discord_io/admin_lookup.py is the real one."""

    async def standing(self, guild_id: int, user_id: int) -> AdminStanding | None:
        """Read from Discord now; None when they aren't a member. Raises BotNotInServer or AdminLookupFailed."""
        ...


class ConnectRecheck:
    def __init__(self, admins: AdminLookup | None, connections: CampaignConnections) -> None:
        """`admins` None (no Discord in this process): nobody may connect, since nobody can be checked."""
        self._admins = admins
        self._connections = connections

    async def refusal(self, guild_id: int, user_id: int) -> ConnectRefusal | None:
        """Why this Discord user may not connect this server now (one sentence), or None."""
        if self._admins is None:
            return ConnectRefusal(UNKNOWN)  # no Discord in this process: never checkable here
        try:
            standing = await self._admins.standing(guild_id, user_id)
        except AdminLookupFailed as error:
            log.warning("connect: guild=%s user=%s could not be looked up: %s", guild_id, user_id, error)
            return ConnectRefusal(UNKNOWN, retry=True)
        except BotNotInServer as error:
            log.warning("connect: guild=%s refused, the bot is not in it: %s", guild_id, error)
            return ConnectRefusal(NOT_IN_SERVER)
        if standing is None:
            return ConnectRefusal(GONE)
        if not standing.manages_server:
            return ConnectRefusal(NOT_MANAGER)
        refusal = await self._connections.connect_refusal(guild_id, standing.rank)
        return None if refusal is None else ConnectRefusal(refusal)
