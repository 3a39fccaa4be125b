"""Turn Patreon's JSON:API documents into `bot.domain.models` dataclasses. Pure: no I/O, no clock.

Patreon v2 only returns the attributes and relationships that were asked for, real captures disagree with the
docs in small ways, and nulls turn up at every level. So every reader here is forgiving about *shape* (missing
attribute → the dataclass default, unknown enum value → None, garbage id → None) and strict only about the
one thing that means "this is not what we asked for at all": a document without `data`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bot.domain.models import (
    Campaign,
    Identity,
    MembershipSnapshot,
    MembersPage,
    PatreonUser,
    Tier,
    TokenPair,
)
from bot.patreon.values import (
    as_bool,
    as_datetime,
    as_int,
    as_optional_bool,
    as_optional_int,
    as_str,
    discord_id,
    patron_status,
)

Resource = Mapping[str, Any]
ResourceIndex = dict[tuple[str, str], Resource]

__all__ = [
    "JsonApiError",
    "Webhook",
    "parse_api_errors",
    "parse_campaign",
    "parse_campaigns",
    "parse_identity",
    "parse_member_document",
    "parse_members_page",
    "parse_token_response",
    "parse_webhook",
    "parse_webhooks",
]


class JsonApiError(ValueError):
    """The body is not the JSON:API document we expected (no `data`, wrong resource type, not an object)."""


@dataclass(frozen=True)
class Webhook:
    """A webhook registered on the campaign (only those created by our client are visible)."""

    id: str
    uri: str = ""
    triggers: tuple[str, ...] = ()
    paused: bool = False
    secret: str | None = None
    num_consecutive_times_failed: int = 0
    last_attempted_at: datetime | None = None


# ---------------------------------------------------------------- small, forgiving readers


def _attributes(resource: Resource) -> Mapping[str, Any]:
    attributes = resource.get("attributes")
    return attributes if isinstance(attributes, Mapping) else {}


def _relationship(resource: Resource, name: str) -> tuple[bool, Any]:
    """(present, linkage data). Present means the relationship key exists, even with `data: null`."""
    relationships = resource.get("relationships")
    if not isinstance(relationships, Mapping) or name not in relationships:
        return False, None
    relationship = relationships[name]
    if not isinstance(relationship, Mapping):
        return True, None
    return True, relationship.get("data")


def _to_one_id(resource: Resource, name: str) -> str | None:
    _present, data = _relationship(resource, name)
    if isinstance(data, Mapping):
        return as_str(data.get("id"))
    return None


def _to_many_ids(data: Any) -> tuple[str, ...]:
    if not isinstance(data, list):
        return ()
    ids: list[str] = []
    for item in data:
        if isinstance(item, Mapping):
            item_id = as_str(item.get("id"))
            if item_id is not None and item_id not in ids:
                ids.append(item_id)
    return tuple(ids)


def _require_document(doc: Any) -> Mapping[str, Any]:
    if not isinstance(doc, Mapping):
        raise JsonApiError(f"expected a JSON object, got {type(doc).__name__}")
    if "data" not in doc:
        if "errors" in doc:
            titles = ", ".join(str(e.get("title") or e.get("code_name")) for e in parse_api_errors(doc))
            raise JsonApiError(f"JSON:API error document, not data: {titles}")
        raise JsonApiError(f"not a JSON:API document: no 'data' (keys: {sorted(doc)[:8]})")
    return doc


def _require_resource(data: Any, expected_type: str) -> Resource:
    if not isinstance(data, Mapping):
        raise JsonApiError(f"expected one {expected_type!r} resource in 'data', got {type(data).__name__}")
    resource_type = data.get("type")
    if resource_type is not None and resource_type != expected_type:
        raise JsonApiError(f"expected a {expected_type!r} resource, got {resource_type!r}")
    return data


def _require_list(data: Any, expected_type: str) -> list[Resource]:
    if not isinstance(data, list):
        raise JsonApiError(f"expected a list of {expected_type!r} resources in 'data', got {type(data).__name__}")
    return [item for item in data if isinstance(item, Mapping) and item.get("type") in (None, expected_type)]


def _index_included(doc: Mapping[str, Any]) -> ResourceIndex:
    """`included` keyed by (type, id); a repeated resource is merged so no attribute is lost."""
    index: ResourceIndex = {}
    included = doc.get("included")
    if not isinstance(included, list):
        return index
    for item in included:
        if not isinstance(item, Mapping):
            continue
        key_type, key_id = as_str(item.get("type")), as_str(item.get("id"))
        if key_type is None or key_id is None:
            continue
        previous = index.get((key_type, key_id))
        if previous is None:
            index[(key_type, key_id)] = item
        else:
            index[(key_type, key_id)] = {
                **previous,
                "attributes": {**_attributes(previous), **_attributes(item)},
                "relationships": {**(previous.get("relationships") or {}), **(item.get("relationships") or {})},
            }
    return index


# ---------------------------------------------------------------- resources


def _tier(resource: Resource) -> Tier:
    attributes = _attributes(resource)
    role_ids = attributes.get("discord_role_ids")
    roles = tuple(str(r) for r in role_ids if as_str(r) is not None) if isinstance(role_ids, list) else ()
    return Tier(
        id=as_str(resource.get("id")) or "",
        title=as_str(attributes.get("title")) or "",
        amount_cents=as_int(attributes.get("amount_cents")),
        patron_count=as_optional_int(attributes.get("patron_count")),
        published=as_optional_bool(attributes.get("published")),
        discord_role_ids=roles,
    )


def _user(resource: Resource) -> PatreonUser:
    attributes = _attributes(resource)
    return PatreonUser(
        id=as_str(resource.get("id")) or "",
        full_name=as_str(attributes.get("full_name")),
        social_discord_id=discord_id(attributes.get("social_connections")),
    )


def _membership(
    resource: Resource,
    index: ResourceIndex,
    observed_at: datetime | None,
    owner: PatreonUser | None = None,
) -> MembershipSnapshot:
    """One member resource; `owner` is the identity user when the member has no `user` relationship of its own."""
    attributes = _attributes(resource)
    tiers_known, tier_data = _relationship(resource, "currently_entitled_tiers")
    user_id = _to_one_id(resource, "user")
    user: PatreonUser | None = None
    if user_id is not None:
        included_user = index.get(("user", user_id))
        user = _user(included_user) if included_user is not None else None
    elif owner is not None:
        user_id, user = owner.id, owner
    full_name = as_str(attributes.get("full_name"))
    if full_name is None and user is not None:
        full_name = user.full_name
    return MembershipSnapshot(
        member_id=as_str(resource.get("id")),
        campaign_id=_to_one_id(resource, "campaign"),
        patreon_user_id=user_id,
        full_name=full_name,
        patron_status=patron_status(attributes.get("patron_status")),
        last_charge_status=as_str(attributes.get("last_charge_status")),
        last_charge_date=as_datetime(attributes.get("last_charge_date")),
        next_charge_date=as_datetime(attributes.get("next_charge_date")),
        pledge_relationship_start=as_datetime(attributes.get("pledge_relationship_start")),
        pledge_cadence=as_optional_int(attributes.get("pledge_cadence")),
        currently_entitled_amount_cents=as_int(attributes.get("currently_entitled_amount_cents")),
        will_pay_amount_cents=as_int(attributes.get("will_pay_amount_cents")),
        campaign_lifetime_support_cents=as_int(attributes.get("campaign_lifetime_support_cents")),
        is_free_trial=as_bool(attributes.get("is_free_trial")),
        is_gifted=as_bool(attributes.get("is_gifted")),
        entitled_tier_ids=_to_many_ids(tier_data),
        tiers_known=tiers_known,
        social_discord_id=user.social_discord_id if user is not None else None,
        observed_at=observed_at,
    )


def _campaign(resource: Resource, index: ResourceIndex, fallback_tiers: Iterable[Resource] = ()) -> Campaign:
    """A campaign; its tiers come from `relationships.tiers`, else from every tier in `fallback_tiers`."""
    attributes = _attributes(resource)
    present, tier_data = _relationship(resource, "tiers")
    if present:
        tier_resources = [index.get(("tier", tier_id), {"id": tier_id}) for tier_id in _to_many_ids(tier_data)]
    else:
        tier_resources = list(fallback_tiers)
    vanity = as_str(attributes.get("vanity"))
    return Campaign(
        id=as_str(resource.get("id")) or "",
        # v2 campaigns have no `name`; the v1-era `name` (Send Test payloads) or the vanity is the best label.
        name=as_str(attributes.get("name")) or vanity or "",
        vanity=vanity,
        url=as_str(attributes.get("url")),
        patron_count=as_optional_int(attributes.get("patron_count")),
        tiers=tuple(_tier(tier) for tier in tier_resources),
    )


def _included_of_type(index: ResourceIndex, resource_type: str) -> list[Resource]:
    return [resource for (kind, _id), resource in index.items() if kind == resource_type]


# ---------------------------------------------------------------- public parsers


def parse_identity(doc: dict[str, Any], observed_at: datetime | None = None) -> Identity:
    """/identity: the user plus each included membership (ours only, unless `identity.memberships` was granted).

    Memberships listed in `relationships.memberships` but missing from `included` are skipped: a bare id says
    nothing about entitlement, and an all-defaults snapshot would read as "never pledged".
    """
    document = _require_document(doc)
    data = _require_resource(document["data"], "user")
    index = _index_included(document)
    user = _user(data)
    present, linkage = _relationship(data, "memberships")
    if present:
        members = [index[("member", mid)] for mid in _to_many_ids(linkage) if ("member", mid) in index]
    else:
        members = _included_of_type(index, "member")
    return Identity(user=user, memberships=tuple(_membership(m, index, observed_at, owner=user) for m in members))


def parse_member_document(doc: dict[str, Any], observed_at: datetime | None = None) -> MembershipSnapshot:
    """/members/{id} and webhook bodies. The portal's "Send Test" shape (`data.id: null`) parses with member_id None."""
    document = _require_document(doc)
    data = _require_resource(document["data"], "member")
    return _membership(data, _index_included(document), observed_at)


def _next_cursor(document: Mapping[str, Any]) -> str | None:
    """`meta.pagination.cursors.next` is the source of truth; the older `links.next` URL is the fallback."""
    meta = document.get("meta")
    pagination = meta.get("pagination") if isinstance(meta, Mapping) else None
    cursors = pagination.get("cursors") if isinstance(pagination, Mapping) else None
    if isinstance(cursors, Mapping) and "next" in cursors:
        return as_str(cursors.get("next")) or None
    links = document.get("links")
    next_link = links.get("next") if isinstance(links, Mapping) else None
    if isinstance(next_link, str) and next_link:
        values = parse_qs(urlsplit(next_link).query).get("page[cursor]")
        if values:
            return values[0] or None
    return None


def _total(document: Mapping[str, Any]) -> int | None:
    meta = document.get("meta")
    pagination = meta.get("pagination") if isinstance(meta, Mapping) else None
    return as_optional_int(pagination.get("total")) if isinstance(pagination, Mapping) else None


def parse_members_page(doc: dict[str, Any], observed_at: datetime | None = None) -> MembersPage:
    """One page of /campaigns/{id}/members, with every included tier and the next cursor (None on the last page)."""
    document = _require_document(doc)
    data = _require_list(document["data"], "member")
    index = _index_included(document)
    return MembersPage(
        members=tuple(_membership(member, index, observed_at) for member in data),
        tiers=tuple(_tier(tier) for tier in _included_of_type(index, "tier")),
        next_cursor=_next_cursor(document),
        total=_total(document),
    )


def parse_campaigns(doc: dict[str, Any]) -> list[Campaign]:
    """/campaigns: the campaigns the token's user owns (normally exactly one)."""
    document = _require_document(doc)
    data = _require_list(document["data"], "campaign")
    index = _index_included(document)
    return [_campaign(resource, index) for resource in data]


def parse_campaign(doc: dict[str, Any]) -> Campaign:
    """/campaigns/{id}?include=tiers: tiers are resolved through `included`."""
    document = _require_document(doc)
    data = _require_resource(document["data"], "campaign")
    index = _index_included(document)
    return _campaign(data, index, fallback_tiers=_included_of_type(index, "tier"))


def parse_token_response(body: dict[str, Any], now: datetime) -> TokenPair:
    """The token endpoint's answer. The lifetime comes from `expires_in`, never a hard-coded month."""
    if not isinstance(body, Mapping):
        raise JsonApiError(f"token response is not a JSON object: {type(body).__name__}")
    access_token, refresh_token = as_str(body.get("access_token")), as_str(body.get("refresh_token"))
    if not access_token or not refresh_token:
        raise JsonApiError(f"token response lacks access_token/refresh_token (keys: {sorted(body)})")
    expires_in = as_optional_int(body.get("expires_in"))
    if expires_in is None or expires_in < 0:
        raise JsonApiError(f"token response has no usable expires_in: {body.get('expires_in')!r}")
    scope = body.get("scope")
    return TokenPair(
        access_token=access_token,
        refresh_token=refresh_token,
        expires_at=now + timedelta(seconds=expires_in),
        scope=tuple(scope.split()) if isinstance(scope, str) else (),
        token_type=as_str(body.get("token_type")) or "Bearer",
    )


def parse_api_errors(body: Any) -> list[dict[str, Any]]:
    """The error items of an error body, whichever of Patreon's two shapes it has.

    JSON:API (`{"errors": [...]}`) items are returned as they are, with `status` as a string. An OAuth body
    (`{"error": "invalid_grant", "error_description": ...}`) becomes one item that keeps `error` and
    `error_description` and mirrors them into `code_name`/`detail`. Anything else gives `[]`.
    """
    if not isinstance(body, Mapping):
        return []
    errors = body.get("errors")
    if isinstance(errors, list):
        items: list[dict[str, Any]] = []
        for item in errors:
            if isinstance(item, Mapping):
                normalised = dict(item)
                if normalised.get("status") is not None:
                    normalised["status"] = str(normalised["status"])
                items.append(normalised)
        return items
    error = body.get("error")
    if isinstance(error, str):
        description = as_str(body.get("error_description"))
        return [
            {
                "error": error,
                "error_description": description,
                "code_name": error,
                "title": error,
                "detail": description,
                "status": None,
            }
        ]
    return []


def _webhook(resource: Resource) -> Webhook:
    attributes = _attributes(resource)
    triggers = attributes.get("triggers")
    return Webhook(
        id=as_str(resource.get("id")) or "",
        uri=as_str(attributes.get("uri")) or "",
        triggers=tuple(t for t in triggers if isinstance(t, str)) if isinstance(triggers, list) else (),
        paused=as_bool(attributes.get("paused")),
        secret=as_str(attributes.get("secret")),
        num_consecutive_times_failed=as_int(attributes.get("num_consecutive_times_failed")),
        last_attempted_at=as_datetime(attributes.get("last_attempted_at")),
    )


def parse_webhook(doc: dict[str, Any]) -> Webhook:
    """POST/PATCH /webhooks answers: one webhook, with the server-generated `secret`."""
    document = _require_document(doc)
    return _webhook(_require_resource(document["data"], "webhook"))


def parse_webhooks(doc: dict[str, Any]) -> list[Webhook]:
    """GET /webhooks: only the webhooks our client created."""
    document = _require_document(doc)
    return [_webhook(resource) for resource in _require_list(document["data"], "webhook")]
