"""What the reconcile engine needs of Discord: the role gateway, the pacing of role calls, and how a change fails.

These are ports: the discord.py adapter (bot/discord_io/roles.py), the pacer (bot/sync/role_pacing.py) and the
tests' in-memory gateway implement them, so the sync engine and everything above it never import discord.py.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from typing import Protocol


class RateLimiter(Protocol):
    """Held around each single role call (bot/sync/role_pacing.py: per server and global buckets)."""

    def call(self, guild_id: int, priority: float = 0.0) -> contextlib.AbstractAsyncContextManager[None]: ...


class RoleChangeError(Exception):
    """Discord refused or failed a role change; `permanent` says whether retrying can help."""

    def __init__(self, message: str, *, permanent: bool, added: frozenset[int] = frozenset()) -> None:
        super().__init__(message)
        self.permanent = permanent
        #: Roles that were given before the failure (they stay in the ledger: they are ours).
        self.added = added


class RoleGateway(Protocol):
    """What the engine needs from Discord; the discord.py adapter implements it."""

    def guild_ids(self) -> list[int]: ...

    async def member_roles(self, guild_id: int, user_id: int) -> frozenset[int] | None: ...

    def cached_member_roles(self, guild_id: int, user_id: int) -> frozenset[int] | None:
        """The member's roles from memory without any request; None when not cached (or not a member)."""
        ...

    def knows_all_members(self, guild_id: int) -> bool:
        """True when every *linked* member (and every holder of roles the bot gave) is known, so for them "not
        cached" means "not a member". It says nothing of anyone else: a big server's other members are never kept."""
        ...

    def knows_member(self, guild_id: int, user_id: int) -> bool:
        """True when memory answers for this user here without a request: cached (a member), or Discord was asked
        and said they aren't one. False means `member_roles` must ask (e.g. a link made elsewhere)."""
        ...

    def unassignable_roles(self, guild_id: int, role_ids: frozenset[int]) -> dict[int, str]: ...

    def missing_permissions(self, guild_id: int) -> str | None: ...

    async def deleted_roles(self, guild_id: int, role_ids: frozenset[int]) -> frozenset[int]:
        """Those of `role_ids` Discord says this server no longer has (deleted); empty whenever that can't be told
        for certain (the server not held here, Discord not answering): a role counts as existing unless Discord
        said otherwise."""
        ...

    async def set_member_roles(
        self, guild_id: int, user_id: int, add: frozenset[int], remove: frozenset[int], reason: str
    ) -> None: ...

    def role_name(self, guild_id: int, role_id: int) -> str: ...

    def user_name(self, user_id: int) -> str: ...

    async def post_log(self, channel_id: int, text: str) -> None: ...


async def roles_gone(gateway: RoleGateway, guild_id: int, role_ids: Iterable[int]) -> frozenset[int]:
    """Of `role_ids`, those Discord says the server no longer has (one log line when any): the rank rule leaves
    them out, as nobody can be given or hold them (review 6, R6-3; bot/guild_admin/rank.py says why only Discord's
    own answer makes a role gone)."""
    roles = frozenset(role_ids)
    gone = await gateway.deleted_roles(guild_id, roles) if roles else frozenset()
    if gone:
        logging.getLogger(__name__).info(
            "guild=%s: role(s) %s no longer exist in Discord; left out of the rank check", guild_id, sorted(gone)
        )
    return gone
