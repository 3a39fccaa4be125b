"""Turn Patreon's JSON:API documents into `bot.domain.models` dataclasses. Pure: no I/O, no clock.

Patreon v2 only returns the attributes and relationships that were asked for, real captures disagree with the
docs in small ways, and nulls turn up at every level. So every reader here is forgiving about *values* (an
explicit null → the dataclass default, unknown enum value → None, garbage id → None), but strict about what
would make a document mean something else:

- a document without `data`, or an identity without a user id, is not what we asked for at all;
- given `requested` (the `fields[type]` the client sent), an attribute that was asked for and is absent makes
  the document unusable (`MissingAttributes`): a tier without `amount_cents` is not a free tier, a member
  without `patron_status` is not "never pledged". An explicit null stays valid. Webhook bodies and other
  documents we did not fetch with fields are parsed without `requested`, as the hints they are.
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
from bot.patreon._document import (
    JsonApiError,
    MissingAttributes,
    Requested,
    Resource,
    ResourceIndex,
    attributes_of,
    check_linked_tiers,
    check_requested,
    index_included,
    linkage,
    linked_id,
    parse_api_errors,
    relationship,
    relationships_of,
    require_document,
    require_list,
    require_resource,
    to_many_ids,
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

__all__ = [
    "JsonApiError",
    "MissingAttributes",
    "Requested",
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


# ---------------------------------------------------------------- resources


def _tier(resource: Resource) -> Tier:
    attributes = attributes_of(resource)
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
    attributes = attributes_of(resource)
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
    """One member resource; `owner` is the identity user when the member has no `user` relationship of its own.

    A listing reads 100,000 of these, so the included user is read in place (no `PatreonUser` built) and each
    value goes through its forgiving reader's fast path for the type JSON normally gives."""
    get = attributes_of(resource).get
    relationships = relationships_of(resource)
    tiers_known, tier_data = linkage(relationships, "currently_entitled_tiers")
    user_id = linked_id(linkage(relationships, "user")[1])
    full_name = as_str(get("full_name"))
    social_discord_id: int | None = None
    if user_id is not None:
        included_user = index.get(("user", user_id))
        if included_user is not None:
            user_attributes = attributes_of(included_user)
            social_discord_id = discord_id(user_attributes.get("social_connections"))
            if full_name is None:
                full_name = as_str(user_attributes.get("full_name"))
    elif owner is not None:
        user_id, social_discord_id = owner.id, owner.social_discord_id
        if full_name is None:
            full_name = owner.full_name
    # The type JSON normally gives is taken as it is; anything else goes through the forgiving reader.
    entitled, will_pay, lifetime = (
        get("currently_entitled_amount_cents"),
        get("will_pay_amount_cents"),
        get("campaign_lifetime_support_cents"),
    )
    free_trial, gifted, charge_status = get("is_free_trial"), get("is_gifted"), get("last_charge_status")
    member_id = resource.get("id")
    return MembershipSnapshot(
        member_id=member_id if type(member_id) is str else as_str(member_id),
        campaign_id=linked_id(linkage(relationships, "campaign")[1]),
        patreon_user_id=user_id,
        full_name=full_name,
        patron_status=patron_status(get("patron_status")),
        last_charge_status=charge_status if type(charge_status) is str else as_str(charge_status),
        last_charge_date=as_datetime(get("last_charge_date")),
        next_charge_date=as_datetime(get("next_charge_date")),
        pledge_relationship_start=as_datetime(get("pledge_relationship_start")),
        pledge_cadence=as_optional_int(get("pledge_cadence")),
        currently_entitled_amount_cents=entitled if type(entitled) is int else as_int(entitled),
        will_pay_amount_cents=will_pay if type(will_pay) is int else as_int(will_pay),
        campaign_lifetime_support_cents=lifetime if type(lifetime) is int else as_int(lifetime),
        is_free_trial=free_trial if type(free_trial) is bool else as_bool(free_trial),
        is_gifted=gifted if type(gifted) is bool else as_bool(gifted),
        entitled_tier_ids=to_many_ids(tier_data),
        tiers_known=tiers_known,
        social_discord_id=social_discord_id,
        observed_at=observed_at,
    )


def _campaign(resource: Resource, index: ResourceIndex, fallback_tiers: Iterable[Resource] = ()) -> Campaign:
    """A campaign; its tiers come from `relationships.tiers`, else from every tier in `fallback_tiers`."""
    attributes = attributes_of(resource)
    present, tier_data = relationship(resource, "tiers")
    if present:
        tier_resources = [index.get(("tier", tier_id), {"id": tier_id}) for tier_id in to_many_ids(tier_data)]
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


def parse_identity(
    doc: dict[str, Any], observed_at: datetime | None = None, requested: Requested | None = None
) -> Identity:
    """/identity: the user plus each included membership (ours only, unless `identity.memberships` was granted).

    Memberships listed in `relationships.memberships` but missing from `included` are skipped: a bare id says
    nothing about entitlement, and an all-defaults snapshot would read as "never pledged". A user without an id
    (`data: {}`) is refused: an empty Patreon user id would be a key every such sign-in shares.
    """
    document = require_document(doc)
    data = require_resource(document["data"], "user")
    user_id = as_str(data.get("id"))
    if user_id is None or not user_id.strip():
        raise JsonApiError("the identity document names no Patreon user (its data has no id)")
    index = index_included(document)
    check_requested([data, *index.values()], requested)
    user = _user(data)
    present, linkage = relationship(data, "memberships")
    if present:
        members = [index[("member", mid)] for mid in to_many_ids(linkage) if ("member", mid) in index]
    else:
        members = _included_of_type(index, "member")
    return Identity(user=user, memberships=tuple(_membership(m, index, observed_at, owner=user) for m in members))


def parse_member_document(
    doc: dict[str, Any], observed_at: datetime | None = None, requested: Requested | None = None
) -> MembershipSnapshot:
    """/members/{id} and webhook bodies. The portal's "Send Test" shape (`data.id: null`) parses with member_id None."""
    document = require_document(doc)
    data = require_resource(document["data"], "member")
    index = index_included(document)
    check_requested([data, *index.values()], requested)
    return _membership(data, index, observed_at)


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


def parse_members_page(
    doc: dict[str, Any], observed_at: datetime | None = None, requested: Requested | None = None
) -> MembersPage:
    """One page of /campaigns/{id}/members, with every included tier and the next cursor (None on the last page).

    A member without a `user` relationship (a deleted account) parses with `patreon_user_id` None."""
    document = require_document(doc)
    data = require_list(document["data"], "member")
    index = index_included(document)
    check_requested([*data, *index.values()], requested)
    return MembersPage(
        members=tuple(_membership(member, index, observed_at) for member in data),
        tiers=tuple(_tier(tier) for tier in _included_of_type(index, "tier")),
        next_cursor=_next_cursor(document),
        total=_total(document),
    )


def parse_campaigns(doc: dict[str, Any], requested: Requested | None = None) -> list[Campaign]:
    """/campaigns: the campaigns the token's user owns (normally exactly one)."""
    document = require_document(doc)
    data = require_list(document["data"], "campaign")
    index = index_included(document)
    check_requested([*data, *index.values()], requested)
    check_linked_tiers(data, index, requested)
    return [_campaign(resource, index) for resource in data]


def parse_campaign(doc: dict[str, Any], requested: Requested | None = None) -> Campaign:
    """/campaigns/{id}?include=tiers: tiers are resolved through `included`."""
    document = require_document(doc)
    data = require_resource(document["data"], "campaign")
    index = index_included(document)
    check_requested([data, *index.values()], requested)
    check_linked_tiers([data], index, requested)
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


def _webhook(resource: Resource) -> Webhook:
    attributes = attributes_of(resource)
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
    document = require_document(doc)
    return _webhook(require_resource(document["data"], "webhook"))


def parse_webhooks(doc: dict[str, Any], requested: Requested | None = None) -> list[Webhook]:
    """GET /webhooks: only the webhooks our client created."""
    document = require_document(doc)
    resources = require_list(document["data"], "webhook")
    check_requested(resources, requested)
    return [_webhook(resource) for resource in resources]
