"""`FakePatreon`: a loopback Patreon API v2 for tests, benchmarks and the demo, plus its control API.

Everything a test needs to arrange (tiers, users, memberships, codes, faults, webhooks) is a plain method
here; everything the bot sees goes over real HTTP to `base_url`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import web

from fakes.patreon.app import CursorEntry, build_app
from fakes.patreon.faults import TRUNCATED_JSON, BodyRewrite, Fault, FaultPlan, Rewrite
from fakes.patreon.oauth import ALL_SCOPES, DEFAULT_TOKEN_LIFETIME, FakeToken, TokenStore
from fakes.patreon.responses import ApiFailure, unauthorized
from fakes.patreon.samples import import_member_document
from fakes.patreon.state import DEFAULT, CampaignState, FakeMember, FakeTier, FakeUser, _Default
from fakes.patreon.webhooks import FakeWebhook, WebhookRegistry, deliver, delivery_document, sign

DEFAULT_REDIRECT_URIS = ("http://127.0.0.1:8080/patreon/callback",)


class FakePatreon:
    """One creator with one campaign, served on 127.0.0.1 after `await start()`."""

    def __init__(
        self,
        client_id: str = "fake-client",
        client_secret: str = "fake-secret",
        redirect_uris: Sequence[str] = DEFAULT_REDIRECT_URIS,
        *,
        campaign_id: str = "7654321",
        token_lifetime: int = DEFAULT_TOKEN_LIFETIME,
        now: datetime | None = None,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uris = tuple(redirect_uris)
        self.state = CampaignState(campaign_id, now=now)
        self.tokens = TokenStore(token_lifetime)
        self.webhooks = WebhookRegistry()
        self.faults = FaultPlan()
        self.cursors: dict[str, CursorEntry] = {}
        #: Every request as (method, path, query dict), in arrival order.
        self.calls: list[tuple[str, str, dict[str, str]]] = []
        #: The User-Agent of each request in `calls` (None when missing).
        self.user_agents: list[str | None] = []
        #: The raw (still percent-encoded) path and query of each request in `calls`.
        self.raw_paths: list[str] = []
        #: Who `GET /oauth2/authorize` approves as; None → the first active patron.
        self.next_authorizing_user: str | None = None
        self.base_url = "https://www.patreon.com"
        creator = self.tokens.issue(self.state.creator.id, ALL_SCOPES)
        self.creator_access_token = creator.access_token
        self.creator_refresh_token = creator.refresh_token
        self._deny_next = False
        self._cursor_expiry: int | None = None
        self._cursor_expiry_listings = 0
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> FakePatreon:
        self._closing.clear()
        self._runner = web.AppRunner(build_app(self), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        return self

    async def close(self) -> None:
        self._closing.set()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakePatreon:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/api/oauth2/v2"

    @property
    def campaign(self) -> CampaignState:
        """The one campaign (`.id`, `.tiers`, `.users`, `.members`, `.free_tier`, `.creator`)."""
        return self.state

    # ---------------------------------------------------------------- arranging the world

    def add_tier(
        self,
        tier_id: str,
        title: str,
        amount_cents: int,
        *,
        discord_role_ids: Iterable[str] | None = None,
        published: bool = True,
    ) -> FakeTier:
        return self.state.add_tier(tier_id, title, amount_cents, discord_role_ids=discord_role_ids, published=published)

    def add_user(
        self, user_id: str, full_name: str, discord_id: int | None = None, *, email: str | None = None
    ) -> FakeUser:
        return self.state.add_user(user_id, full_name, discord_id, email)

    def set_membership(
        self,
        user_id: str,
        patron_status: str | None = "active_patron",
        tier_ids: Iterable[str] | None = None,
        last_charge_status: str | _Default | None = DEFAULT,
        amount_cents: int | None = None,
        is_free_trial: bool = False,
        is_gifted: bool = False,
        last_charge_date: datetime | _Default | None = DEFAULT,
        next_charge_date: datetime | _Default | None = DEFAULT,
        lifetime_cents: int | None = None,
        pledge_cadence: int | _Default | None = DEFAULT,
    ) -> FakeMember:
        """Create or replace a membership. Unset charge fields follow from the status (Paid, Declined, ...)."""
        return self.state.set_membership(
            user_id,
            patron_status=patron_status,
            tier_ids=tier_ids,
            last_charge_status=last_charge_status,
            amount_cents=amount_cents,
            is_free_trial=is_free_trial,
            is_gifted=is_gifted,
            last_charge_date=last_charge_date,
            next_charge_date=next_charge_date,
            lifetime_cents=lifetime_cents,
            pledge_cadence=pledge_cadence,
        )

    def remove_membership(self, user_id: str) -> FakeMember | None:
        return self.state.remove_membership(user_id)

    def seed_members(self, n: int, tier_ids: Iterable[str] | None = None, rng_seed: int = 0) -> list[str]:
        return self.state.seed_members(n, tier_ids, rng_seed)

    def import_member_document(self, doc: Mapping[str, Any]) -> FakeMember:
        """Load a real captured member/webhook document; the campaign must be this fake's."""
        return import_member_document(self.state, doc)

    # ---------------------------------------------------------------- OAuth control

    def issue_code(
        self,
        user_id: str,
        *,
        redirect_uri: str | None = None,
        scopes: Sequence[str] = ("identity", "identity.memberships"),
    ) -> str:
        """The code `GET /oauth2/authorize` would have put on the redirect for this user."""
        if user_id not in self.state.users:
            raise KeyError(f"unknown fake Patreon user {user_id!r}")
        return self.tokens.issue_code(user_id, self.client_id, redirect_uri or self.redirect_uris[0], scopes)

    def issue_tokens(self, user_id: str, scopes: Sequence[str] = ("identity", "identity.memberships")) -> FakeToken:
        """A token pair without the OAuth dance (for tests that start already linked)."""
        return self.tokens.issue(user_id, scopes)

    def expire_token(self, access_token: str) -> None:
        """Make an access token fail with 401 from now on (its refresh token still works)."""
        token = self.tokens.by_access.get(access_token)
        if token is not None:
            token.expires_at = 0.0

    def deny_next_authorize(self) -> None:
        self._deny_next = True

    def take_deny_next_authorize(self) -> bool:
        deny, self._deny_next = self._deny_next, False
        return deny

    def authorizing_user_id(self) -> str | None:
        if self.next_authorizing_user is not None:
            return self.next_authorizing_user
        members = self.state.members
        for member_id in self.state.order:
            member = members[member_id]
            if not member.deleted and member.patron_status == "active_patron":
                return member.user_id
        return next((uid for uid in self.state.users if uid != self.state.creator.id), None)

    def require_token(self, request: web.Request, scope: str) -> FakeToken:
        """The bearer token of `request`, or a 401 like the real one (bad, expired, or missing the scope)."""
        header = request.headers.get("Authorization", "")
        token = self.tokens.lookup(header[7:].strip()) if header.startswith("Bearer ") else None
        if token is None or scope not in token.scopes:
            raise ApiFailure(unauthorized())
        return token

    # ---------------------------------------------------------------- faults and observation

    def count(self, path_prefix: str) -> int:
        return sum(1 for _method, path, _query in self.calls if path.startswith(path_prefix))

    def fail_next(self, path_regex: str, status: int = 500, count: int = 1) -> None:
        self.faults.add(Fault("fail", re.compile(path_regex), count, status=status))

    def rate_limit_next(self, path_regex: str, retry_after: float = 1, count: int = 1) -> None:
        self.faults.add(Fault("rate_limit", re.compile(path_regex), count, retry_after=retry_after))

    def delay_next(self, path_regex: str, seconds: float, count: int = 1) -> None:
        """Answer normally, but only after `seconds` (a slow Patreon)."""
        self.faults.add(Fault("delay", re.compile(path_regex), count, seconds=seconds))

    def hang_next(self, path_regex: str, count: int = 1) -> None:
        """Accept the request and never answer (until the fake closes): only the client's own timeout ends it."""
        self.faults.add(Fault("hang", re.compile(path_regex), count))

    def time_out_next(self, path_regex: str, seconds: float, count: int = 1) -> None:
        """Patreon does not answer in time: after `seconds` its edge (Cloudflare) gives up and sends its 524 page."""
        self.faults.add(Fault("edge_timeout", re.compile(path_regex), count, seconds=seconds))

    def cut_next(self, path_regex: str, count: int = 1) -> None:
        """Send a 200's headers and the start of its body, then close the connection (a dropped proxy)."""
        self.faults.add(Fault("cut", re.compile(path_regex), count))

    def malformed_next(self, path_regex: str, count: int = 1, body: bytes = TRUNCATED_JSON) -> None:
        """Answer 200 `application/json` with `body`, which is not JSON (by default a document cut off part way)."""
        self.faults.add(Fault("malformed", re.compile(path_regex), count, body=body))

    def rewrite_responses(self, path_regex: str, rewrite: Rewrite, count: int | None = None) -> None:
        """Pass the next `count` (None: every) successful JSON answers on matching paths through
        `rewrite(document, query)` before they are sent; `faults.clear()` ends it."""
        self.faults.add_rewrite(BodyRewrite(re.compile(path_regex), rewrite, count))

    def expire_cursor_after(self, n_pages: int, listings: int = 1) -> None:
        """The next `listings` members listings' cursors are rejected (400, code 3) when asked for page
        `n_pages + 1`."""
        self._cursor_expiry, self._cursor_expiry_listings = n_pages, listings

    def take_cursor_expiry(self) -> int | None:
        if self._cursor_expiry_listings <= 0:
            return None
        self._cursor_expiry_listings -= 1
        return self._cursor_expiry

    async def sleep_unless_closing(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), timeout=seconds)

    async def wait_closing(self) -> None:
        """Return when `close()` begins (how a hung request ends)."""
        await self._closing.wait()

    # ---------------------------------------------------------------- webhooks

    def add_webhook(self, uri: str, triggers: Iterable[str], secret: str | None = None) -> FakeWebhook:
        return self.webhooks.add(uri, list(triggers), self.state.campaign_id, secret)

    def sign(self, body: bytes, secret: str) -> str:
        return sign(body, secret)

    def render_member_webhook_body(self, trigger: str, user_id: str) -> bytes:
        """The body a real delivery carries (the trigger goes in the header, as with Patreon; a v1 `pledges:*`
        trigger gets the v1 pledge body)."""
        member_id = self.state.member_by_user.get(user_id)
        if member_id is None:
            raise KeyError(f"user {user_id!r} has never had a membership")
        doc = delivery_document(self.state, self.state.members[member_id], trigger, self.api_base)
        return json.dumps(doc).encode()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        return self._session

    async def send_webhook(
        self,
        trigger: str,
        user_id: str | None,
        *,
        secret: str | None = None,
        uri: str | None = None,
        body_override: bytes | str | Mapping[str, Any] | None = None,
        signature_override: str | None = None,
    ) -> tuple[int, str]:
        """Deliver one event to the first webhook subscribed to `trigger` (or to `uri`); (status, text).

        Status 0 means the receiver was unreachable. A paused webhook queues the event instead of sending.
        """
        hook = next((h for h in self.webhooks.hooks.values() if uri is not None and h.uri == uri), None)
        if hook is None and uri is None:
            hook = next(iter(self.webhooks.for_trigger(trigger)), None)
        if hook is None:
            if uri is None:
                raise LookupError(f"no webhook subscribes to {trigger!r}; add_webhook() or pass uri=")
            hook = FakeWebhook("unregistered", uri, [trigger], secret or "unregistered-secret", self.state.id)
        if body_override is None:
            if user_id is None:
                raise ValueError("user_id is needed unless body_override is given")
            body = self.render_member_webhook_body(trigger, user_id)
        elif isinstance(body_override, bytes):
            body = body_override
        elif isinstance(body_override, str):
            body = body_override.encode()
        else:
            body = json.dumps(body_override).encode()
        signature = signature_override or sign(body, secret or hook.secret)
        if hook.paused:
            hook.queue.append((trigger, body))
            return 0, "webhook paused; delivery queued"
        return await deliver(
            self._http(),
            hook,
            trigger,
            body,
            uri=uri,
            signature=signature,
            pause_after_failures=self.webhooks.pause_after_failures,
        )

    async def flush_webhook_queue(self, webhook_id: str) -> list[tuple[int, str]]:
        """Send a webhook's queued deliveries in order, stopping at the first failure (it stays queued)."""
        hook = self.webhooks.hooks[webhook_id]
        pending, hook.queue = hook.queue, []
        results: list[tuple[int, str]] = []
        for index, (trigger, body) in enumerate(pending):
            status, text = await deliver(
                self._http(), hook, trigger, body, pause_after_failures=self.webhooks.pause_after_failures
            )
            results.append((status, text))
            if not 200 <= status < 300:
                hook.queue.extend(pending[index + 1 :])
                break
        return results

    def schedule_flush(self, hook: FakeWebhook) -> None:
        """What PATCH `paused: false` triggers; `await fake.drain()` to wait for it."""
        task = asyncio.get_running_loop().create_task(self.flush_webhook_queue(hook.id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for background deliveries (queue flushes) to finish."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
