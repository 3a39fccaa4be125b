"""An in-memory `RoleGateway` for integration tests of the engine, queue and webhooks without Discord.

It keeps guilds, members and their roles, applies role changes, records every call, and can be told to fail
the next calls transiently or permanently.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.sync.role_gateway import RoleChangeError


@dataclass
class MemoryGuild:
    members: dict[int, set[int]] = field(default_factory=dict)
    #: Roles the bot may not touch, with the reason (above the bot, managed...).
    refused: dict[int, str] = field(default_factory=dict)
    role_names: dict[int, str] = field(default_factory=dict)
    #: Roles deleted in the server (what Discord would no longer list).
    deleted: set[int] = field(default_factory=set)


class MemoryGateway:
    def __init__(self) -> None:
        self.guilds: dict[int, MemoryGuild] = {}
        #: Every role change: (guild, user, added, removed).
        self.calls: list[tuple[int, int, frozenset[int], frozenset[int]]] = []
        self.logs: list[tuple[int, str]] = []
        self.complete = True
        self._failures: list[tuple[bool, str]] = []

    def add_guild(self, guild_id: int) -> MemoryGuild:
        return self.guilds.setdefault(guild_id, MemoryGuild())

    def fail_next(self, count: int = 1, *, permanent: bool = False, message: str = "Discord failed (503)") -> None:
        self._failures += [(permanent, message)] * count

    def guild_ids(self) -> list[int]:
        return list(self.guilds)

    async def member_roles(self, guild_id: int, user_id: int) -> frozenset[int] | None:
        return self.cached_member_roles(guild_id, user_id)

    def cached_member_roles(self, guild_id: int, user_id: int) -> frozenset[int] | None:
        guild = self.guilds.get(guild_id)
        roles = guild.members.get(user_id) if guild else None
        return None if roles is None else frozenset(roles)

    def knows_all_members(self, guild_id: int) -> bool:
        return self.complete

    def knows_member(self, guild_id: int, user_id: int) -> bool:
        return self.complete

    def unassignable_roles(self, guild_id: int, role_ids: frozenset[int]) -> dict[int, str]:
        refused = self.guilds[guild_id].refused
        return {role: refused[role] for role in role_ids if role in refused}

    def missing_permissions(self, guild_id: int) -> str | None:
        return None

    async def deleted_roles(self, guild_id: int, role_ids: frozenset[int]) -> frozenset[int]:
        guild = self.guilds.get(guild_id)
        return role_ids & frozenset(guild.deleted) if guild else frozenset()

    async def set_member_roles(
        self, guild_id: int, user_id: int, add: frozenset[int], remove: frozenset[int], reason: str
    ) -> None:
        self.calls.append((guild_id, user_id, add, remove))
        if self._failures:
            permanent, message = self._failures.pop(0)
            raise RoleChangeError(message, permanent=permanent)
        roles = self.guilds[guild_id].members[user_id]
        roles -= remove
        roles |= add

    def role_name(self, guild_id: int, role_id: int) -> str:
        return self.guilds[guild_id].role_names.get(role_id, str(role_id))

    def user_name(self, user_id: int) -> str:
        return str(user_id)

    async def post_log(self, channel_id: int, text: str) -> None:
        self.logs.append((channel_id, text))
