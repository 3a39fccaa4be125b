"""The members listing's fast reader: one page of /campaigns/{id}/members decoded by msgspec straight into typed
structs, then into the same `MembersPage` that `jsonapi.parse_members_page` gives.

A 100,000-member refresh reads 100 pages of 1 MB; the standard library's decoder builds every dict only for the
parser to walk them again (1.8 of 4 s of a refresh). Here the shape and the types are checked in C while decoding,
and the attributes the bot doesn't read are skipped unbuilt.

The fast reader accepts only the canonical page: every requested attribute present (null allowed), each value of the
type JSON gives it (numbers as numbers, ids as strings), every relationship an object, no resource split over two
`included` entries, no resource of another type. Anything else, including everything `parse_members_page` would
refuse, is *declined* (`read_members_page` returns None) and the caller reads the page the old way, with its
forgiving readers and its `MissingAttributes`. So a page reads the same on either path; the fast one is only faster
(tests/unit/test_member_pages.py holds both to that).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from operator import attrgetter
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec
from msgspec import UNSET, Struct, UnsetType

from bot.domain.models import MembershipSnapshot, MembersPage, PatronStatus, Tier
from bot.patreon._document import JsonApiError, Requested
from bot.patreon.jsonapi import parse_members_page
from bot.patreon.values import as_datetime, discord_user_id, patron_status

__all__ = ["FAST_FIELDS", "ROW_FIELDS", "ListingPage", "MemberRows", "parse_members_text", "read_members_page"]

#: A member of a listing page as a plain tuple: its snapshot's field values in `ROW_FIELDS` order.
Row = tuple[Any, ...]
#: The snapshot's fields but `observed_at` (one per page), in field order: also what the store's `snapshot_hash`
#: packs, so the refresh hashes a row without building its snapshot (tests/unit/test_member_pages.py holds both).
ROW_FIELDS = tuple(field.name for field in dataclasses.fields(MembershipSnapshot) if field.name != "observed_at")
_OBSERVED_AT = [field.name for field in dataclasses.fields(MembershipSnapshot)].index("observed_at")
_snapshot_row = attrgetter(*ROW_FIELDS)


class MemberRows:
    """A page's members as rows, each built into its `MembershipSnapshot` only when first asked for.

    A 100,000-member refresh in which 1% changed needs about 1% of the snapshots (the changed, and the few whose
    standing time may change), and a frozen dataclass costs microseconds to build: a quarter of a second a refresh.
    """

    __slots__ = ("_built", "_observed_at", "rows")

    def __init__(
        self, rows: Sequence[Row], observed_at: datetime | None, built: list[MembershipSnapshot | None] | None = None
    ) -> None:
        self.rows = rows
        self._observed_at = observed_at
        self._built: list[MembershipSnapshot | None] = built if built is not None else [None] * len(rows)

    @classmethod
    def of_snapshots(cls, snapshots: Sequence[MembershipSnapshot]) -> MemberRows:
        return cls([_snapshot_row(s) for s in snapshots], None, list(snapshots))

    @classmethod
    def of_page(cls, page: MembersPage) -> MemberRows:
        """The fast reader's rows, else rows of the snapshots the old reader built."""
        return page.member_rows if isinstance(page, ListingPage) else cls.of_snapshots(page.members)

    def __len__(self) -> int:
        return len(self.rows)

    def snapshot(self, index: int) -> MembershipSnapshot:
        built = self._built[index]
        if built is None:
            row = self.rows[index]
            values = (*row[:_OBSERVED_AT], self._observed_at, *row[_OBSERVED_AT:])
            built = MembershipSnapshot(*values)
            self._built[index] = built
        return built

    def snapshots(self) -> tuple[MembershipSnapshot, ...]:
        return tuple([self.snapshot(index) for index in range(len(self.rows))])


class ListingPage(MembersPage):
    """The fast reader's page: a `MembersPage` (equal to the one the old reader gives) whose `members` are built
    from `member_rows` on first use; the refresh reads the rows and never asks for `members`."""

    member_rows: MemberRows

    def __init__(
        self, member_rows: MemberRows, tiers: tuple[Tier, ...], next_cursor: str | None, total: int | None
    ) -> None:
        for name, value in (("member_rows", member_rows), ("tiers", tiers), ("next_cursor", next_cursor)):
            object.__setattr__(self, name, value)  # frozen, as MembersPage is
        object.__setattr__(self, "total", total)

    def __getattr__(self, name: str) -> Any:
        """Only `members` is ever missing (built now, then kept like any field)."""
        if name != "members":
            raise AttributeError(name)
        members = self.member_rows.snapshots()
        object.__setattr__(self, "members", members)
        return members

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MembersPage):
            return NotImplemented
        mine, theirs = (self.members, self.tiers, self.next_cursor, self.total), (
            other.members, other.tiers, other.next_cursor, other.total
        )  # fmt: skip
        return mine == theirs

    __hash__ = MembersPage.__hash__

# Every struct here holds only decoded JSON (no cycles), so none needs the cyclic collector's tracking.


class _Ref(Struct, gc=False):
    id: str


class _ToOne(Struct, gc=False):
    data: _Ref | None = None


class _ToMany(Struct, gc=False):
    data: list[_Ref] | None = None


class _MemberRelationships(Struct, gc=False):
    currently_entitled_tiers: _ToMany | UnsetType | None = UNSET
    user: _ToOne | UnsetType | None = UNSET
    campaign: _ToOne | UnsetType | None = UNSET


class _MemberAttributes(Struct, gc=False):
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


class _Member(Struct, tag="member", tag_field="type", gc=False):
    id: str
    attributes: _MemberAttributes
    relationships: _MemberRelationships


class _DiscordConnection(Struct, gc=False):
    user_id: str | int | None = None


class _SocialConnections(Struct, gc=False):
    discord: _DiscordConnection | None = None


class _UserAttributes(Struct, gc=False):
    full_name: str | None
    social_connections: _SocialConnections | None


class _User(Struct, tag="user", tag_field="type", gc=False):
    id: str
    attributes: _UserAttributes


class _TierAttributes(Struct, gc=False):
    title: str | None
    amount_cents: int | None
    patron_count: int | None
    published: bool | None
    discord_role_ids: list[str] | None


class _Tier(Struct, tag="tier", tag_field="type", gc=False):
    id: str
    attributes: _TierAttributes


class _Cursors(Struct, gc=False):
    next: str | UnsetType | None = UNSET


class _Pagination(Struct, gc=False):
    cursors: _Cursors | None = None
    total: int | None = None


class _Meta(Struct, gc=False):
    pagination: _Pagination | None = None


class _Links(Struct, gc=False):
    next: str | None = None


class _Page(Struct, gc=False):
    data: list[_Member]
    included: list[_User | _Tier] = []
    meta: _Meta | None = None
    links: _Links | None = None


def _required(struct: type[Struct]) -> frozenset[str]:
    info = msgspec.structs.fields(struct)
    return frozenset(field.name for field in info if field.required)


#: The attributes the fast reader requires of each resource type: a request may ask for these or fewer.
FAST_FIELDS: Mapping[str, frozenset[str]] = {
    "member": _required(_MemberAttributes),
    "user": _required(_UserAttributes),
    "tier": _required(_TierAttributes),
}
_DECODER = msgspec.json.Decoder(_Page)
_STATUSES: dict[str, PatronStatus] = {status.value: status for status in PatronStatus}


def _fits(requested: Requested | None) -> bool:
    """Whether a page the fast reader accepts holds every attribute `requested` names (then no check is lost)."""
    if requested is None:
        return True
    return all(
        frozenset(names) <= FAST_FIELDS[kind] for kind, names in requested.items() if names and kind in FAST_FIELDS
    )


def parse_members_text(
    text: str, observed_at: datetime | None = None, requested: Requested | None = None
) -> MembersPage:
    """A listing page from its body text: the fast reader, else `jsonapi.parse_members_page` over `json.loads`
    (so whatever the old reader refused, with the reason it gave, is refused still)."""
    page = read_members_page(text, observed_at, requested)
    if page is not None:
        return page
    try:
        document = json.loads(text) if text.strip() else None
    except ValueError:
        raise JsonApiError(f"the members page is not JSON: {text[:120]!r}") from None
    return parse_members_page(document, observed_at, requested)  # type: ignore[arg-type]  # None is refused there


def read_members_page(
    body: str | bytes, observed_at: datetime | None = None, requested: Requested | None = None
) -> MembersPage | None:
    """The page, or None when the fast reader declines it (read it with `jsonapi.parse_members_page` instead)."""
    if not _fits(requested):
        return None
    try:
        page = _DECODER.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    users: dict[str, _UserAttributes] = {}
    tiers: dict[str, _Tier] = {}
    for resource in page.included:
        if isinstance(resource, _User):
            if resource.id in users:
                return None  # split over two entries: the old reader merges them
            users[resource.id] = resource.attributes
        elif resource.id in tiers:
            return None
        else:
            tiers[resource.id] = resource
    return ListingPage(
        _members(page.data, users, observed_at),
        tiers=tuple(_tier(tier) for tier in tiers.values()),
        next_cursor=_next_cursor(page),
        total=page.meta.pagination.total if page.meta is not None and page.meta.pagination is not None else None,
    )


def _next_cursor(page: _Page) -> str | None:
    """As `jsonapi._next_cursor`: `meta.pagination.cursors.next`, else the `links.next` URL's cursor."""
    pagination = page.meta.pagination if page.meta is not None else None
    cursors = pagination.cursors if pagination is not None else None
    if cursors is not None and cursors.next is not UNSET:
        return cursors.next or None
    if page.links is not None and page.links.next:
        values = parse_qs(urlsplit(page.links.next).query).get("page[cursor]")
        return (values[0] or None) if values else None
    return None


def _tier(tier: _Tier) -> Tier:
    a = tier.attributes
    return Tier(
        id=tier.id,
        title=a.title or "",
        amount_cents=a.amount_cents if a.amount_cents is not None else 0,
        patron_count=a.patron_count,
        published=a.published,
        discord_role_ids=tuple(a.discord_role_ids) if a.discord_role_ids is not None else (),
    )


def _members(
    data: Sequence[_Member], users: Mapping[str, _UserAttributes], observed_at: datetime | None
) -> MemberRows:
    """Each member as `jsonapi._membership` reads it, as a row (a plain tuple: the refresh builds the snapshot only
    of a member whose row it needs); dates are parsed once per distinct text (a campaign's members share billing
    days). The tests compare every field of every snapshot with the old reader's keyword-built ones."""
    dates: dict[str | None, datetime | None] = {None: None}
    statuses = _STATUSES
    to_one, to_many = _ToOne, _ToMany
    rows = []
    for member in data:
        a, r = member.attributes, member.relationships
        user_id: str | None = None
        social: int | None = None
        full_name = a.full_name
        link = r.user
        if type(link) is to_one and link.data is not None:
            user_id = link.data.id if link.data.id.strip() else None
        if user_id is not None:
            user = users.get(user_id)
            if user is not None:
                connections = user.social_connections
                if connections is not None and connections.discord is not None:
                    raw = connections.discord.user_id
                    if type(raw) is str and raw.isascii() and raw.isdigit():  # what Patreon sends: no spaces
                        social = int(raw) or None
                    else:
                        social = discord_user_id(raw)
                if full_name is None:
                    full_name = user.full_name
        tiers = r.currently_entitled_tiers
        tier_ids: tuple[str, ...] = ()
        if type(tiers) is to_many and tiers.data:
            tier_ids = tuple([ref.id for ref in tiers.data])
            if len(tier_ids) > 1 and len(set(tier_ids)) < len(tier_ids):
                tier_ids = tuple(dict.fromkeys(tier_ids))
        campaign = r.campaign
        campaign_id = None
        if type(campaign) is to_one and campaign.data is not None:
            campaign_id = campaign.data.id if campaign.data.id.strip() else None
        status = a.patron_status
        last_charge, next_charge, start = a.last_charge_date, a.next_charge_date, a.pledge_relationship_start
        if last_charge not in dates:
            dates[last_charge] = as_datetime(last_charge)
        if next_charge not in dates:
            dates[next_charge] = as_datetime(next_charge)
        if start not in dates:
            dates[start] = as_datetime(start)
        rows.append(
            (
                member.id,
                campaign_id,
                user_id,
                full_name,
                statuses[status] if status in statuses else patron_status(status),
                a.last_charge_status,
                dates[last_charge],
                dates[next_charge],
                dates[start],
                a.pledge_cadence,
                a.currently_entitled_amount_cents or 0,
                a.will_pay_amount_cents or 0,
                a.campaign_lifetime_support_cents or 0,
                a.is_free_trial or False,
                a.is_gifted or False,
                tier_ids,
                tiers is not UNSET,
                social,
                None,  # currency: a v2 member never names it
            )
        )
    return MemberRows(rows, observed_at)
