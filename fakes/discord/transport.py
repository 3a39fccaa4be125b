"""HTTP plumbing every REST answer shares: JSON bodies, rate-limit headers, auth, recording, fault injection.

Why: discord.py's HTTP layer is picky. It parses JSON only when Content-Type is exactly
`application/json`, serialises a route without X-RateLimit-* headers, and treats a 429 without a
`Via` header as a Cloudflare ban. This module gets those details right once for every route.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from . import errors

API_PREFIX = "/api/v10"
REQUEST_BODY: web.RequestKey[Any] = web.RequestKey("fake_body", object)
"""Where the middleware leaves the parsed request body for the route handlers."""
RATE_LIMIT = 50


@dataclass(frozen=True)
class RecordedCall:
    """One REST call the bot made: path is relative to /api/v10 and has no query string."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    reason: str | None
    status: int
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
    """X-RateLimit-* headers (bucket added per route); generous `remaining` keeps discord.py concurrent."""
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
        "Retry-After": str(max(1, round(retry_after))),
        "X-RateLimit-Scope": "global" if global_ else "user",
        **ratelimit_headers(remaining=0, reset_after=retry_after),
    }
    if global_:
        headers["X-RateLimit-Global"] = "true"
    body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": global_}
    return FaultRule(method.upper(), re.compile(path_regex), count, 429, body, headers)


def failure_rule(
    method: str, path_regex: str, status: int, count: int, code: int = 0, message: str | None = None
) -> FaultRule:
    """A generic upstream failure (5xx, 403, ...) with Discord's error body."""
    body = {"message": message or f"{status}: injected failure", "code": code}
    return FaultRule(method.upper(), re.compile(path_regex), count, status, body, {})


def _bucket_for(request: web.Request) -> str:
    """A stable bucket hash per route template, like Discord's X-RateLimit-Bucket."""
    resource = request.match_info.route.resource
    template = resource.canonical if resource is not None else request.path
    return hashlib.sha1(f"{request.method} {template}".encode()).hexdigest()[:16]


async def read_body(request: web.Request) -> Any:
    """The JSON body, or the `payload_json` part of a multipart upload; None when empty."""
    if request.content_type.startswith("multipart/"):
        form = await request.post()
        raw = form.get("payload_json")
        return json.loads(raw) if isinstance(raw, str) else None
    text = await request.text()
    return json.loads(text) if text else None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RestGate:
    """The middleware state: expected token, fault rules and the call log."""

    def __init__(self, bot_token: str) -> None:
        self.bot_token = bot_token
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

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Authenticate, inject faults, run the route, add rate-limit headers and record the call."""
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
        fault = self._take_fault(request.method, path)
        response: web.StreamResponse
        if fault is not None:
            response = json_response(fault.body, fault.status, fault.headers)
        elif self._needs_bot_auth(path) and request.headers.get("Authorization") != f"Bot {self.bot_token}":
            response = error_response(errors.unauthorized())
        else:
            try:
                response = await handler(request)
            except errors.DiscordAPIError as exc:
                response = error_response(exc)
            except web.HTTPException as exc:
                response = json_response({"message": f"{exc.status}: {exc.reason}", "code": 0}, exc.status)
        if "X-RateLimit-Remaining" not in response.headers:
            response.headers.update(ratelimit_headers())
        response.headers.setdefault("X-RateLimit-Bucket", _bucket_for(request))
        self.calls.append(RecordedCall(request.method, path, dict(request.query), body, reason, response.status))
        return response
