"""Talking HTTP to Patreon, in one place: the request budget, retries and back-off, and what each answer means.

`PatreonClient` (bot/patreon/client.py) says what to ask; this says how: every attempt takes a slot of the one
`RequestBudget` (bot/patreon/budget.py) with its caller's priority, a 429 pauses every caller for its `Retry-After`,
5xx, timeouts and dropped connections back off exponentially, other 4xx never retry (repeated ones get a client
blocked at Patreon's edge), and every failure reaches the caller as one of the `bot.patreon.errors` exceptions.
"""

from __future__ import annotations

import codecs
import collections
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import aiohttp
from yarl import URL

from bot.patreon import jsonapi
from bot.patreon.budget import Priority, RequestBudget
from bot.patreon.errors import (
    PatreonAuthError,
    PatreonBadResponse,
    PatreonCursorExpired,
    PatreonNotFound,
    PatreonRequestError,
    PatreonUnavailable,
)
from bot.patreon.jsonapi import JsonApiError

log = logging.getLogger(__name__)

T = TypeVar("T")
TOKEN_PATH = "/api/oauth2/token"


def utc_now() -> datetime:
    return datetime.now(UTC)


def _retry_after(headers: Mapping[str, str], body: Any) -> float | None:
    """`Retry-After` header first (seconds), then the body's `retry_after_seconds`; None if neither says."""
    header = headers.get("Retry-After")
    if header is not None:
        try:
            return max(0.0, float(header))
        except ValueError:
            pass
    for item in jsonapi.parse_api_errors(body):
        value = item.get("retry_after_seconds")
        if isinstance(value, int | float) and not isinstance(value, bool):
            return max(0.0, float(value))
    return None


def _decode_json(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


class PatreonTransport:
    """Requests to Patreon over a caller-owned `aiohttp.ClientSession`, with the retry policy in `_request`: 429
    waits for `Retry-After` (or the body's `retry_after_seconds`) unless that is longer than `max_retry_wait`,
    when it gives up at once with `PatreonUnavailable`; 5xx, timeouts and connection errors back off
    exponentially from `retry_base_delay`; other 4xx never retry. A 429 also pauses `budget` for everyone, not
    only the caller that got it (the limit is the client's). `budget`: None builds one on Patreon's documented
    limit."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        user_agent: str,
        max_retries: int,
        max_retry_wait: float,
        retry_base_delay: float,
        request_timeout: float,
        clock: Callable[[], datetime],
        sleep: Callable[[float], Awaitable[None]],
        budget: RequestBudget | None,
    ) -> None:
        self._session = session
        #: The client-wide request budget every attempt goes through (one per client, shared by all campaigns).
        self.budget = budget if budget is not None else RequestBudget()
        self.base_url = base_url.rstrip("/")
        self.user_agent = user_agent
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self.retry_base_delay = retry_base_delay
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._clock = clock
        self._sleep = sleep
        #: Every HTTP attempt, retries included (benchmarks and tests read it).
        self.request_count = 0
        #: Every answer by HTTP status, "error" for a timeout or a dropped connection (the /metrics endpoint reads it).
        self.response_counts: collections.Counter[str] = collections.Counter()

    def _parse(self, parser: Callable[..., T], body: Any, *args: Any) -> T:
        try:
            return parser(body, *args)
        except JsonApiError as error:
            raise PatreonBadResponse(str(error)) from error

    def _backoff(self, attempt: int) -> float:
        return float(self.retry_base_delay * (2**attempt))

    async def _request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        params: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
        json_body: Any = None,
        priority: Priority = Priority.LOOKUP,
        key: str = "",
        raw: bool = False,
    ) -> Any:
        """Send one logical request, retrying 429/5xx/network failures; return the decoded JSON body (`raw`:
        a 2xx body's bytes, undecoded, or its text when it declares a charset other than UTF-8). Each
        attempt holds a budget slot of `priority`; `key` (a campaign id) takes turns with other keys' refresh work."""
        url_text = f"{self.base_url}{path}"
        if params:
            # Brackets must be percent-encoded (`fields%5Bmember%5D`) or Patreon answers 400; commas may stay.
            url_text += "?" + urlencode(params, quote_via=quote, safe=",")
        url = URL(url_text, encoded=True)
        headers = {"User-Agent": self.user_agent, "Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        attempt = 0
        while True:
            if self.budget.paused_for > self.max_retry_wait:  # someone's 429 asked for longer than we wait
                raise PatreonUnavailable(
                    f"{method} {path}: rate limited (Patreon asked the client to wait {self.budget.paused_for:.0f}s)",
                    status=429,
                    retry_after=self.budget.paused_for,
                )
            self.request_count += 1
            failure: PatreonUnavailable
            try:
                async with (
                    self.budget.slot(priority, key, token),
                    self._session.request(
                        method,
                        url,
                        headers=headers,
                        data=dict(form) if form is not None else None,
                        json=json_body,
                        timeout=self._timeout,
                        allow_redirects=False,
                    ) as response,
                ):
                    status = response.status
                    response_headers = response.headers
                    data = await response.read()
                    encoding = codecs.lookup(response.get_encoding()).name  # "utf-8", whatever its spelling
                self.response_counts[str(status)] += 1
            except (TimeoutError, aiohttp.ClientError) as error:
                self.response_counts["error"] += 1
                failure = PatreonUnavailable(f"{method} {path}: {type(error).__name__}: {error}".rstrip(": "))
                wait = self._backoff(attempt)
            else:
                if raw and 200 <= status < 300:  # the caller decodes it (a listing page: bot/patreon/member_pages.py)
                    return data if encoding == "utf-8" else data.decode(encoding, errors="replace")  # as declared
                text = data.decode(encoding, errors="replace")
                body = _decode_json(text)
                if status == 429:
                    asked = _retry_after(response_headers, body)
                    wait = self._backoff(attempt) if asked is None else asked
                    failure = PatreonUnavailable(
                        f"{method} {path}: rate limited"
                        + (f" (Retry-After {asked:g}s)" if asked is not None else " (no Retry-After)"),
                        status=status,
                        retry_after=asked,
                        errors=jsonapi.parse_api_errors(body),
                    )
                    self.budget.pause(wait)  # the limit is the client's: every caller waits, not only this one
                    if wait > self.max_retry_wait:
                        log.warning(
                            "patreon %s %s: 429 asks %.1fs > cap %.1fs; giving up",
                            method,
                            path,
                            wait,
                            self.max_retry_wait,
                        )
                        raise failure
                elif status >= 500:
                    failure = PatreonUnavailable(
                        f"{method} {path}: HTTP {status}", status=status, errors=jsonapi.parse_api_errors(body)
                    )
                    wait = self._backoff(attempt)
                else:
                    return self._interpret(method, path, status, text, body)
            if attempt >= self.max_retries:
                log.warning("patreon %s %s failed after %d attempts: %s", method, path, attempt + 1, failure)
                raise failure
            attempt += 1
            log.info("patreon %s %s: %s; retry %d/%d in %.2fs", method, path, failure, attempt, self.max_retries, wait)
            await self._sleep(wait)

    def _interpret(self, method: str, path: str, status: int, text: str, body: Any) -> Any:
        """Map a non-retryable answer to a result or the right exception."""
        errors = jsonapi.parse_api_errors(body)
        first = errors[0] if errors else {}
        if 200 <= status < 300:
            if status == 204 or not text.strip():
                return None
            if body is None:
                raise PatreonBadResponse(f"{method} {path}: HTTP {status} body is not JSON: {text[:120]!r}")
            return body
        detail = first.get("detail") or first.get("title") or text[:200]
        if status in (401, 403) or (path == TOKEN_PATH and status == 400):
            raise PatreonAuthError(
                f"{method} {path}: HTTP {status}: {first.get('code_name') or ''} {detail or ''}".strip(),
                status=status,
                error=first.get("error") or first.get("code_name"),
                error_description=first.get("error_description") or first.get("detail"),
                errors=errors,
            )
        message = f"{method} {path}: HTTP {status}: {detail}"
        if status == 404:
            raise PatreonNotFound(message, status=status, errors=errors)
        if any(_is_cursor_error(item) for item in errors):
            raise PatreonCursorExpired(message, status=status, errors=errors)
        raise PatreonRequestError(message, status=status, errors=errors)


def _is_cursor_error(item: Mapping[str, Any]) -> bool:
    source = item.get("source")
    parameter = source.get("parameter") if isinstance(source, Mapping) else None
    return parameter == "page[cursor]" or (item.get("code") == 3 and "cursor" in str(item.get("detail", "")).lower())
