"""Application commands synced by the bot, stored like Discord stores them.

Why: `invoke_slash` types its options from the schema the bot actually synced, so a command the bot
forgot to sync, or an option it renamed, fails in tests the way it would fail for users.
"""

from __future__ import annotations

import copy
from typing import Any

from .snowflake import SnowflakeFactory


class CommandRegistry:
    """Global and per-guild command lists; bulk overwrite keeps ids of commands that persist."""

    def __init__(self, application_id: int, ids: SnowflakeFactory) -> None:
        self.application_id = application_id
        self._ids = ids
        self._by_scope: dict[int | None, list[dict[str, Any]]] = {}

    def overwrite(self, guild_id: int | None, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """PUT semantics: the list replaces everything in that scope; returns the stored commands."""
        previous = {(c["name"], c.get("type", 1)): c for c in self._by_scope.get(guild_id, [])}
        stored = []
        for command in commands:
            key = (command["name"], command.get("type", 1))
            old = previous.get(key)
            stored.append(self._normalise(command, guild_id, old["id"] if old else None))
        self._by_scope[guild_id] = stored
        return copy.deepcopy(stored)

    def upsert(self, guild_id: int | None, command: dict[str, Any]) -> dict[str, Any]:
        """POST semantics: create or replace one command by name and type."""
        current = [c for c in self._by_scope.get(guild_id, [])]
        key = (command["name"], command.get("type", 1))
        old = next((c for c in current if (c["name"], c.get("type", 1)) == key), None)
        stored = self._normalise(command, guild_id, old["id"] if old else None)
        self._by_scope[guild_id] = [c for c in current if c is not old] + [stored]
        return copy.deepcopy(stored)

    def list(self, guild_id: int | None) -> list[dict[str, Any]]:
        """Commands of one scope (None = global), as Discord returns them."""
        return copy.deepcopy(self._by_scope.get(guild_id, []))

    def find(self, name: str, guild_id: int | None, command_type: int = 1) -> dict[str, Any] | None:
        """The command a user in `guild_id` would see: guild commands first, then global ones."""
        scopes = [guild_id, None] if guild_id is not None else [None]
        for scope in scopes:
            for command in self._by_scope.get(scope, []):
                if command["name"] == name and command.get("type", 1) == command_type:
                    return command
        return None

    def _normalise(self, command: dict[str, Any], guild_id: int | None, command_id: str | None) -> dict[str, Any]:
        stored = copy.deepcopy(command)
        stored.setdefault("type", 1)
        stored.setdefault("description", "")
        stored.setdefault("options", [])
        stored.setdefault("default_member_permissions", None)
        stored.setdefault("nsfw", False)
        stored["id"] = command_id or str(self._ids.next())
        stored["application_id"] = str(self.application_id)
        stored["version"] = str(self._ids.next())
        if guild_id is not None:
            stored["guild_id"] = str(guild_id)
        return stored
