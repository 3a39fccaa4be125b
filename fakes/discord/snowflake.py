"""Snowflake ids for objects the fake creates (messages, interactions, commands).

Why time-based: discord.py derives creation times from ids (e.g. to pick a delete rate-limit bucket),
so ids must decode to "now" like real ones.
"""

from __future__ import annotations

import itertools
import time

DISCORD_EPOCH_MS = 1420070400000


class SnowflakeFactory:
    """Hands out unique, increasing snowflakes stamped with the current time."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self._last = 0

    def next(self) -> int:
        """A new id, strictly greater than every id handed out before."""
        millis = int(time.time() * 1000) - DISCORD_EPOCH_MS
        candidate = (millis << 22) | (1 << 17) | (next(self._counter) & 0xFFF)
        self._last = max(candidate, self._last + 1)
        return self._last
