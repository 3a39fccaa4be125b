"""A buffered writer for the servers' log channels, used by the background queue, and the inline poster of the
lines of a decision someone is waiting for (a command, a link page, a webhook).

Discord lets a bot post about five messages per five seconds to one channel. A refresh that changes a thousand
members would otherwise stall the role queue behind the log channel, so the queue's lines are gathered for a
moment and posted as few messages (each under Discord's 2,000 characters) by a task of their own. A decision's own
lines are posted one message each, at once, but the decision waits for them at most `inline_wait` seconds: past
that (a full bucket, a slow Discord) the line is posted by its own task, after the channel's earlier lines, and
an admin's comp or a patron's link page no longer waits out the log channel's rate limit.
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
        inline_wait: float = 1.0,
    ) -> None:
        self._post = post
        self.linger = linger
        self.max_lines = max_lines
        self.inline_wait = inline_wait
        self._lines: dict[int, list[str]] = {}
        self._dropped: dict[int, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._posting: dict[int, asyncio.Task[None]] = {}

    async def post_soon(self, channel_id: int, line: str) -> None:
        """Post one line as its own message, after any line of this channel still being posted; wait for it at
        most `inline_wait` seconds (not at all behind a line already late). It is posted either way."""
        earlier = self._posting.get(channel_id)
        task = asyncio.get_running_loop().create_task(self._post_after(earlier, channel_id, line[:MESSAGE_LIMIT]))
        self._posting[channel_id] = task
        task.add_done_callback(lambda done: self._posted(channel_id, done))
        if earlier is None:
            await asyncio.wait({task}, timeout=self.inline_wait)

    async def _post_after(self, earlier: asyncio.Task[None] | None, channel_id: int, line: str) -> None:
        if earlier is not None:
            await asyncio.wait({earlier})
        try:
            await self._post(channel_id, line)
        except Exception:  # a log line must never break the work it describes
            log.exception("could not post to log channel %s", channel_id)

    def _posted(self, channel_id: int, task: asyncio.Task[None]) -> None:
        if self._posting.get(channel_id) is task:
            del self._posting[channel_id]

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

    async def close(self, timeout: float = 5.0) -> None:
        """Post what waits; lines still in Discord's hands after `timeout` are given up (the process log has them)."""
        posting = set(self._posting.values())
        if posting:
            _done, late = await asyncio.wait(posting, timeout=timeout)
            for task in late:
                task.cancel()
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
