"""A listing page's members as rows (plain tuples of a snapshot's field values), each decoded and built only when
something needs it, and each member's *listing hash*: its raw JSON bytes, hashed before anything is decoded.

A 100,000-member refresh in which 1% changed needs about 1% of the rows: the store remembers each member's listing
hash, and a member whose bytes are what they were at the last listing is skipped unread (bot/sync/refresh_listing.py).
Decoding every member's attributes and building its row cost a third of a refresh's CPU.

Deferred decoding keeps the fast reader's promise (bot/patreon/member_pages.py): a member whose attributes don't fit
the canonical shape makes the whole page be read again by `jsonapi.parse_members_page`, which reads it the
forgiving way or refuses it with its reason (`JsonApiError`), exactly as an eager reader would have. A member
skipped unread has the bytes of one already read and stored, so nothing unchecked is ever used.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime
from operator import attrgetter
from typing import Any

import msgspec

from bot.domain.models import MembershipSnapshot, MembersPage, PatronStatus, Tier
from bot.patreon import listing_structs as shape
from bot.patreon._document import JsonApiError
from bot.patreon.values import as_datetime, discord_user_id, patron_status

#: A member of a listing page as a plain tuple: its snapshot's field values in `ROW_FIELDS` order.
Row = tuple[Any, ...]
#: The snapshot's fields but `observed_at` (one per page), in field order: also what the store's `snapshot_hash`
#: packs, so the refresh hashes a row without building its snapshot (tests/unit/test_member_pages.py holds both).
ROW_FIELDS = tuple(field.name for field in dataclasses.fields(MembershipSnapshot) if field.name != "observed_at")
_OBSERVED_AT = [field.name for field in dataclasses.fields(MembershipSnapshot)].index("observed_at")
_SOCIAL = ROW_FIELDS.index("social_discord_id")
_snapshot_row = attrgetter(*ROW_FIELDS)
_STATUSES: dict[str, PatronStatus] = {status.value: status for status in PatronStatus}
#: Bump when `_row` derives a field differently from the same bytes: every stored listing hash then stops matching,
#: and each member is read (and, if its snapshot differs, stored) once more.
ROWS_VERSION = 1
_PREFIX = shape.pack(("listing", ROWS_VERSION, ROW_FIELDS))
_sha256 = hashlib.sha256
#: What makes a member's deferred decoding read the whole page the old way: its bytes don't fit the fast reader's
#: shape, or aren't UTF-8 (the page came as bytes; the old way reads such a byte as U+FFFD).
_DECLINED = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError)


def listing_hash(member: shape.Member, user: msgspec.Raw | None) -> bytes:
    """16 bytes that change whenever the member's id, its bytes, its user's bytes or its relationships change.
    SHA-256 (twice as fast as BLAKE2 here, with the CPU's SHA instructions), cut to 16 bytes: a patron who writes
    both entries himself (a paying one stored, then a cancelled one spelt to collide, his name his to choose) needs
    2**64 tries, so can't hide a change of his own pledge behind an unchanged hash."""
    # JSON holds no raw NUL byte and no value is "-": the parts can't run into each other. (`MemberRows.deferred`
    # computes the same inline; tests/unit/test_member_pages.py holds the two equal.)
    found = user if user is not None else b"-"
    parts = (_PREFIX, member.attributes, b"\0", found, b"\0", shape.pack((member.id, member.relationships)))
    return _sha256(b"".join(parts)).digest()[:16]


class MemberRows:
    """A page's members: each one's Patreon user id and listing hash at once, its row and snapshot when asked."""

    __slots__ = ("_built", "_dates", "_members", "_observed_at", "_reread", "_rows", "_users", "listing_hashes",
                 "user_ids")  # fmt: skip

    def __init__(
        self,
        rows: list[Row | None],
        user_ids: list[str | None],
        observed_at: datetime | None,
        built: list[MembershipSnapshot | None] | None = None,
    ) -> None:
        self._rows = rows
        #: Each member's Patreon user id (None: listed without one).
        self.user_ids = user_ids
        #: Each member's listing hash; None for a page read by the old reader and for a member added by
        #: `extended` (compared by value only).
        self.listing_hashes: list[bytes | None] | None = None
        self._observed_at = observed_at
        self._built: list[MembershipSnapshot | None] = built if built is not None else [None] * len(rows)
        self._members: Sequence[shape.Member] = ()
        self._users: dict[str, Any] = {}
        self._dates: dict[str | None, datetime | None] = {None: None}
        self._reread: Callable[[], MembersPage] | None = None

    @classmethod
    def of_snapshots(cls, snapshots: Sequence[MembershipSnapshot]) -> MemberRows:
        rows: list[Row | None] = [_snapshot_row(s) for s in snapshots]
        return cls(rows, [s.patreon_user_id for s in snapshots], None, list(snapshots))

    @classmethod
    def deferred(
        cls,
        members: Sequence[shape.Member],
        users: dict[str, msgspec.Raw],
        observed_at: datetime | None,
        reread: Callable[[], MembersPage],
    ) -> MemberRows:
        """The fast reader's rows: user ids and hashes now, rows on demand; `reread` reads the page the old way."""
        user_ids: list[str | None] = []
        hashes: list[bytes | None] = []
        found, sha256, join, pack, prefix = users.get, _sha256, b"".join, shape.pack, _PREFIX
        add_user, add_hash = user_ids.append, hashes.append
        for member in members:  # 100,000 a refresh: `listing_hash` inline, every name local
            relationships = member.relationships
            try:
                user_id: str | None = relationships.user.data.id  # type: ignore[union-attr]
            except AttributeError:  # no user relationship, or a null one
                user_id = None
            if user_id is not None and not user_id.strip():
                user_id = None
            add_user(user_id)
            user = found(user_id, b"-") if user_id is not None else b"-"
            tail = pack((member.id, relationships))
            add_hash(sha256(join((prefix, member.attributes, b"\0", user, b"\0", tail))).digest()[:16])
        made = cls([None] * len(members), user_ids, observed_at)
        made.listing_hashes = hashes
        made._members, made._users, made._reread = members, dict(users), reread
        return made

    @classmethod
    def of_page(cls, page: MembersPage) -> MemberRows:
        """The fast reader's rows, else rows of the snapshots the old reader built."""
        return page.member_rows if isinstance(page, ListingPage) else cls.of_snapshots(page.members)

    def extended(self, snapshots: Sequence[MembershipSnapshot]) -> MemberRows:
        """These members too, after the page's own (each already built, without a listing hash): members listed
        without a Patreon user, matched to one by their stored member id, while the page keeps its hashes."""
        self._rows = [*self._rows, *(_snapshot_row(s) for s in snapshots)]
        self._built = [*self._built, *snapshots]
        self.user_ids = [*self.user_ids, *(s.patreon_user_id for s in snapshots)]
        if self.listing_hashes is not None:
            self.listing_hashes = [*self.listing_hashes, *([None] * len(snapshots))]
        return self

    def __len__(self) -> int:
        return len(self._rows)

    def row(self, index: int) -> Row:
        """The member's row (decoded now if it wasn't); `JsonApiError` if the page can't be read at all."""
        row = self._rows[index]
        if row is None:
            try:
                row = self._rows[index] = self._decode(index)
            except _DECLINED:
                self._read_again()
                row = self._rows[index]
                assert row is not None
        return row

    @property
    def rows(self) -> list[Row]:
        return [self.row(index) for index in range(len(self._rows))]

    def snapshot(self, index: int) -> MembershipSnapshot:
        built = self._built[index]
        if built is None:
            row = self.row(index)
            built = self._built[index]  # read again by the old reader: its snapshot is kept
            if built is None:
                values = (*row[:_OBSERVED_AT], self._observed_at, *row[_OBSERVED_AT:])
                built = MembershipSnapshot(*values)
                self._built[index] = built
        return built

    def snapshots(self) -> tuple[MembershipSnapshot, ...]:
        return tuple([self.snapshot(index) for index in range(len(self._rows))])

    def social(self, index: int) -> int | None:
        """The Discord account the member's Patreon user connected, decoding only the user of an unread member."""
        row = self._rows[index]
        if row is not None:
            return row[_SOCIAL]
        user_id = self.user_ids[index]
        try:
            user = self._user(user_id) if user_id is not None else None
        except _DECLINED:
            return self.row(index)[_SOCIAL]
        return _social(user) if user is not None else None

    def check_all(self) -> None:
        """Read every member and every included user, as an eager reader would (`JsonApiError` if refused)."""
        if self._reread is None:
            return  # every row is there: built from snapshots, read again the old way, or checked before
        try:
            for user_id in self._users:
                self._user(user_id)
        except _DECLINED:
            self._read_again()
        for index in range(len(self._rows)):
            self.row(index)
        self._reread = None  # and the page's text with it

    def _user(self, user_id: str) -> shape.UserAttributes | None:
        user = self._users.get(user_id)
        if type(user) is msgspec.Raw:
            user = self._users[user_id] = shape.USER_ATTRIBUTES.decode(user)
        return user

    def _read_again(self) -> None:
        """Some member doesn't fit the fast reader: take the old reader's whole page (or its refusal)."""
        if self._reread is None:
            raise JsonApiError("a page of snapshots has no member left to read")
        page = self._reread()
        listed = len(self._members)
        if [m.patreon_user_id for m in page.members] != self.user_ids[:listed]:
            raise JsonApiError("the members page reads differently the second time")  # a reader defect: refuse
        self._rows[:listed] = [_snapshot_row(s) for s in page.members]
        self._built[:listed] = list(page.members)
        self._reread = None

    def _decode(self, index: int) -> Row:
        member = self._members[index]
        user_id = self.user_ids[index]
        user = self._user(user_id) if user_id is not None else None
        return _row(member, shape.MEMBER_ATTRIBUTES.decode(member.attributes), user_id, user, self._dates)


def _social(user: shape.UserAttributes) -> int | None:
    connections = user.social_connections
    if connections is None or connections.discord is None:
        return None
    raw = connections.discord.user_id
    if type(raw) is str and raw.isascii() and raw.isdigit():  # what Patreon sends: no spaces
        return int(raw) or None
    return discord_user_id(raw)


def _date(dates: dict[str | None, datetime | None], text: str | None) -> datetime | None:
    """Parsed once per distinct text: a campaign's members share billing days."""
    if text not in dates:
        dates[text] = as_datetime(text)
    return dates[text]


def _row(
    member: shape.Member,
    a: shape.MemberAttributes,
    user_id: str | None,
    user: shape.UserAttributes | None,
    dates: dict[str | None, datetime | None],
) -> Row:
    """The member as `jsonapi._membership` reads it. The tests compare every field of every snapshot with the old
    reader's keyword-built ones."""
    r = member.relationships
    social: int | None = None
    full_name = a.full_name
    if user is not None:
        social = _social(user)
        if full_name is None:
            full_name = user.full_name
    tiers = r.currently_entitled_tiers
    tier_ids: tuple[str, ...] = ()
    if type(tiers) is shape.ToMany and tiers.data:
        tier_ids = tuple([ref.id for ref in tiers.data])
        if len(tier_ids) > 1 and len(set(tier_ids)) < len(tier_ids):
            tier_ids = tuple(dict.fromkeys(tier_ids))
    campaign = r.campaign
    campaign_id = None
    if type(campaign) is shape.ToOne and campaign.data is not None:
        campaign_id = campaign.data.id if campaign.data.id.strip() else None
    status = a.patron_status
    return (
        member.id,
        campaign_id,
        user_id,
        full_name,
        _STATUSES[status] if status in _STATUSES else patron_status(status),
        a.last_charge_status,
        _date(dates, a.last_charge_date),
        _date(dates, a.next_charge_date),
        _date(dates, a.pledge_relationship_start),
        a.pledge_cadence,
        a.currently_entitled_amount_cents or 0,
        a.will_pay_amount_cents or 0,
        a.campaign_lifetime_support_cents or 0,
        a.is_free_trial or False,
        a.is_gifted or False,
        tier_ids,
        tiers is not msgspec.UNSET,
        social,
        None,  # currency: a v2 member never names it
    )


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
        self.member_rows.check_all()
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
