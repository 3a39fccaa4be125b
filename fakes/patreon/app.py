"""The fake's aiohttp app: request log, User-Agent check, scripted faults, and the read-only API resources."""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

from aiohttp import web

from fakes.patreon.documents import DocumentBuilder, RequestError, parse_fields, parse_include
from fakes.patreon.faults import EDGE_TIMEOUT_PAGE, seconds_text
from fakes.patreon.oauth import oauth_routes
from fakes.patreon.pages import render_members_page
from fakes.patreon.responses import ApiFailure, api_error, json_response
from fakes.patreon.state import CampaignState
from fakes.patreon.webhooks import webhook_routes

if TYPE_CHECKING:
    from fakes.patreon.fake import FakePatreon

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

API = "/api/oauth2/v2"
DEFAULT_PAGE_COUNT = 20
MAX_PAGE_COUNT = 1000
MAX_PAGE_COUNT_WITH_PLEDGE_HISTORY = 500
THROTTLED = "You have made too many attempts. Please try again later."


@dataclass(slots=True)
class Listing:
    """One walk through the members list; `expire_after` pages in, its cursor stops working."""

    expire_after: int | None = None


@dataclass(slots=True, frozen=True)
class CursorEntry:
    listing: Listing
    index: int
    page_number: int
    #: The campaign whose listing the cursor walks: another campaign's path refuses it.
    campaign_id: str = ""


def _cursor_error() -> ApiFailure:
    return ApiFailure(
        api_error(
            400,
            "Invalid parameter",
            "Cursor is invalid or has expired.",
            code=3,
            code_name="ParameterInvalid",
            parameter="page[cursor]",
        )
    )


def build_app(fake: FakePatreon) -> web.Application:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        fake.calls.append((request.method, request.path, dict(request.query)))
        fake.user_agents.append(request.headers.get("User-Agent"))
        fake.raw_paths.append(request.raw_path)
        if request.path.startswith("/api/") and not request.headers.get("User-Agent"):
            return api_error(403, "Forbidden", "Requests must send a User-Agent header.", code=None)
        if request.path.startswith("/api/") and fake.rate_limit is not None:
            bearer = request.headers.get("Authorization", "")
            token = bearer[7:] if bearer.startswith("Bearer ") else None
            known = fake.tokens.by_access.get(token) if token else None  # its grant: a refresh doesn't reset it
            retry_after = fake.rate_limit.check(token, known.user_id if known is not None else None)
            if retry_after is not None:
                return throttled(retry_after)
        fault = fake.faults.take(request.path)
        if fault is not None and fault.kind == "delay":
            await fake.sleep_unless_closing(fault.seconds)
        elif fault is not None and fault.kind == "hang":
            await fake.wait_closing()
            return api_error(503, "Service Unavailable", "The fake is shutting down.", code=None)
        elif fault is not None and fault.kind == "edge_timeout":
            await fake.sleep_unless_closing(fault.seconds)
            return web.Response(status=524, text=EDGE_TIMEOUT_PAGE, content_type="text/html")
        elif fault is not None and fault.kind == "cut":
            return await cut_connection(request)
        elif fault is not None and fault.kind == "malformed":
            return web.Response(status=200, body=fault.body, content_type="application/json")
        elif fault is not None and fault.kind == "rate_limit":
            return throttled(fault.retry_after)
        elif fault is not None:
            return api_error(fault.status, "Internal Server Error", "Injected failure.", code=None)
        try:
            return rewritten(request, await handler(request))
        except ApiFailure as failure:
            return failure.response
        except RequestError as error:
            return api_error(
                error.status,
                "Invalid parameter",
                error.detail,
                code=error.code,
                code_name="ParameterInvalid",
                parameter=error.parameter,
            )
        except web.HTTPNotFound:
            return api_error(404, "Not Found", f"No route for {request.method} {request.path}", code=None)

    def throttled(retry_after: float) -> web.Response:
        """Patreon's 429: Retry-After in seconds, and the RequestThrottled error with `retry_after_seconds`."""
        fake.http_429 += 1
        return api_error(
            429,
            THROTTLED,
            THROTTLED,
            code=None,
            code_name="RequestThrottled",
            headers={"Retry-After": seconds_text(retry_after)},
            retry_after_seconds=retry_after,
        )

    def rewritten(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
        """A successful JSON answer passed through the first matching `FakePatreon.rewrite_responses`."""
        if not (isinstance(response, web.Response) and 200 <= response.status < 300):
            return response
        if response.content_type != "application/json" or not isinstance(response.body, bytes):
            return response
        rewrite = fake.faults.take_rewrite(request.path)
        if rewrite is None:
            return response
        document = rewrite.rewrite(json.loads(response.body), request.query)
        response.body = json.dumps(document, separators=(",", ":")).encode()
        return response

    app = web.Application(middlewares=[middleware])
    app.add_routes(oauth_routes(fake))
    app.add_routes(webhook_routes(fake))
    app.add_routes(api_routes(fake))
    return app


async def cut_connection(request: web.Request) -> web.StreamResponse:
    """A 200's headers and the first bytes of its body, then the connection is closed under it: the client reads
    a body that ends early (aiohttp: `ClientPayloadError`), as when a proxy between it and Patreon goes away."""
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.content_length = 4096
    await response.prepare(request)
    await response.write(b'{"data": [')
    if request.transport is not None:
        request.transport.close()
    return response


def api_routes(fake: FakePatreon) -> list[web.RouteDef]:
    """The read-only resources, each answering for the token's own user: a creator sees their campaigns only.

    Someone else's campaign or member is a 403 and an unknown one a 404 (the rule this fake has always had; which
    of the two Patreon sends for another creator's campaign is unconfirmed). A token without the endpoint's scope
    gets the generic 401 body (patreondevelopers.com t/8908: /identity without `identity`, observed).
    """
    directory = fake.directory

    def builder(
        request: web.Request, root_type: str, state: CampaignState | None = None
    ) -> tuple[DocumentBuilder, dict[str, dict]]:
        tree = parse_include(request.query.get("include"), root_type)
        build = DocumentBuilder(state or fake.state, fake.api_base, parse_fields(request.query))
        build.include_requested = bool(tree)
        return build, tree

    def owned_campaign(request: web.Request, user_id: str) -> CampaignState:
        state = directory.campaigns.get(request.match_info["campaign_id"])
        if state is None:
            raise ApiFailure(api_error(404, "Not Found", "Campaign not found", code=None))
        if user_id != state.creator.id:
            raise ApiFailure(api_error(403, "Forbidden", "You do not own this campaign", code=None))
        return state

    async def identity(request: web.Request) -> web.Response:
        token = fake.require_token(request, "identity")
        user = directory.users[token.user_id]
        build, tree = builder(request, "user")
        # Docs ("GET /api/oauth2/v2/identity"): without `identity.memberships`, only the membership to the
        # client owner's campaign; with it, every membership the user has.
        if "identity.memberships" in token.scopes:
            build.membership_campaigns = list(directory.campaigns.values())
        else:
            build.membership_campaigns = directory.owned_by(fake.owner_id)
        data = build.identity(user, tree)
        return json_response(build.document(data, links={"self": f"{fake.api_base}/user/{user.id}"}))

    async def campaigns(request: web.Request) -> web.Response:
        token = fake.require_token(request, "campaigns")
        build, tree = builder(request, "campaign")
        data = [build.campaign(tree, state) for state in directory.owned_by(token.user_id)]
        return json_response(build.document(data, meta={"pagination": {"total": len(data)}}))

    async def campaign(request: web.Request) -> web.Response:
        token = fake.require_token(request, "campaigns")
        state = owned_campaign(request, token.user_id)
        build, tree = builder(request, "campaign", state)
        links = {"self": f"{fake.api_base}/campaigns/{state.campaign_id}"}
        return json_response(build.document(build.campaign(tree), links=links))

    async def members(request: web.Request) -> web.Response:
        token = fake.require_token(request, "campaigns.members")
        state = owned_campaign(request, token.user_id)
        tree = parse_include(request.query.get("include"), "member")
        fields = parse_fields(request.query)
        count_text = request.query.get("page[count]")
        try:
            count = DEFAULT_PAGE_COUNT if count_text is None else int(count_text)
        except ValueError:
            raise RequestError("page[count] must be an integer", "page[count]") from None
        if count < 1:
            raise RequestError("page[count] must be positive", "page[count]")
        count = min(count, MAX_PAGE_COUNT_WITH_PLEDGE_HISTORY if "pledge_history" in tree else MAX_PAGE_COUNT)
        cursor = request.query.get("page[cursor]")
        if cursor is None:
            listing, start, page_number = Listing(fake.take_cursor_expiry()), 0, 1
        else:
            entry = fake.cursors.get(cursor)
            if entry is None or entry.campaign_id != state.campaign_id:
                raise _cursor_error()
            if entry.listing.expire_after is not None and entry.page_number > entry.listing.expire_after:
                raise _cursor_error()
            listing, start, page_number = entry.listing, entry.index, entry.page_number
        page, next_index = state.listing(start, count)
        next_cursor: str | None = None
        links: dict[str, str] | None = None
        if next_index is not None:
            next_cursor = secrets.token_urlsafe(12)
            fake.cursors[next_cursor] = CursorEntry(listing, next_index, page_number + 1, state.campaign_id)
            query = {**request.query, "page[cursor]": next_cursor}
            links = {"next": f"{fake.base_url}{request.path}?{urlencode(query, quote_via=quote, safe=',')}"}
        meta = {"pagination": {"cursors": {"next": next_cursor}, "total": state.live_count}}
        body = render_members_page(state, fake.api_base, fields, tree, page, links=links, meta=meta)
        return web.Response(body=body, content_type="application/json")

    async def member(request: web.Request) -> web.Response:
        token = fake.require_token(request, "campaigns.members")
        located = directory.find_member(request.match_info["member_id"])
        if located is None or located[1].deleted:
            raise ApiFailure(api_error(404, "Not Found", "Member not found", code=None))
        state, found = located
        if token.user_id != state.creator.id:
            raise ApiFailure(api_error(403, "Forbidden", "You do not own this member's campaign", code=None))
        build, tree = builder(request, "member", state)
        data = build.member(found, tree)
        return json_response(build.document(data, links={"self": f"{fake.api_base}/members/{found.id}"}))

    return [
        web.get(f"{API}/identity", identity),
        web.get(f"{API}/campaigns", campaigns),
        web.get(f"{API}/campaigns/{{campaign_id}}", campaign),
        web.get(f"{API}/campaigns/{{campaign_id}}/members", members),
        web.get(f"{API}/members/{{member_id}}", member),
    ]
