"""Who kick on lapse may never remove, as a pure rule over plain facts (rules: docs/policy.md, "Kick on lapse").

The Discord adapter reads the facts (owner, bot, role positions); bot/guild_admin/lapse_kicks.py adds what the
store knows (who lapsed when, what the bot granted). Discord itself refuses to kick the owner or anyone whose
highest role is not below the bot's (403 50013); this rule refuses first, so nothing is even tried.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class MemberRank:
    """One member as Discord's hierarchy sees them."""

    user_id: int
    is_owner: bool
    is_bot: bool
    #: role id → position, for every role the member holds (@everyone left out).
    role_positions: dict[int, int]
    #: The position of the bot's own highest role.
    bot_top_position: int
    #: When Discord says they (last) joined the server; None when it doesn't say.
    joined_at: datetime | None = None


def kick_refusal(member: MemberRank, granted: frozenset[int], threshold_position: int | None) -> str | None:
    """Why this member is spared, or None when kick on lapse may remove them.

    `granted`: the roles the bot gave them (the ledger); `threshold_position`: the position of the admin's
    protect role (None: any role the bot didn't give spares its holder).
    """
    if member.is_owner:
        return "the server owner"
    if member.is_bot:
        return "a bot"
    top = max(member.role_positions.values(), default=0)
    if top >= member.bot_top_position:
        return "holds a role at or above the bot's highest role"
    own = {role: position for role, position in member.role_positions.items() if role not in granted}
    if threshold_position is None and own:
        return "holds a role the bot didn't give"
    if threshold_position is not None and any(position >= threshold_position for position in own.values()):
        return "holds a role the bot didn't give at or above the protect role"
    return None
