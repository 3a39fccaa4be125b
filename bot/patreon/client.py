"""The one Patreon client: OAuth, identity, campaign, members and webhooks (the retries: bot/patreon/transport.py).

Callers get typed results (`bot.domain.models`) or one of the `bot.patreon.errors` exceptions; they never see aiohttp.
The client keeps no tokens: whoever owns a token passes it in, and decides what a `PatreonAuthError` means
(refresh once, or ask the user to link again). Tokens never reach a log line. Every HTTP attempt takes a slot of
the one `RequestBudget` (bot/patreon/budget.py) with the priority its caller gives: look-ups before listing pages.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import aiohttp

from bot.domain.models import Campaign, Identity, MembershipSnapshot, MembersPage, TokenPair
from bot.patreon import jsonapi, member_pages
from bot.patreon.budget import Priority, RequestBudget
from bot.patreon.errors import PatreonBadResponse
from bot.patreon.jsonapi import Webhook
from bot.patreon.transport import TOKEN_PATH, PatreonTransport, utc_now

log = logging.getLogger(__name__)

T = TypeVar("T")

API_PREFIX = "/api/oauth2/v2"
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


def _listing_page(text: str | bytes, observed_at: datetime, requested: jsonapi.Requested) -> MembersPage:
    """A listing page whose members are decoded when read; one Patreon sent unreadably is then refused as the
    client refuses any document (`PatreonBadResponse`)."""
    return member_pages.parse_listing_text(
        text, observed_at, requested, refusal=lambda error: PatreonBadResponse(str(error))
    )


def _fields(by_type: jsonapi.Requested) -> dict[str, str]:
    return {f"fields[{kind}]": ",".join(names) for kind, names in by_type.items()}


class PatreonClient(PatreonTransport):
    """Async Patreon API v2 client: what to ask for, and the typed results (the requests themselves, with their
    retries and budget: `PatreonTransport`, bot/patreon/transport.py)."""

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
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        budget: RequestBudget | None = None,
    ) -> None:
        super().__init__(
            session,
            base_url=base_url,
            user_agent=user_agent,
            max_retries=max_retries,
            max_retry_wait=max_retry_wait,
            retry_base_delay=retry_base_delay,
            request_timeout=request_timeout,
            clock=clock,
            sleep=sleep,
            budget=budget,
        )
        self.client_id = client_id
        self._client_secret = client_secret
        self.redirect_uri = redirect_uri

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
