"""The shapes msgspec decodes a members listing page into (bot/patreon/member_pages.py reads them).

A page is decoded in two steps. The page itself, with each member's relationships, every tier and the paging, is
decoded and checked at once; each member's and user's `attributes` are kept as their raw JSON bytes
(`msgspec.Raw`): hashed as they are, and decoded only for the members whose bytes changed since the last listing
(bot/patreon/member_rows.py). Every struct holds only decoded JSON (no cycles), so none needs the cyclic
collector's tracking.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from msgspec import UNSET, Raw, Struct, UnsetType


class _Ref(Struct, gc=False):
    id: str


class ToOne(Struct, gc=False):
    data: _Ref | None = None


class ToMany(Struct, gc=False):
    data: list[_Ref] | None = None


class MemberRelationships(Struct, gc=False):
    currently_entitled_tiers: ToMany | UnsetType | None = UNSET
    user: ToOne | UnsetType | None = UNSET
    campaign: ToOne | UnsetType | None = UNSET


class MemberAttributes(Struct, gc=False):
    """Required, each one: the client's `fields[member]` (a missing one declines the page; null is a value)."""

    campaign_lifetime_support_cents: int | None
    currently_entitled_amount_cents: int | None
    full_name: str | None
    is_free_trial: bool | None
    is_gifted: bool | None
    last_charge_date: str | None
    last_charge_status: str | None
    next_charge_date: str | None
    patron_status: str | None
    pledge_cadence: int | None
    pledge_relationship_start: str | None
    will_pay_amount_cents: int | None


class Member(Struct, tag="member", tag_field="type", gc=False):
    id: str
    attributes: Raw
    relationships: MemberRelationships


class _DiscordConnection(Struct, gc=False):
    user_id: str | int | None = None


class SocialConnections(Struct, gc=False):
    discord: _DiscordConnection | None = None


class UserAttributes(Struct, gc=False):
    full_name: str | None
    social_connections: SocialConnections | None


class User(Struct, tag="user", tag_field="type", gc=False):
    id: str
    attributes: Raw


class TierAttributes(Struct, gc=False):
    title: str | None
    amount_cents: int | None
    patron_count: int | None
    published: bool | None
    discord_role_ids: list[str] | None


class Tier(Struct, tag="tier", tag_field="type", gc=False):
    id: str
    attributes: TierAttributes


class _Cursors(Struct, gc=False):
    next: str | UnsetType | None = UNSET


class Pagination(Struct, gc=False):
    cursors: _Cursors | None = None
    total: int | None = None


class _Meta(Struct, gc=False):
    pagination: Pagination | None = None


class _Links(Struct, gc=False):
    next: str | None = None


class Page(Struct, gc=False):
    data: list[Member]
    included: list[User | Tier] = []
    meta: _Meta | None = None
    links: _Links | None = None


def _required(struct: type[Struct]) -> frozenset[str]:
    info = msgspec.structs.fields(struct)
    return frozenset(field.name for field in info if field.required)


#: The attributes the fast reader requires of each resource type: a request may ask for these or fewer.
FAST_FIELDS: Mapping[str, frozenset[str]] = {
    "member": _required(MemberAttributes),
    "user": _required(UserAttributes),
    "tier": _required(TierAttributes),
}
PAGE = msgspec.json.Decoder(Page)
MEMBER_ATTRIBUTES = msgspec.json.Decoder(MemberAttributes)
USER_ATTRIBUTES = msgspec.json.Decoder(UserAttributes)
#: Packs a member's relationships (absent, null and empty apart) for its listing hash.
pack = msgspec.msgpack.Encoder().encode
