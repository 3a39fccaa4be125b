"""Patreon's per-client request limit, enforced by the fake by default, so the bot's budget is proven against it.

Documented (docs.patreon.com, "Rate limits", November 2024): 100 requests per 2 seconds per client, and 100 per
minute per access token; a client must handle 429. What a 429 looks like (observed since December 2024): a
`Retry-After` header in whole seconds, and a JSON:API error body `{"errors": [{"code": null, "code_name":
"RequestThrottled", "retry_after_seconds": N, "status": "429", ...}]}` (`fakes.patreon.app` sends exactly that).

Unconfirmed, so the fake takes the strictest reading: whether the window is fixed or sliding (the fake slides it:
no 2 s span may hold more than `limit` requests), whether a refused request counts (here it does, so a client that
keeps hammering stays refused), and what Retry-After says (here: the whole seconds until the window has room, at
least 1). Every request under `/api/` counts, the token endpoint included: the fake serves one client. The
per-token limit is available (`per_token`) but off by default: the documented refresh of a 100,000-member campaign
walks 100 pages with one creator token, and whether Patreon counts those against the token is unconfirmed.
Tests that need speed may relax the limit explicitly (`FakePatreon(rate_limit=None)` or `fake.rate_limit = None`).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

CLIENT_LIMIT = 100
CLIENT_WINDOW_SECONDS = 2.0
TOKEN_LIMIT = 100
TOKEN_WINDOW_SECONDS = 60.0


@dataclass
class _Window:
    limit: int
    seconds: float
    arrivals: deque[float] = field(default_factory=deque)

    def admit(self, now: float) -> float | None:
        """Count one arrival; None when it is within the limit, else the seconds until there is room."""
        while self.arrivals and self.arrivals[0] <= now - self.seconds:
            self.arrivals.popleft()
        self.arrivals.append(now)
        if len(self.arrivals) <= self.limit:
            return None
        return self.arrivals[-self.limit - 1] + self.seconds - now


@dataclass
class ClientRateLimit:
    """The client's sliding window (and optionally one per token); `http_429` counts what it refused."""

    limit: int = CLIENT_LIMIT
    seconds: float = CLIENT_WINDOW_SECONDS
    per_token: tuple[int, float] | None = None
    monotonic: Callable[[], float] = time.monotonic
    #: 429s this limit sent (scripted 429s are counted by `FakePatreon.http_429`, which includes these).
    refused: int = 0
    #: The most requests seen in one window, refused ones included.
    peak: int = 0
    _client: _Window = field(init=False)
    _tokens: dict[str, _Window] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._client = _Window(self.limit, self.seconds)

    def check(self, token: str | None) -> int | None:
        """Count a request; None to serve it, else the whole seconds of its 429's Retry-After."""
        now = self.monotonic()
        wait = self._client.admit(now)
        self.peak = max(self.peak, len(self._client.arrivals))
        if token is not None and self.per_token is not None:
            window = self._tokens.setdefault(token, _Window(*self.per_token))
            token_wait = window.admit(now)
            if token_wait is not None:
                wait = max(wait or 0.0, token_wait)
        if wait is None:
            return None
        self.refused += 1
        return max(1, math.ceil(wait))
