"""The one Patreon client: OAuth, identity, campaign, members and webhooks, with retries in one place.

Callers get typed results (`bot.domain.models`) or one of the `bot.patreon.errors` exceptions; they never see aiohttp.
The client keeps no tokens: whoever owns a token passes it in, and decides what a `PatreonAuthError` means
(refresh once, or ask the user to link again). Tokens never reach a log line. Every HTTP attempt takes a slot of
the one `RequestBudget` (bot/patreon/budget.py) with the priority its caller gives: look-ups before listing pages.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import aiohttp
from yarl import URL

from bot.domain.models import Campaign, Identity, MembershipSnapshot, MembersPage, TokenPair
from bot.patreon import jsonapi, member_pages
from bot.patreon.budget import Priority, RequestBudget
from bot.patreon.errors import (
    PatreonAuthError,
    PatreonBadResponse,
    PatreonCursorExpired,
    PatreonNotFound,
    PatreonRequestError,
    PatreonUnavailable,
)
from bot.patreon.jsonapi import JsonApiError, Webhook

log = logging.getLogger(__name__)

T = TypeVar("T")

API_PREFIX = "/api/oauth2/v2"
TOKEN_PATH = "/api/oauth2/token"
AUTHORIZE_PATH = "/oauth2/authorize"

#: Every member attribute `MembershipSnapshot` carries. v2 returns nothing that is not asked for.
MEMBER_FIELDS = (
    "campaign_lifetime_support_cents",
    "currently_entitled_amount_cents",
    "full_name",
    "is_free_trial",
    "is_gifted",
    "last_charge_date",
    "last_charge_status",
    "next_charge_date",
    "patron_status",
    "pledge_cadence",
    "pledge_relationship_start",
    "will_pay_amount_cents",
)
USER_FIELDS = ("full_name", "social_connections")
TIER_FIELDS = ("title", "amount_cents", "patron_count", "published", "discord_role_ids")
CAMPAIGN_FIELDS = ("vanity", "url", "patron_count")
WEBHOOK_FIELDS = ("last_attempted_at", "num_consecutive_times_failed", "paused", "secret", "triggers", "uri")
MAX_PAGE_SIZE = 1000

#: The fieldsets each request sends; the parser holds the answer to them (an attribute asked for and absent
#: makes the document unusable rather than read as a default).
MEMBER_REQUEST_FIELDS: jsonapi.Requested = {"member": MEMBER_FIELDS, "user": USER_FIELDS, "tier": TIER_FIELDS}
CAMPAIGN_REQUEST_FIELDS: jsonapi.Requested = {"campaign": CAMPAIGN_FIELDS, "tier": TIER_FIELDS}
WEBHOOK_REQUEST_FIELDS: jsonapi.Requested = {"webhook": WEBHOOK_FIELDS}


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _listing_page(text: str, observed_at: datetime, requested: jsonapi.Requested) -> MembersPage:
    """A listing page whose members are decoded when read; one Patreon sent unreadably is then refused as the
    client refuses any document (`PatreonBadResponse`)."""
    return member_pages.parse_listing_text(
        text, observed_at, requested, refusal=lambda error: PatreonBadResponse(str(error))
    )


def _fields(by_type: jsonapi.Requested) -> dict[str, str]:
    return {f"fields[{kind}]": ",".join(names) for kind, names in by_type.items()}


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


class PatreonClient:
    """Async Patreon API v2 client over a caller-owned `aiohttp.ClientSession`.

    Retry policy (all in `_request`): 429 waits for `Retry-After` (or the body's `retry_after_seconds`), unless
    that is longer than `max_retry_wait`, in which case it gives up at once with `PatreonUnavailable`; 5xx,
    timeouts and connection errors back off exponentially from `retry_base_delay`. Other 4xx never retry:
    repeated 4xx get a client blocked at Patreon's edge. A 429 also pauses `budget` for everyone, not only the
    caller that got it (the limit is the client's). `budget`: None builds one on Patreon's documented limit.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str = "https://www.patreon.com",
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        user_agent: str,
        max_retries: int = 3,
        max_retry_wait: float = 60.0,
        retry_base_delay: float = 0.5,
        request_timeout: float = 30.0,
        clock: Callable[[], datetime] = _utcnow,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        budget: RequestBudget | None = None,
    ) -> None:
        self._session = session
        #: The client-wide request budget every attempt goes through (one per client, shared by all campaigns).
        self.budget = budget if budget is not None else RequestBudget()
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._client_secret = client_secret
        self.redirect_uri = redirect_uri
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

    def __repr__(self) -> str:
        return f"PatreonClient(base_url={self.base_url!r}, client_id={self.client_id!r})"

    # ------------------------------------------------------------------ OAuth

    def authorize_url(self, state: str, scopes: Sequence[str] = ("identity", "identity.memberships")) -> str:
        """Where to send a user to link Patreon; `state` comes back verbatim on the redirect (CSRF check)."""
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": " ".join(scopes),
            "state": state,
        }
        return f"{self.base_url}{AUTHORIZE_PATH}?{urlencode(query, quote_via=quote)}"

    async def exchange_code(self, code: str) -> TokenPair:
        """Trade the single-use `code` from the redirect for a token pair."""
        form = {
            "code": code,
            "grant_type": "authorization_code",
            "client_id": self.client_id,
            "client_secret": self._client_secret,
            "redirect_uri": self.redirect_uri,
        }
        return await self._token_request(form)

    async def refresh(self, refresh_token: str, *, priority: Priority = Priority.LOOKUP) -> TokenPair:
        """Rotate a pair. Refresh tokens are single use: persist the returned pair before anything else."""
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": self.client_id,
            "client_secret": self._client_secret,
        }
        return await self._token_request(form, priority)

    async def _token_request(self, form: dict[str, str], priority: Priority = Priority.LOOKUP) -> TokenPair:
        now = self._clock()
        body = await self._request("POST", TOKEN_PATH, form=form, priority=priority)
        return self._parse(jsonapi.parse_token_response, body, now)

    # ------------------------------------------------------------------ resources

    async def get_identity(self, access_token: str) -> Identity:
        """Who the token belongs to, their Discord link, and their membership(s) with entitled tiers."""
        params = {
            "include": "memberships.currently_entitled_tiers,memberships.campaign",
            **_fields(MEMBER_REQUEST_FIELDS),
        }
        body = await self._request("GET", f"{API_PREFIX}/identity", token=access_token, params=params)
        return self._parse(jsonapi.parse_identity, body, self._clock(), MEMBER_REQUEST_FIELDS)

    async def get_campaigns(self, access_token: str) -> list[Campaign]:
        """The campaigns the token's user owns, with tiers (normally one, for the creator token)."""
        params = {"include": "tiers", **_fields(CAMPAIGN_REQUEST_FIELDS)}
        body = await self._request("GET", f"{API_PREFIX}/campaigns", token=access_token, params=params)
        return self._parse(jsonapi.parse_campaigns, body, CAMPAIGN_REQUEST_FIELDS)

    async def get_campaign(
        self, access_token: str, campaign_id: str, *, priority: Priority = Priority.LOOKUP
    ) -> Campaign:
        """One campaign and all its tiers."""
        params = {"include": "tiers", **_fields(CAMPAIGN_REQUEST_FIELDS)}
        path = f"{API_PREFIX}/campaigns/{quote(campaign_id, safe='')}"
        body = await self._request("GET", path, token=access_token, params=params, priority=priority, key=campaign_id)
        return self._parse(jsonapi.parse_campaign, body, CAMPAIGN_REQUEST_FIELDS)

    async def iter_member_pages(
        self,
        access_token: str,
        campaign_id: str,
        page_size: int = MAX_PAGE_SIZE,
        *,
        priority: Priority = Priority.REFRESH,
    ) -> AsyncIterator[MembersPage]:
        """Every member of the campaign, page by page, following `meta.pagination.cursors.next`. Pages are
        refresh work by default: they wait behind look-ups and take turns with other campaigns' pages.

        Raises `PatreonCursorExpired` rather than stopping early when Patreon rejects a cursor: a truncated
        listing would look like "everyone else left". A page's members are decoded when first read (the refresh
        reads only the changed ones): a member the page can't be read with raises `PatreonBadResponse` then.
        """
        path = f"{API_PREFIX}/campaigns/{quote(campaign_id, safe='')}/members"
        base = {
            "include": "currently_entitled_tiers,user",
            **_fields(MEMBER_REQUEST_FIELDS),
            "page[count]": str(max(1, min(page_size, MAX_PAGE_SIZE))),
        }
        cursor: str | None = None
        seen_cursors: set[str] = set()
        while True:
            params = dict(base) if cursor is None else {**base, "page[cursor]": cursor}
            text = await self._request(
                "GET", path, token=access_token, params=params, priority=priority, key=campaign_id, raw=True
            )
            page = self._parse(_listing_page, text, self._clock(), MEMBER_REQUEST_FIELDS)
            yield page
            if page.next_cursor is None:
                return
            if page.next_cursor in seen_cursors:
                raise PatreonBadResponse(f"members listing of campaign {campaign_id} repeats a cursor")
            seen_cursors.add(page.next_cursor)
            cursor = page.next_cursor

    async def get_member(self, access_token: str, member_id: str) -> MembershipSnapshot:
        """A fresh look at one member (after a webhook: re-fetch rather than trust the payload)."""
        params = {
            "include": "currently_entitled_tiers,user,campaign",
            **_fields(MEMBER_REQUEST_FIELDS),
        }
        path = f"{API_PREFIX}/members/{quote(member_id, safe='')}"
        body = await self._request("GET", path, token=access_token, params=params)
        return self._parse(jsonapi.parse_member_document, body, self._clock(), MEMBER_REQUEST_FIELDS)

    # ------------------------------------------------------------------ webhooks

    async def list_webhooks(self, access_token: str) -> list[Webhook]:
        """The webhooks this client created (Patreon hides the others)."""
        params = _fields(WEBHOOK_REQUEST_FIELDS)
        body = await self._request("GET", f"{API_PREFIX}/webhooks", token=access_token, params=params)
        return self._parse(jsonapi.parse_webhooks, body, WEBHOOK_REQUEST_FIELDS)

    async def create_webhook(self, access_token: str, campaign_id: str, uri: str, triggers: Sequence[str]) -> Webhook:
        """Register `uri`; Patreon generates the signing secret and returns it here."""
        document = {
            "data": {
                "type": "webhook",
                "attributes": {"triggers": list(triggers), "uri": uri},
                "relationships": {"campaign": {"data": {"type": "campaign", "id": campaign_id}}},
            }
        }
        body = await self._request("POST", f"{API_PREFIX}/webhooks", token=access_token, json_body=document)
        created = self._read_created_webhook(body)
        log.info("patreon webhook %s created on campaign %s for %s", created.id, campaign_id, uri)
        return created

    async def update_webhook(
        self,
        access_token: str,
        webhook_id: str,
        *,
        uri: str | None = None,
        triggers: Sequence[str] | None = None,
        paused: bool | None = None,
    ) -> Webhook:
        """Change a webhook; `paused=False` also makes Patreon send the events it queued while we were down."""
        attributes: dict[str, Any] = {}
        if uri is not None:
            attributes["uri"] = uri
        if triggers is not None:
            attributes["triggers"] = list(triggers)
        if paused is not None:
            attributes["paused"] = paused
        document = {"data": {"id": webhook_id, "type": "webhook", "attributes": attributes}}
        path = f"{API_PREFIX}/webhooks/{quote(webhook_id, safe='')}"
        body = await self._request("PATCH", path, token=access_token, json_body=document)
        return self._read_webhook(body)

    def _read_created_webhook(self, body: Any) -> Webhook:
        """The answer to a create (CreatorClient reads it strictly, refusing one without its secret)."""
        return self._parse(jsonapi.parse_webhook, body)

    def _read_webhook(self, body: Any) -> Webhook:
        """The answer to an update (CreatorClient reads it strictly)."""
        return self._parse(jsonapi.parse_webhook, body)

    async def delete_webhook(self, access_token: str, webhook_id: str) -> None:
        path = f"{API_PREFIX}/webhooks/{quote(webhook_id, safe='')}"
        await self._request("DELETE", path, token=access_token)

    # ------------------------------------------------------------------ transport

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
        a 2xx body's text, undecoded). Each
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
                    text = await response.text(errors="replace")
                self.response_counts[str(status)] += 1
            except (TimeoutError, aiohttp.ClientError) as error:
                self.response_counts["error"] += 1
                failure = PatreonUnavailable(f"{method} {path}: {type(error).__name__}: {error}".rstrip(": "))
                wait = self._backoff(attempt)
            else:
                if raw and 200 <= status < 300:
                    return text  # the caller decodes it (a listing page: bot/patreon/member_pages.py)
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
