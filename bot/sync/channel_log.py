"""A buffered writer for the servers' log channels, used by the background queue.

Discord lets a bot post about five messages per five seconds to one channel. A refresh that changes a thousand
members would otherwise stall the role queue behind the log channel, so the queue's lines are gathered for a
moment and posted as few messages (each under Discord's 2,000 characters) by a task of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 2000


class ChannelLog:
    def __init__(
        self,
        post: Callable[[int, str], Awaitable[None]],
        *,
        linger: float = 0.3,
        max_lines: int = 300,
    ) -> None:
        self._post = post
        self.linger = linger
        self.max_lines = max_lines
        self._lines: dict[int, list[str]] = {}
        self._dropped: dict[int, int] = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, channel_id: int, line: str) -> None:
        """Queue one line; past `max_lines` waiting lines they are counted, not kept (the process log has all)."""
        lines = self._lines.setdefault(channel_id, [])
        if len(lines) >= self.max_lines:
            self._dropped[channel_id] = self._dropped.get(channel_id, 0) + 1
        else:
            lines.append(line[: MESSAGE_LIMIT - 1])
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush_later())

    async def flush(self) -> None:
        """Post everything waiting now."""
        while self._lines:
            channel_id, lines = self._lines.popitem()
            dropped = self._dropped.pop(channel_id, 0)
            if dropped:
                lines.append(f"… and {dropped} more change(s); the bot's own log has them all.")
            for message in pack_messages(lines):
                try:
                    await self._post(channel_id, message)
                except Exception:  # a log line must never break the work it describes
                    log.exception("could not post to log channel %s", channel_id)

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.linger)
        await self.flush()


def pack_messages(lines: list[str]) -> list[str]:
    """Join lines into as few messages as fit Discord's length limit."""
    messages: list[str] = []
    current = ""
    for line in lines:
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > MESSAGE_LIMIT:
            messages.append(current)
            current = line
        else:
            current = candidate
    if current:
        messages.append(current)
    return messages
