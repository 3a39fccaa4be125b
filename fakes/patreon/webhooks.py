"""Webhooks: the /webhooks API (server-generated secret, `paused` as bool or "false") and signed deliveries.

Deliveries are signed like Patreon's: `X-Patreon-Signature = hex(HMAC-MD5(webhook secret, raw body))`.
A failed delivery is queued; after `pause_after_failures` failures in a row the hook pauses, and PATCHing
`paused: false` sends the queue in order, as the v2 docs describe. Patreon documents no threshold: 3 is this fake's
pick (unconfirmed, docs/patreon-api.md).

Who sees what (docs "APIv2: Webhook Endpoints"): GET lists "the webhooks for the current user's campaign created by
the API client"; POST creates one "on the current user's campaign"; PATCH works "if the webhook was created by your
client"; every call "requires the `w:campaigns.webhook` scope". So a token sees only webhooks on campaigns its user
owns: another creator's webhook is a 404, as if it did not exist, and a campaign that isn't the token's is a 403
(the exact status for either is unconfirmed). Triggers must be v2 trigger names and the uri an absolute http(s) URL
(the validation errors' wording is the fake's own; Patreon's is unconfirmed).

A webhook made before API v2 still has the v1 triggers (`pledges:create`, `pledges:update`, `pledges:delete`)
and gets a v1 body: one `pledge` with `patron`, `reward` and `creator` relationships, signed the same way
(Patreon/platform-documentation `source/includes/_webhooks.md`, the v1 "Sample Webhook payload").
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from fakes.patreon.documents import DocumentBuilder, RequestError, member_delivery_document, parse_fields
from fakes.patreon.responses import ApiFailure, api_error, json_response
from fakes.patreon.state import CampaignState, FakeMember, iso

if TYPE_CHECKING:
    from fakes.patreon.fake import FakePatreon

SCOPE = "w:campaigns.webhook"
#: API v1 triggers (deprecated; v2 webhooks use `members:*`). Old hooks keep them; the v2 API can't make new ones.
LEGACY_TRIGGERS = frozenset({"pledges:create", "pledges:update", "pledges:delete"})
#: The v2 triggers (docs "APIv2: Webhook Endpoints", Triggers, and the posts triggers of the webhook guide).
V2_TRIGGERS = frozenset(
    {
        "members:create",
        "members:update",
        "members:delete",
        "members:pledge:create",
        "members:pledge:update",
        "members:pledge:delete",
        "posts:publish",
        "posts:update",
        "posts:delete",
    }
)


def sign(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.md5).hexdigest()


@dataclass(slots=True)
class FakeWebhook:
    id: str
    uri: str
    triggers: list[str]
    secret: str
    campaign_id: str
    paused: bool = False
    num_consecutive_times_failed: int = 0
    last_attempted_at: datetime | None = None
    #: Deliveries that failed, oldest first: (trigger, raw body).
    queue: list[tuple[str, bytes]] = field(default_factory=list)
    #: Every delivery attempt: (trigger, status or 0 for a connection error).
    attempts: list[tuple[str, int]] = field(default_factory=list)

    def attributes(self) -> dict[str, Any]:
        return {
            "last_attempted_at": iso(self.last_attempted_at),
            "num_consecutive_times_failed": self.num_consecutive_times_failed,
            "paused": self.paused,
            "secret": self.secret,
            "triggers": list(self.triggers),
            "uri": self.uri,
        }

    def resource(self, builder: DocumentBuilder | None = None) -> dict[str, Any]:
        full = self.attributes()
        attributes = full if builder is None else builder._attributes("webhook", full)
        return {"attributes": attributes, "id": self.id, "type": "webhook"}


class WebhookRegistry:
    def __init__(self) -> None:
        self.hooks: dict[str, FakeWebhook] = {}
        self._next_id = 3955
        self.pause_after_failures = 3

    def add(self, uri: str, triggers: list[str], campaign_id: str, secret: str | None = None) -> FakeWebhook:
        hook = FakeWebhook(str(self._next_id), uri, list(triggers), secret or secrets.token_urlsafe(48), campaign_id)
        self._next_id += 1
        self.hooks[hook.id] = hook
        return hook

    def for_trigger(self, trigger: str) -> list[FakeWebhook]:
        return [hook for hook in self.hooks.values() if trigger in hook.triggers]

    def on_campaign(self, campaign_id: str) -> list[FakeWebhook]:
        return [hook for hook in self.hooks.values() if hook.campaign_id == campaign_id]


def _paused_value(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ApiFailure(
        api_error(400, "Invalid parameter", f"paused must be a boolean, got {value!r}", parameter="paused")
    )


async def _read_document(request: web.Request) -> dict[str, Any]:
    """Lenient like the real server: no Content-Type needed, the body just has to be a JSON:API object."""
    try:
        doc = json.loads(await request.text())
    except ValueError:
        raise ApiFailure(api_error(400, "Bad Request", "Request body is not valid JSON")) from None
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, dict) or data.get("type") != "webhook":
        raise ApiFailure(api_error(400, "Bad Request", "Expected a 'webhook' resource in 'data'"))
    return data


def _triggers(value: Any) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(t, str) for t in value):
        raise ApiFailure(
            api_error(400, "Invalid parameter", "triggers must be a non-empty list of strings", parameter="triggers")
        )
    unknown = sorted({trigger for trigger in value if trigger not in V2_TRIGGERS})
    if unknown:
        raise ApiFailure(
            api_error(400, "Invalid parameter", f"unknown trigger(s): {', '.join(unknown)}", parameter="triggers")
        )
    return list(dict.fromkeys(value))


def _uri(value: Any) -> str:
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise ApiFailure(api_error(400, "Invalid parameter", "uri must be an absolute http(s) URL", parameter="uri"))
    return str(value)


def webhook_routes(fake: FakePatreon) -> list[web.RouteDef]:
    registry = fake.webhooks
    base = "/api/oauth2/v2/webhooks"

    def owned(user_id: str) -> set[str]:
        return {campaign.campaign_id for campaign in fake.directory.owned_by(user_id)}

    def find(request: web.Request, user_id: str) -> FakeWebhook:
        """The hook, if the token's user owns its campaign; anyone else's is not there at all."""
        hook = registry.hooks.get(request.match_info["webhook_id"])
        if hook is None or hook.campaign_id not in owned(user_id):
            raise ApiFailure(api_error(404, "Not Found", "Webhook not found", code=None))
        return hook

    def builder(request: web.Request) -> DocumentBuilder:
        try:
            return DocumentBuilder(fake.state, fake.api_base, parse_fields(request.query))
        except RequestError as error:
            raise ApiFailure(api_error(400, "Invalid parameter", error.detail, parameter=error.parameter)) from None

    async def list_hooks(request: web.Request) -> web.Response:
        token = fake.require_token(request, SCOPE)
        build = builder(request)
        mine = owned(token.user_id)
        data = [hook.resource(build) for hook in registry.hooks.values() if hook.campaign_id in mine]
        return json_response({"data": data, "meta": {"pagination": {"total": len(data)}}})

    async def get_hook(request: web.Request) -> web.Response:
        token = fake.require_token(request, SCOPE)
        return json_response({"data": find(request, token.user_id).resource(builder(request))})

    async def create_hook(request: web.Request) -> web.Response:
        token = fake.require_token(request, SCOPE)
        data = await _read_document(request)
        attributes = data.get("attributes")
        attributes = attributes if isinstance(attributes, dict) else {}
        uri = _uri(attributes.get("uri"))
        triggers = _triggers(attributes.get("triggers"))
        relationships = data.get("relationships")
        campaign = (relationships.get("campaign") or {}) if isinstance(relationships, dict) else {}
        linkage = campaign.get("data") if isinstance(campaign, dict) else None
        if not isinstance(linkage, dict) or not isinstance(linkage.get("id"), str):
            raise ApiFailure(
                api_error(400, "Invalid parameter", "relationships.campaign is required", parameter="campaign")
            )
        if linkage["id"] not in owned(token.user_id):
            raise ApiFailure(api_error(403, "Forbidden", "You do not own that campaign", code=None))
        hook = registry.add(uri, triggers, linkage["id"])
        return json_response({"data": hook.resource()}, status=201)

    async def patch_hook(request: web.Request) -> web.Response:
        token = fake.require_token(request, SCOPE)
        hook = find(request, token.user_id)
        attributes = (await _read_document(request)).get("attributes") or {}
        # Validate everything before changing anything: a bad field leaves the hook as it was.
        uri = _uri(attributes["uri"]) if "uri" in attributes else hook.uri
        triggers = _triggers(attributes["triggers"]) if "triggers" in attributes else hook.triggers
        paused = _paused_value(attributes["paused"]) if "paused" in attributes else hook.paused
        hook.uri, hook.triggers = uri, triggers
        if "paused" in attributes:
            hook.paused = paused
            if not paused and hook.queue:
                fake.schedule_flush(hook)
        return json_response({"data": hook.resource()})

    async def delete_hook(request: web.Request) -> web.Response:
        token = fake.require_token(request, SCOPE)
        del registry.hooks[find(request, token.user_id).id]
        return web.Response(status=204)

    return [
        web.get(base, list_hooks),
        web.post(base, create_hook),
        web.get(base + "/{webhook_id}", get_hook),
        web.patch(base + "/{webhook_id}", patch_hook),
        web.delete(base + "/{webhook_id}", delete_hook),
    ]


async def deliver(
    session: aiohttp.ClientSession,
    hook: FakeWebhook,
    trigger: str,
    body: bytes,
    *,
    uri: str | None = None,
    signature: str | None = None,
    pause_after_failures: int = 3,
) -> tuple[int, str]:
    """POST one delivery; failures are queued on the hook. Returns (status, text), status 0 if unreachable."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Patreon-Webhooks (fake)",
        "X-Patreon-Event": trigger,
        "X-Patreon-Signature": signature if signature is not None else sign(body, hook.secret),
    }
    hook.last_attempted_at = datetime.now(UTC)
    try:
        async with session.post(uri or hook.uri, data=body, headers=headers) as response:
            status, text = response.status, await response.text()
    except (aiohttp.ClientError, TimeoutError) as error:
        status, text = 0, f"{type(error).__name__}: {error}"
    hook.attempts.append((trigger, status))
    if 200 <= status < 300:
        hook.num_consecutive_times_failed = 0
    else:
        hook.num_consecutive_times_failed += 1
        hook.queue.append((trigger, body))
        if hook.num_consecutive_times_failed >= pause_after_failures:
            hook.paused = True
    return status, text


def _v1_related(kind: str, resource_id: str, path: str) -> dict[str, Any]:
    return {"data": {"id": resource_id, "type": kind}, "links": {"related": f"https://www.patreon.com/api/{path}"}}


def legacy_pledge_document(state: CampaignState, member: FakeMember) -> dict[str, Any]:
    """The v1 body of a `pledges:*` delivery for this membership: a `pledge`, not a `member`, with v1 ids."""
    user = state.users.get(member.user_id)
    tier_id = member.tier_ids[0] if member.tier_ids else None
    declined = member.patron_status == "declined_patron"
    relationships: dict[str, Any] = {
        "address": {"data": None},
        "card": {"data": None},
        "creator": _v1_related("user", state.creator.id, f"user/{state.creator.id}"),
        "patron": _v1_related("user", member.user_id, f"user/{member.user_id}"),
        "reward": _v1_related("reward", tier_id, f"rewards/{tier_id}") if tier_id else {"data": None},
    }
    included: list[dict[str, Any]] = [
        {"attributes": {"full_name": state.creator.full_name}, "id": state.creator.id, "type": "user"}
    ]
    if user is not None:
        included.append({"attributes": {"full_name": user.full_name}, "id": user.id, "type": "user"})
    if tier_id is not None:
        tier = state.tiers[tier_id]
        included.append(
            {"attributes": {"amount_cents": tier.amount_cents, "title": tier.title}, "id": tier_id, "type": "reward"}
        )
    return {
        "data": {
            "attributes": {
                "amount_cents": member.currently_entitled_amount_cents,
                "created_at": iso(member.pledge_relationship_start),
                "declined_since": iso(member.last_charge_date) if declined else None,
                "patron_pays_fees": False,
                "pledge_cap_cents": None,
            },
            "id": str(zlib.crc32(member.id.encode())),
            "relationships": relationships,
            "type": "pledge",
        },
        "included": included,
    }


def delivery_document(state: CampaignState, member: FakeMember, trigger: str, api_base: str) -> dict[str, Any]:
    """The body Patreon sends for `trigger`: the v1 pledge shape for a v1 trigger, else the v2 member shape."""
    if trigger in LEGACY_TRIGGERS:
        return legacy_pledge_document(state, member)
    return member_delivery_document(state, member, api_base)
