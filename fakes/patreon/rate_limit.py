"""Patreon's request limits, both enforced by the fake by default, so the bot's budget is proven against them.

Documented (docs.patreon.com, "Rate limits", November 2024): 100 requests per 2 seconds per client, **and** 100 per
minute per access token; the limits may change, refreshing a token doesn't reset them, and a client must handle
429. What a 429 looks like (observed since December 2024): a `Retry-After` header in whole seconds, and a JSON:API
error body `{"errors": [{"code": null, "code_name": "RequestThrottled", "retry_after_seconds": N, "status":
"429", ...}]}` (`fakes.patreon.app` sends exactly that, for either limit).

Unconfirmed, so the fake takes the strictest reading of each:
- whether a window is fixed or sliding: the fake slides both (no 2 s span may hold more than 100 requests of the
  client, no 60 s span more than 100 of one token);
- whether a refused request counts: here it does, towards both windows, so a client that keeps hammering stays
  refused;
- what Retry-After says: the whole seconds until every window the request broke has room again, at least 1;
- what counts against a token: every request under `/api/` that carries it as its bearer, listing pages and
  webhook-API calls included (a 100,000-member campaign's 100 pages take at least a minute with one token);
- what "a token" is, given that refreshing doesn't reset the limit: the grant (the user the token was issued to,
  for this one client), so a refreshed pair goes on counting in its predecessor's window. A bearer the fake
  doesn't know counts under its own string.
Every request under `/api/` counts towards the client's window, the token endpoint included (it carries no
bearer, so no token's). Tests that need speed relax the limits explicitly, with a comment why:
`FakePatreon(rate_limit=None)`, `fake.rate_limit = None`, or `ClientRateLimit(per_token=None)` to keep the
client's window only. The demo and the benches keep the defaults.
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
    """The client's sliding window and one per token (grant); `http_429` counts what it refused."""

    limit: int = CLIENT_LIMIT
    seconds: float = CLIENT_WINDOW_SECONDS
    #: (requests, seconds) per token; None: tokens aren't limited (a test that says why).
    per_token: tuple[int, float] | None = (TOKEN_LIMIT, TOKEN_WINDOW_SECONDS)
    monotonic: Callable[[], float] = time.monotonic
    #: 429s this limit sent (scripted 429s are counted by `FakePatreon.http_429`, which includes these).
    refused: int = 0
    #: Of `refused`, those a token's window refused (the client's had room, or both were full).
    refused_per_token: int = 0
    #: The most requests seen in one window, refused ones included.
    peak: int = 0
    #: The most requests one token had in its window, refused ones included.
    peak_per_token: int = 0
    _client: _Window = field(init=False)
    _tokens: dict[str, _Window] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._client = _Window(self.limit, self.seconds)

    def check(self, token: str | None, grant: str | None = None) -> int | None:
        """Count a request with this bearer `token` (None: none) of this `grant` (the token's user, when the fake
        knows the token); None to serve it, else the whole seconds of its 429's Retry-After."""
        now = self.monotonic()
        wait = self._client.admit(now)
        self.peak = max(self.peak, len(self._client.arrivals))
        if token is not None and self.per_token is not None:
            key = f"grant:{grant}" if grant is not None else f"token:{token}"
            window = self._tokens.setdefault(key, _Window(*self.per_token))
            token_wait = window.admit(now)
            self.peak_per_token = max(self.peak_per_token, len(window.arrivals))
            if token_wait is not None:
                self.refused_per_token += 1
                wait = max(wait or 0.0, token_wait)
        if wait is None:
            return None
        self.refused += 1
        return max(1, math.ceil(wait))
