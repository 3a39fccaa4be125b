"""`FakePatreon`: a loopback Patreon API v2 for tests, benchmarks and the demo, plus its control API.

Everything a test needs to arrange (creators, campaigns, tiers, users, memberships, codes, revocations, faults,
webhooks) is a plain method here or on a `CampaignState`; everything the bot sees goes over real HTTP to `base_url`.
The fake starts as one creator (the client's owner) with one campaign; `add_creator` adds others.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import web

from fakes.patreon.app import CursorEntry, build_app
from fakes.patreon.deliveries import WebhookControl
from fakes.patreon.faults import TRUNCATED_JSON, BodyRewrite, Fault, FaultPlan, Rewrite
from fakes.patreon.oauth import ALL_SCOPES, DEFAULT_TOKEN_LIFETIME, FakeToken, TokenStore
from fakes.patreon.rate_limit import ClientRateLimit
from fakes.patreon.responses import ApiFailure, unauthorized
from fakes.patreon.samples import import_member_document
from fakes.patreon.state import DEFAULT, CampaignState, FakeMember, FakeTier, FakeUser, _Default
from fakes.patreon.webhooks import WebhookRegistry

DEFAULT_REDIRECT_URIS = ("http://127.0.0.1:8080/patreon/callback",)
#: `FakePatreon(rate_limit=...)` default: Patreon's documented client limit (fakes/patreon/rate_limit.py).
REAL_LIMIT = "real"


class FakePatreon(WebhookControl):
    """Creators and their campaigns (at first one creator, the client's owner, with one), served on 127.0.0.1
    after `await start()`."""

    def __init__(
        self,
        client_id: str = "fake-client",
        client_secret: str = "fake-secret",
        redirect_uris: Sequence[str] = DEFAULT_REDIRECT_URIS,
        *,
        campaign_id: str = "7654321",
        token_lifetime: int = DEFAULT_TOKEN_LIFETIME,
        now: datetime | None = None,
        rate_limit: ClientRateLimit | str | None = REAL_LIMIT,
    ) -> None:
        """`rate_limit`: Patreon's 100 requests per 2 s per client and 100 per minute per token by default
        (fakes/patreon/rate_limit.py); None relaxes both (say why)."""
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uris = tuple(redirect_uris)
        self.state = CampaignState(campaign_id, now=now)
        self.directory = self.state.directory
        #: The user who owns the OAuth client (the default creator): every scope is theirs, and without
        #: `identity.memberships` a patron's /identity shows only memberships of this user's campaigns.
        self.owner_id = self.state.creator.id
        self.tokens = TokenStore(token_lifetime)
        self.webhooks = WebhookRegistry()
        self.faults = FaultPlan()
        #: The per-client and per-token limits every `/api/` request is counted against (None: not enforced).
        self.rate_limit: ClientRateLimit | None = (
            ClientRateLimit()
            if rate_limit == REAL_LIMIT
            else (rate_limit if isinstance(rate_limit, ClientRateLimit) else None)
        )
        #: Every 429 the fake sent: its limit's and the scripted ones (`rate_limit_next`).
        self.http_429 = 0
        self.cursors: dict[str, CursorEntry] = {}
        #: Every request as (method, path, query dict), in arrival order.
        self.calls: list[tuple[str, str, dict[str, str]]] = []
        #: The User-Agent of each request in `calls` (None when missing).
        self.user_agents: list[str | None] = []
        #: The raw (still percent-encoded) path and query of each request in `calls`.
        self.raw_paths: list[str] = []
        #: Who `GET /oauth2/authorize` approves as; None → the first active patron.
        self.next_authorizing_user: str | None = None
        #: One-shot approvers (`approve_next_as`), used before `next_authorizing_user`.
        self._approvers: list[str] = []
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
        """The default campaign (`.id`, `.tiers`, `.users`, `.members`, `.free_tier`, `.creator`)."""
        return self.state

    @property
    def campaigns(self) -> dict[str, CampaignState]:
        """Every campaign by id, the default one first."""
        return self.directory.campaigns

    # ---------------------------------------------------------------- creators and campaigns

    def add_creator(
        self, user_id: str, full_name: str, campaign_id: str, *, vanity: str | None = None
    ) -> CampaignState:
        """Another creator (not the client's owner) with a campaign of their own; arrange it through the returned
        `CampaignState` (`add_tier`, `set_membership`, `seed_members`). Their token comes from the OAuth dance or
        `issue_tokens(user_id, CREATOR_SCOPES)`."""
        creator = self.state.add_user(user_id, full_name, None)
        return self.add_campaign(campaign_id, creator.id, vanity=vanity)

    def add_campaign(self, campaign_id: str, creator_id: str, *, vanity: str | None = None) -> CampaignState:
        """One more campaign owned by an existing user (a creator with several campaigns)."""
        creator = self.directory.users[creator_id]
        return CampaignState(
            campaign_id,
            vanity=vanity or f"creator{campaign_id}",
            now=self.state.now,
            directory=self.directory,
            creator=creator,
        )

    def revoke(self, user_id: str) -> int:
        """The user removes the app (Patreon: Settings > Connected Apps > Disconnect): from now on their refresh
        tokens answer `invalid_grant` and their access tokens 401. Returns how many token pairs died."""
        return self.tokens.revoke(user_id)

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
        granted = self.tokens.grant(user_id, scopes, owner=user_id == self.owner_id)
        return self.tokens.issue_code(user_id, self.client_id, redirect_uri or self.redirect_uris[0], granted)

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

    def approve_next_as(self, user_id: str) -> None:
        """The next `GET /oauth2/authorize` (only that one) is approved by this user: a creator connecting while
        patrons link around them. Several calls queue in order."""
        if user_id not in self.directory.users:
            raise KeyError(f"unknown fake Patreon user {user_id!r}")
        self._approvers.append(user_id)

    def authorizing_user_id(self) -> str | None:
        if self._approvers:
            return self._approvers.pop(0)
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
