"""Each Patreon token's own window for the request budget (bot/patreon/budget.py): 100 requests a minute per token.

Why apart from the client's window: a token's window is keyed by the token, and tokens come and go (every link,
every refresh), so its bookkeeping has to forget them. A token's id is a short hash (this object shows up in reprs
and logs). A refreshed token counts in its first predecessor's window (Patreon: refreshing doesn't reset the
limit), through a map of carried ids.

What is kept stays bounded however many tokens are used or refreshed (`forget_idle`, at most once a window): a
window is forgotten once nothing of it is running or within the window (a fresh one counts the same); a carried
id is forgotten when its window is, unless a waiting request still names that window, or once a later refresh
replaced its token and nothing used it for a whole window (a busy campaign's window may never empty, and one id
per refresh would pile up). A replaced token used again after that counts in a fresh window of its own: the bot
hands out the new token once it is stored, so only a request already holding the old one could (its retries).
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


def token_id(token: str | None) -> str | None:
    """What the budget keeps of a token: a short hash, never the token."""
    return None if token is None else hashlib.blake2b(token.encode(), digest_size=8).hexdigest()


@dataclass
class _Window:
    running: int = 0
    running_refresh: int = 0
    #: (when it ended, whether it was refresh work)
    ended: deque[tuple[float, bool]] = field(default_factory=deque)

    def refresh_taken(self) -> int:
        return self.running_refresh + sum(1 for _at, refresh in self.ended if refresh)


@dataclass(slots=True)
class _Carried:
    #: The id of the window this refreshed token counts in.
    window: str
    #: When a request last named this token (or when it was carried).
    used_at: float
    #: A later refresh replaced this token.
    replaced: bool = False


class TokenWindows:
    """Per token id: requests running and ended within `window_seconds + margin_seconds`; `limit` per window, of
    which refresh work may hold `refresh_limit`."""

    def __init__(self, limit: int, refresh_limit: int, window_seconds: float, margin_seconds: float) -> None:
        self.limit = limit
        self.refresh_limit = refresh_limit
        self.window_seconds = window_seconds
        self.hold = window_seconds + margin_seconds
        self._windows: dict[str, _Window] = {}
        self._carried: dict[str, _Carried] = {}
        self._swept_at: float | None = None

    def __repr__(self) -> str:
        return f"TokenWindows({len(self._windows)} window(s), {len(self._carried)} carried)"

    def __len__(self) -> int:
        """Token ids kept: windows and carried ids."""
        return len(self._windows.keys() | self._carried.keys())

    def window_id(self, token: str, now: float) -> str:
        """The id of the window a token counts in (its own, or its first predecessor's)."""
        tid = token_id(token)
        assert tid is not None
        carried = self._carried.get(tid)
        if carried is None:
            return tid
        carried.used_at = now
        return carried.window

    def carry(self, old: str, new: str, now: float) -> None:
        """`new` replaces `old` (a refresh): `new` counts in `old`'s window."""
        old_id, old_window, new_id = token_id(old), self.window_id(old, now), token_id(new)
        assert old_id is not None and new_id is not None
        if new_id == old_window:
            return
        self._carried[new_id] = _Carried(old_window, now)
        replaced = self._carried.get(old_id)
        if replaced is not None:
            replaced.replaced = True

    def has_room(self, tid: str, now: float, refresh: bool) -> bool:
        """Whether the window has a free slot for this lane (and forget what left it)."""
        window = self._current(tid, now)
        if window is None:
            return True
        if refresh and window.refresh_taken() >= self.refresh_limit:
            return False
        return window.running + len(window.ended) < self.limit

    def room(self, tid: str, now: float, refresh: bool) -> int:
        """Free slots of the window for this lane now, not counting requests waiting for it."""
        window = self._current(tid, now) or _Window()
        room = self.limit - window.running - len(window.ended)
        return min(room, self.refresh_limit - window.refresh_taken()) if refresh else room

    def lookups(self, tid: str, now: float) -> int:
        """The window's look-ups (not refresh work) running and ended within it."""
        window = self._current(tid, now) or _Window()
        return window.running + len(window.ended) - window.refresh_taken()

    def frees_in(self, tid: str, now: float) -> float | None:
        """Seconds until the window's oldest ended request leaves it (None: none has ended)."""
        window = self._windows.get(tid)
        if window is None or not window.ended:
            return None
        return max(0.0, window.ended[0][0] + self.hold - now)

    def frees_at(self, tids: Iterable[str]) -> float | None:
        """When the first of these windows gets a slot back by time (a running request's end frees one too)."""
        windows = [self._windows[t] for t in tids if t in self._windows]
        moments = [window.ended[0][0] + self.hold for window in windows if window.ended]
        return min(moments) if moments else None

    def take(self, tid: str, refresh: bool) -> int:
        """A request of this window starts; returns what the window holds now."""
        window = self._windows.setdefault(tid, _Window())
        window.running += 1
        window.running_refresh += refresh
        return window.running + len(window.ended)

    def release(self, tid: str, now: float, refresh: bool, *, count: bool) -> None:
        """A request of this window ended (`count` False: it never reached Patreon)."""
        window = self._windows[tid]
        window.running -= 1
        window.running_refresh -= refresh
        if count:
            window.ended.append((now, refresh))
        elif not window.running and not window.ended:
            del self._windows[tid]

    def forget_idle(self, now: float, waited_on: Callable[[], set[str]]) -> None:
        """At most once a window: forget idle windows, and carried ids no longer needed (see the module docstring);
        `waited_on()`: the window ids requests are waiting for now."""
        if self._swept_at is not None and now - self._swept_at < self.window_seconds:
            return
        self._swept_at = now
        for tid in list(self._windows):
            self._current(tid, now)
        waiting = waited_on() if self._carried else set()
        for tid, carried in list(self._carried.items()):
            idle = carried.window not in self._windows and carried.window not in waiting
            if idle or (carried.replaced and carried.used_at + self.hold <= now):
                del self._carried[tid]

    def _current(self, tid: str, now: float) -> _Window | None:
        """The window with what ended more than a window ago dropped; None (and forgotten) when nothing is left."""
        window = self._windows.get(tid)
        if window is None:
            return None
        while window.ended and window.ended[0][0] + self.hold <= now:
            window.ended.popleft()
        if not window.running and not window.ended:
            del self._windows[tid]
            return None
        return window
