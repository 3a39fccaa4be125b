"""Discord's REST rate limits, enforced by the fake: per-route buckets, the global limit, the invalid-request ban.

Why: a fake that never says 429 lets a bot believe it can send 40 role edits a second into one server when Discord
allows 10 per 10 s. This module answers exactly as Discord does, so a bot that ignores the limits fails its tests
and a bench measures what real Discord would allow. It is on by default (`RateLimits.real()`); a test that needs
speed raises the limits explicitly with `RateLimits.relaxed()` and says why.

What is modelled, and where each fact comes from (docs/discord-api.md says the same in prose):
- Headers `X-RateLimit-Limit/Remaining/Reset/Reset-After/Bucket` on every answer, `X-RateLimit-Scope` (and
  `X-RateLimit-Global` for the global limit) only on a 429; a 429 body `{"message", "retry_after", "global"}`
  and a `Retry-After` header in whole seconds (rounded up). Source: Discord's developer documentation, Topics →
  Rate Limits ("Header Format", "Exceeding A Rate Limit"; discord/discord-api-docs `docs/topics/rate-limits.md`).
- Buckets are per route (and method) and per top-level resource: `guild_id`, `channel_id`, or `webhook_id` +
  token. The bucket hash doesn't include the resource, so two guilds see the same `X-RateLimit-Bucket` but count
  separately. Source: the same page, first section.
- Global: 50 requests per second per bot token; interaction endpoints (the callback and the webhook routes that
  carry the interaction token) are not bound by it. Source: the same page, "Global Rate Limit". The window is
  fixed, starting at the first request, as Discord's libraries model it (twilight's `GLOBAL_LIMIT_PERIOD`).
- Invalid requests: every 401, 403 and 429 counts, except a 429 with scope `shared`; 10,000 per 10 minutes earns
  a temporary ban (about an hour, as Discord support says). The ban answer is Cloudflare's, not Discord's: a 429
  without `Via` and without a JSON body, which discord.py reports as "banned by Cloudflare". Source: the same page,
  "Invalid Request Limit aka Cloudflare bans"; the ban's length and shape are not documented.
- Sliding windows for most routes since 2022 (`X-RateLimit-Reset-After` moves; `retry_after` is when one request
  frees up) but a fixed window of 10 for `PUT /guilds/{g}/members/{u}/roles/{r}`: discord/discord-api-docs issue
  7680 ("Inconsistent ratelimit implementation between routes", 2025). The window's length (10 s here) and whether
  `DELETE` shares the `PUT`'s bucket (shared here) are not documented, so both are switches.
- Per-route numbers other than the member-role one are not published (Discord says not to hard-code them); the
  defaults in `DEFAULT_ROUTES` are commonly reported values and can be replaced.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

MEMBER_ROLE = "/guilds/{guild_id}/members/{user_id}/roles/{role_id}"
"""The member-role route template (relative to /api/v10), for PUT and DELETE."""
MAJOR_PARAMETERS = ("guild_id", "channel_id")
"""Path parameters that split a bucket (webhooks split by id + token, see `major_resource`)."""
RATE_LIMITED_MESSAGE = "You are being rate limited."


@dataclass(frozen=True)
class Window:
    """At most `limit` requests per `seconds`: a fixed window (starts at the first request, resets whole) or a
    sliding one (a request frees up `seconds` after it was made)."""

    limit: int
    seconds: float
    fixed: bool = False


@dataclass(frozen=True)
class RouteLimit:
    """The window of one route (`method` + template relative to /api/v10); routes with the same `bucket` name
    share one bucket (and one `X-RateLimit-Bucket` hash)."""

    method: str
    template: str
    window: Window
    bucket: str = ""


DEFAULT_ROUTES: tuple[RouteLimit, ...] = (
    RouteLimit("POST", "/channels/{channel_id}/messages", Window(5, 5.0)),
    RouteLimit("PATCH", "/guilds/{guild_id}/members/{user_id}", Window(10, 10.0)),
    RouteLimit("GET", "/guilds/{guild_id}/members", Window(10, 10.0)),
    RouteLimit("POST", "/webhooks/{app_id}/{token}", Window(5, 2.0)),
)
"""Commonly reported per-route limits (not published by Discord); the member-role routes are set apart."""


@dataclass(frozen=True)
class RateLimits:
    """What the fake enforces. `RateLimits.real()` is Discord; `relaxed()` is for tests that need speed.

    Change one thing with `dataclasses.replace`, e.g. `replace(RateLimits.real(), member_role_shared=False)` or
    `replace(RateLimits.real(), member_role=Window(10, 0.5, fixed=True))` for a short window in a test.
    """

    member_role: Window = Window(10, 10.0, fixed=True)
    """`PUT`/`DELETE /guilds/{g}/members/{u}/roles/{r}`, per guild (issue 7680: 10, fixed; 10 s is a guess)."""
    member_role_shared: bool = True
    """Whether the PUT and the DELETE count in one bucket (undocumented; shared is the unkinder guess)."""
    routes: tuple[RouteLimit, ...] = DEFAULT_ROUTES
    default_route: Window = Window(50, 1.0)
    """Any route not listed: an assumption, set at the global ceiling so that the global limit binds first."""
    global_limit: Window = Window(50, 1.0, fixed=True)
    """Per bot token; interaction endpoints are exempt."""
    invalid_limit: Window = Window(10_000, 600.0)
    """401/403/429 answers (not scope `shared`) per IP before the ban."""
    ban_seconds: float = 3600.0

    @classmethod
    def real(cls) -> RateLimits:
        """Discord's limits (the default of `FakeDiscord`)."""
        return cls()

    @classmethod
    def relaxed(cls) -> RateLimits:
        """Limits no test reaches (headers still sent, the invalid-request ban still real): for tests whose
        subject is not rate limiting and that would otherwise wait for real windows."""
        big = Window(1_000_000, 1.0)
        return cls(
            member_role=Window(1_000_000, 1.0, fixed=True),
            routes=tuple(replace(route, window=big) for route in DEFAULT_ROUTES),
            default_route=big,
            global_limit=Window(1_000_000, 1.0, fixed=True),
        )


@dataclass
class Bucket:
    """One bucket's state for one top-level resource: the times of the requests it holds."""

    window: Window
    hash: str
    times: deque[float] = field(default_factory=deque)
    started: float | None = None

    def _expire(self, now: float) -> None:
        if self.window.fixed:
            if self.started is not None and now >= self.started + self.window.seconds:
                self.started = None
                self.times.clear()
        else:
            while self.times and self.times[0] <= now - self.window.seconds:
                self.times.popleft()

    def take(self, now: float) -> float | None:
        """Count a request, or return how long until one fits (nothing counted)."""
        self._expire(now)
        if len(self.times) >= self.window.limit:
            if self.window.fixed:
                assert self.started is not None
                return self.started + self.window.seconds - now
            return self.times[0] + self.window.seconds - now
        if self.window.fixed and self.started is None:
            self.started = now
        self.times.append(now)
        return None

    def remaining(self, now: float) -> int:
        self._expire(now)
        return max(0, self.window.limit - len(self.times))

    def reset_after(self, now: float) -> float:
        """Seconds until the bucket is whole again (fixed: the window's end; sliding: moves with each request)."""
        self._expire(now)
        if not self.times:
            return self.window.seconds
        if self.window.fixed:
            assert self.started is not None
            return self.started + self.window.seconds - now
        return self.times[-1] + self.window.seconds - now


@dataclass(frozen=True)
class Verdict:
    """What the limiter decided for one request: `status` 200 means go ahead (headers to add either way)."""

    status: int
    headers: dict[str, str]
    body: dict[str, object] | None = None
    scope: str | None = None
    retry_after: float | None = None


def _hash(name: str) -> str:
    return hashlib.sha1(name.encode()).hexdigest()[:32]


def _retry(seconds: float) -> float:
    return max(0.001, round(seconds, 3))


def major_resource(path: str, params: Mapping[str, str]) -> str:
    """The top-level resource that splits a bucket: guild, channel, or webhook id + token ('' for none)."""
    if path.startswith("/webhooks/") and "token" in params:
        return f"webhook:{params.get('app_id', '')}:{params['token']}"
    if path.startswith("/interactions/") and "token" in params:
        # Not documented: the callback is answered per interaction, so treat the interaction as its resource.
        return f"interaction:{params.get('interaction_id', '')}"
    return ",".join(f"{key}:{params[key]}" for key in MAJOR_PARAMETERS if key in params)


def exempt_from_global(path: str) -> bool:
    """Interaction endpoints: the callback and the interaction-token webhook routes."""
    return path.startswith("/interactions/") or path.startswith("/webhooks/")


class RateLimiter:
    """The fake's rate-limit state. `admit` decides a request; `record` counts its answer toward the ban.

    `clock` is monotonic seconds (tests may pass their own to move time without waiting); the `X-RateLimit-Reset`
    epoch is computed from `time.time()`.
    """

    def __init__(self, limits: RateLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self._routes = {(r.method, r.template): r for r in limits.routes}
        self._buckets: dict[tuple[str, str], Bucket] = {}
        self._global: dict[str, Bucket] = {}
        self._invalid: deque[float] = deque()
        self.banned_until: float | None = None
        self.invalid_total = 0
        """Every invalid answer ever counted (the window's count is `invalid_requests`)."""

    # ---- routes ----------------------------------------------------------------------------------

    def route_window(self, method: str, template: str) -> tuple[str, Window]:
        """The bucket name and window of a route."""
        if template == MEMBER_ROLE and method in ("PUT", "DELETE"):
            name = "member-role" if self.limits.member_role_shared else f"member-role {method}"
            return name, self.limits.member_role
        route = self._routes.get((method, template))
        if route is not None:
            return route.bucket or f"{method} {template}", route.window
        return f"{method} {template}", self.limits.default_route

    def bucket(self, method: str, template: str, params: Mapping[str, str]) -> Bucket:
        """The bucket a request counts in (made on first use)."""
        name, window = self.route_window(method, template)
        key = (name, major_resource(template, params))
        found = self._buckets.get(key)
        if found is None:
            found = self._buckets[key] = Bucket(window, _hash(name))
        return found

    # ---- deciding --------------------------------------------------------------------------------

    def admit(self, method: str, template: str, params: Mapping[str, str], authorization: str | None) -> Verdict:
        """The global limit first (a global 429 uses up nothing), then the route's bucket."""
        now = self.clock()
        if not exempt_from_global(template):
            key = authorization or "ip"
            glob = self._global.get(key)
            if glob is None:
                glob = self._global[key] = Bucket(self.limits.global_limit, "")
            wait = glob.take(now)
            if wait is not None:
                return self._global_429(wait)
        bucket = self.bucket(method, template, params)
        wait = bucket.take(now)
        headers = self.headers(bucket, now)
        if wait is None:
            return Verdict(200, headers)
        retry = _retry(wait)
        headers.update({"Retry-After": str(math.ceil(retry)), "X-RateLimit-Scope": "user", "Via": "1.1 google"})
        body: dict[str, object] = {"message": RATE_LIMITED_MESSAGE, "retry_after": retry, "global": False}
        return Verdict(429, headers, body, "user", retry)

    def headers(self, bucket: Bucket, now: float) -> dict[str, str]:
        """The X-RateLimit-* headers of an answer from this bucket."""
        reset_after = _retry(bucket.reset_after(now))
        return {
            "X-RateLimit-Limit": str(bucket.window.limit),
            "X-RateLimit-Remaining": str(bucket.remaining(now)),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": bucket.hash,
        }

    def _global_429(self, wait: float) -> Verdict:
        retry = _retry(wait)
        headers = {
            "Retry-After": str(math.ceil(retry)),
            "X-RateLimit-Global": "true",
            "X-RateLimit-Scope": "global",
            "Via": "1.1 google",
        }
        body: dict[str, object] = {"message": RATE_LIMITED_MESSAGE, "retry_after": retry, "global": True}
        return Verdict(429, headers, body, "global", retry)

    # ---- the invalid-request limit ---------------------------------------------------------------

    def record(self, status: int, scope: str | None) -> None:
        """Count an answer toward the invalid-request limit; reaching it starts the ban."""
        if status not in (401, 403, 429) or scope == "shared" or self.banned_for() > 0:
            return
        now = self.clock()
        self._invalid.append(now)
        self.invalid_total += 1
        self._expire_invalid(now)
        if len(self._invalid) >= self.limits.invalid_limit.limit:
            self.banned_until = now + self.limits.ban_seconds

    def _expire_invalid(self, now: float) -> None:
        while self._invalid and self._invalid[0] <= now - self.limits.invalid_limit.seconds:
            self._invalid.popleft()

    @property
    def invalid_requests(self) -> int:
        """401/403/429 answers within the last window (10 minutes)."""
        self._expire_invalid(self.clock())
        return len(self._invalid)

    def banned_for(self) -> float:
        """Seconds of ban left (0 when not banned)."""
        if self.banned_until is None:
            return 0.0
        left = self.banned_until - self.clock()
        if left <= 0:
            self.banned_until = None
            self._invalid.clear()
            return 0.0
        return left
