"""What the observability code asks of the Discord adapter (bot/discord_io/roles.py implements it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class DiscordProbe(Protocol):
    def connected(self) -> bool:
        """Whether the gateway session is up now."""
        ...

    def role_call_counts(self) -> Mapping[str, int]:
        """Member-role calls by HTTP status, 429s included."""
        ...
