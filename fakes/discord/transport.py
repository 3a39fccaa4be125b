"""HTTP plumbing every REST answer shares: JSON bodies, rate limits, auth, recording, fault injection.

Why: discord.py's HTTP layer is picky. It parses JSON only when Content-Type is exactly
`application/json`, serialises a route without X-RateLimit-* headers, and treats a 429 without a
`Via` header as a Cloudflare ban. This module gets those details right once for every route, and
asks `rate_limits.RateLimiter` (Discord's real limits, see that module) whether each call may go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from . import errors
from .rate_limits import RateLimiter, RateLimits

API_PREFIX = "/api/v10"
REQUEST_BODY: web.RequestKey[Any] = web.RequestKey("fake_body", object)
"""Where the middleware leaves the parsed request body for the route handlers."""
RATE_LIMIT = 50
"""The `X-RateLimit-Limit` an injected 429 (`rate_limited_rule`) reports."""


@dataclass(frozen=True)
class RecordedCall:
    """One REST call the bot made: path is relative to /api/v10 and has no query string."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    reason: str | None
    status: int
    scope: str | None = None
    """A 429's `X-RateLimit-Scope` (`user`, `global`, `shared`); None otherwise, and for a Cloudflare ban."""
    retry_after: float | None = None
    """A 429's `retry_after` (seconds), so a test can check that the client waited that long."""
    at: float = field(default_factory=time.monotonic)


@dataclass
class FaultRule:
    """Answer the next `remaining` calls whose method matches and whose path `re.search`es with a canned error."""

    method: str
    pattern: re.Pattern[str]
    remaining: int
    status: int
    body: dict[str, Any]
    headers: dict[str, str]

    def take(self, method: str, path: str) -> bool:
        """Consume one use if this rule applies to the call."""
        if self.remaining <= 0 or method != self.method or not self.pattern.search(path):
            return False
        self.remaining -= 1
        return True


@dataclass
class HoldRule:
    """Keep the next `remaining` calls whose method matches and whose path `re.search`es waiting before Discord
    looks at them: until `release()`, or at most `seconds` (a slow Discord). Nothing changes while a call is
    held, and no gateway event is sent; then it is handled as usual.

    `arrived` counts the calls caught so far and `held` those still waiting, so a test can wait for a call to be
    in Discord's hands before it arranges what should happen meanwhile.
    """

    method: str
    pattern: re.Pattern[str]
    remaining: int
    seconds: float
    arrived: int = 0
    held: int = 0
    _released: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def take(self, method: str, path: str) -> bool:
        """Consume one use if this rule applies to the call."""
        if self.remaining <= 0 or method != self.method or not self.pattern.search(path):
            return False
        self.remaining -= 1
        self.arrived += 1
        return True

    async def hold(self) -> None:
        """Wait until released or for `seconds`, whichever comes first."""
        self.held += 1
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._released.wait(), timeout=self.seconds)
        finally:
            self.held -= 1

    def release(self) -> None:
        """Let every held call (and any later one this rule catches) through now."""
        self._released.set()


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON answer with Content-Type exactly `application/json` (no charset suffix)."""
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    return web.Response(status=status, body=json.dumps(body).encode(), headers=all_headers)


def no_content() -> web.Response:
    """An empty 204 answer."""
    return web.Response(status=204)


def error_response(error: errors.DiscordAPIError) -> web.Response:
    """The JSON error body for a refusal."""
    return json_response(error.body(), status=error.status)


def ratelimit_headers(remaining: int = RATE_LIMIT - 1, reset_after: float = 1.0) -> dict[str, str]:
    """X-RateLimit-* headers for an injected answer (the bucket hash is added from the route's real bucket)."""
    return {
        "X-RateLimit-Limit": str(RATE_LIMIT),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
        "X-RateLimit-Reset-After": f"{reset_after:.3f}",
    }


def rate_limited_rule(method: str, path_regex: str, count: int, retry_after: float, global_: bool) -> FaultRule:
    """A 429 exactly as Discord sends it (Via header, retry_after in the body, remaining 0)."""
    headers = {
        "Via": "1.1 google",
        "Retry-After": str(max(1, math.ceil(retry_after))),
        "X-RateLimit-Scope": "global" if global_ else "user",
        **ratelimit_headers(remaining=0, reset_after=retry_after),
    }
    if global_:
        headers["X-RateLimit-Global"] = "true"
    body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": global_}
    if global_:
        del headers["X-RateLimit-Limit"], headers["X-RateLimit-Remaining"]
        del headers["X-RateLimit-Reset"], headers["X-RateLimit-Reset-After"]
    return FaultRule(method.upper(), re.compile(path_regex), count, 429, body, headers)


def failure_rule(
    method: str, path_regex: str, status: int, count: int, code: int = 0, message: str | None = None
) -> FaultRule:
    """A generic upstream failure (5xx, 403, ...) with Discord's error body."""
    body = {"message": message or f"{status}: injected failure", "code": code}
    return FaultRule(method.upper(), re.compile(path_regex), count, status, body, {})


def cloudflare_ban(seconds_left: float) -> web.Response:
    """What a banned IP gets: Cloudflare's 429, without `Via` or a JSON body (discord.py: "banned by Cloudflare")."""
    headers = {"Content-Type": "text/html", "Retry-After": str(max(1, math.ceil(seconds_left)))}
    return web.Response(status=429, body=b"error code: 1015", headers=headers)


def route_of(request: web.Request) -> tuple[str, dict[str, str]]:
    """The route template relative to /api/v10 (the path itself for an unknown route) and its path parameters."""
    resource = request.match_info.route.resource
    template = resource.canonical if resource is not None else request.path
    return template.removeprefix(API_PREFIX) or "/", dict(request.match_info)


async def read_body(request: web.Request) -> Any:
    """The JSON body, or the `payload_json` part of a multipart upload; None when empty."""
    if request.content_type.startswith("multipart/"):
        form = await request.post()
        raw = form.get("payload_json")
        return json.loads(raw) if isinstance(raw, str) else None
    text = await request.text()
    return json.loads(text) if text else None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Answer = tuple[web.StreamResponse, str | None, float | None]
"""A response, a 429's scope and its retry_after."""


class RestGate:
    """The middleware state: expected token, rate limiter, fault rules and the call log."""

    def __init__(self, bot_token: str, limiter: RateLimiter | None = None) -> None:
        self.bot_token = bot_token
        self.limiter = limiter if limiter is not None else RateLimiter(RateLimits.real())
        self.calls: list[RecordedCall] = []
        self.faults: list[FaultRule] = []
        self.holds: list[HoldRule] = []

    def _needs_bot_auth(self, path: str) -> bool:
        """Interaction and webhook-token routes authenticate by their token in the URL instead."""
        return not (path.startswith("/interactions/") or re.match(r"^/webhooks/\d+/[^/]+", path))

    def _take_hold(self, method: str, path: str) -> HoldRule | None:
        for rule in self.holds:
            if rule.take(method, path):
                return rule
        return None

    def release_holds(self) -> None:
        """Let every held call through (the fake is closing: nothing may stay stuck)."""
        for rule in self.holds:
            rule.release()

    def _take_fault(self, method: str, path: str) -> FaultRule | None:
        for rule in self.faults:
            if rule.take(method, path):
                return rule
        return None

    async def _answer(self, request: web.Request, handler: Handler, path: str) -> Answer:
        """The answer (and a 429's scope and wait). Order: a ban, an injected fault, auth, the limits, the route."""
        template, params = route_of(request)
        banned = self.limiter.banned_for()
        if banned > 0:
            return cloudflare_ban(banned), None, banned
        fault = self._take_fault(request.method, path)
        if fault is not None:
            if fault.status != 429:
                return json_response(fault.body, fault.status, fault.headers), None, None
            scope = fault.headers.get("X-RateLimit-Scope")
            return json_response(fault.body, 429, fault.headers), scope, float(fault.body["retry_after"])
        if self._needs_bot_auth(path) and request.headers.get("Authorization") != f"Bot {self.bot_token}":
            return error_response(errors.unauthorized()), None, None
        verdict = self.limiter.admit(request.method, template, params, request.headers.get("Authorization"))
        if verdict.status == 429:
            return json_response(verdict.body, 429, verdict.headers), verdict.scope, verdict.retry_after
        try:
            response = await handler(request)
        except errors.DiscordAPIError as exc:
            response = error_response(exc)
        except web.HTTPException as exc:
            response = json_response({"message": f"{exc.status}: {exc.reason}", "code": 0}, exc.status)
        response.headers.update(verdict.headers)
        return response, None, None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Hold, answer (ban, fault, auth, rate limits, route), add rate-limit headers, count and record the call."""
        if not request.path.startswith(API_PREFIX):
            return await handler(request)
        path = request.path[len(API_PREFIX) :] or "/"
        body = await read_body(request)
        request[REQUEST_BODY] = body
        raw_reason = request.headers.get("X-Audit-Log-Reason")
        reason = unquote(raw_reason) if raw_reason is not None else None
        hold = self._take_hold(request.method, path)
        if hold is not None:
            await hold.hold()
        response, scope, retry_after = await self._answer(request, handler, path)
        cloudflare = response.status == 429 and "Via" not in response.headers
        if not cloudflare and scope != "global":
            # Every answer from Discord carries its route's bucket (an injected or refused one too).
            template, params = route_of(request)
            bucket = self.limiter.bucket(request.method, template, params)
            for name, value in self.limiter.headers(bucket, self.limiter.clock()).items():
                response.headers.setdefault(name, value)
        self.limiter.record(response.status, scope)
        call = RecordedCall(
            request.method, path, dict(request.query), body, reason, response.status, scope, retry_after
        )
        self.calls.append(call)
        return response
