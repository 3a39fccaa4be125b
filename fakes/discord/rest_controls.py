"""What a test sees and breaks of the fake's REST traffic: recorded calls, the rate limits, injected faults, holds.

A mixin of `FakeDiscord` (fakes/discord/server.py), split from it so the platform class reads as state and
lifecycle; every method here works on the `RestGate` (fakes/discord/transport.py) all REST calls pass through.
"""

from __future__ import annotations

import re

from .rate_limits import RateLimiter, RateLimits
from .transport import HoldRule, RecordedCall, RestGate, failure_rule, rate_limited_rule


class RestControls:
    """The REST half of `FakeDiscord`'s control API."""

    _gate: RestGate

    # ---- recorded REST traffic -----------------------------------------------------------------

    @property
    def calls(self) -> list[RecordedCall]:
        """Every REST call in arrival order (including refused and injected ones)."""
        return list(self._gate.calls)

    def calls_matching(self, method: str, path_regex: str) -> list[RecordedCall]:
        """Calls with this method whose path (no query string) `re.search`es `path_regex`; anchor with `$`."""
        pattern = re.compile(path_regex)
        return [c for c in self._gate.calls if c.method == method.upper() and pattern.search(c.path)]

    def clear_calls(self) -> None:
        """Forget recorded calls (e.g. after start-up traffic)."""
        self._gate.calls.clear()

    # ---- rate limits (fakes/discord/rate_limits.py) --------------------------------------------

    @property
    def rate_limits(self) -> RateLimits:
        """The limits being enforced."""
        return self._gate.limiter.limits

    @property
    def rate_limiter(self) -> RateLimiter:
        """The limits' state: `invalid_requests` (401/403/429 in the last 10 minutes), `banned_for()`, buckets."""
        return self._gate.limiter

    def set_rate_limits(self, limits: RateLimits) -> None:
        """Enforce other limits from now on, with fresh buckets and counters (e.g. real limits in one e2e test)."""
        self._gate.limiter = RateLimiter(limits, self._gate.limiter.clock)

    def rate_limited_calls(self, scope: str | None = None) -> list[RecordedCall]:
        """Calls answered 429 (enforced or injected), optionally of one scope (`user`, `global`, `shared`)."""
        return [c for c in self._gate.calls if c.status == 429 and (scope is None or c.scope == scope)]

    # ---- fault injection -----------------------------------------------------------------------

    def inject_rate_limit(
        self, method: str, path_regex: str, count: int = 1, retry_after: float = 0.05, global_: bool = False
    ) -> None:
        """The next `count` calls with this method whose path `re.search`es `path_regex` get a real 429."""
        self._gate.faults.append(rate_limited_rule(method, path_regex, count, retry_after, global_))

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int = 500,
        count: int = 1,
        *,
        code: int = 0,
        message: str | None = None,
    ) -> None:
        """The next `count` matching calls fail with `status` and Discord's error body.

        discord.py retries 500/502/504/524 itself after 1 s, 3 s, ...; use 503 or 4xx for an immediate error.
        """
        self._gate.faults.append(failure_rule(method, path_regex, status, count, code, message))

    def clear_faults(self) -> None:
        """Forget the injected failures and 429s not yet used (`fail_next`, `inject_rate_limit`): a burst is over."""
        self._gate.faults.clear()

    def hold_next(self, method: str, path_regex: str, *, seconds: float, count: int = 1) -> HoldRule:
        """The next `count` matching calls wait before Discord handles them: at most `seconds`, or until the
        returned rule's `release()`. Its `arrived`/`held` counters say when a call is being held.

        Use it to make Discord slow for one call, so that what happens meanwhile is arranged rather than timed.
        """
        rule = HoldRule(method.upper(), re.compile(path_regex), count, seconds)
        self._gate.holds.append(rule)
        return rule
