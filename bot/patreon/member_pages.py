"""The members listing's fast reader: one page of /campaigns/{id}/members decoded by msgspec straight into typed
structs (bot/patreon/listing_structs.py), then into the same `MembersPage` that `jsonapi.parse_members_page` gives.

A 100,000-member refresh reads 100 pages of 1 MB; the standard library's decoder builds every dict only for the
parser to walk them again (1.8 of 4 s of a refresh). Here the shape and the types are checked in C while decoding,
the attributes the bot doesn't read are skipped unbuilt, and each member's attributes are decoded only when the
refresh needs them (bot/patreon/member_rows.py: most members' bytes are what they were at the last listing).

The fast reader accepts only the canonical page: every requested attribute present (null allowed), each value of the
type JSON gives it (numbers as numbers, ids as strings), every relationship an object, no resource split over two
`included` entries, no resource of another type. Anything else, including everything `parse_members_page` would
refuse, is *declined* (`read_members_page` returns None, or a member's deferred decoding reads the whole page again)
and the page is read the old way, with its forgiving readers and its `MissingAttributes`. So a page reads the same
on either path; the fast one is only faster (tests/unit/test_member_pages.py holds both to that).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

import msgspec
from msgspec import UNSET

from bot.domain.models import MembersPage, Tier
from bot.patreon import listing_structs as shape
from bot.patreon._document import JsonApiError, Requested
from bot.patreon.jsonapi import parse_members_page
from bot.patreon.listing_structs import FAST_FIELDS
from bot.patreon.member_rows import ListingPage, MemberRows

__all__ = ["FAST_FIELDS", "parse_listing_text", "parse_members_text", "read_members_page"]


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
    """A listing page from its body text, every member read now: the fast reader, else
    `jsonapi.parse_members_page` over `json.loads` (so whatever the old reader refused, with the reason it gave,
    is refused still)."""
    page = parse_listing_text(text, observed_at, requested)
    if isinstance(page, ListingPage):
        page.member_rows.check_all()
    return page


def parse_listing_text(
    text: str | bytes,
    observed_at: datetime | None = None,
    requested: Requested | None = None,
    *,
    refusal: Callable[[JsonApiError], Exception] | None = None,
) -> MembersPage:
    """As `parse_members_text`, but the fast reader's members are decoded when first needed, and a refusal they
    cause is raised then, from the page's rows (`refusal(error)` if given, else the `JsonApiError`): the refresh
    reads only the changed members."""
    page = read_members_page(text, observed_at, requested, refusal)
    return page if page is not None else _old_reading(text, observed_at, requested)


def _old_reading(text: str | bytes, observed_at: datetime | None, requested: Requested | None) -> MembersPage:
    if isinstance(text, bytes):  # as the bytes came: a byte that isn't UTF-8 reads as U+FFFD, as in any other answer
        text = text.decode(errors="replace")
    try:
        document = json.loads(text) if text.strip() else None
    except ValueError:
        shown = text[:120]
        raise JsonApiError(f"the members page is not JSON: {shown!r}") from None
    return parse_members_page(document, observed_at, requested)  # type: ignore[arg-type]  # None is refused there


def read_members_page(
    body: str | bytes,
    observed_at: datetime | None = None,
    requested: Requested | None = None,
    refusal: Callable[[JsonApiError], Exception] | None = None,
) -> ListingPage | None:
    """The page with its members' attributes still undecoded, or None when the fast reader declines the page's
    shape (read it with `jsonapi.parse_members_page` instead). A member that doesn't fit makes the page's rows read
    the whole page that way when it is decoded (`MemberRows.check_all` reads every member now)."""
    if not _fits(requested):
        return None
    try:
        page = shape.PAGE.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):  # bytes that aren't UTF-8: the old way
        return None
    users: dict[str, msgspec.Raw] = {}
    tiers: dict[str, shape.Tier] = {}
    for resource in page.included:
        if isinstance(resource, shape.User):
            if resource.id in users:
                return None  # split over two entries: the old reader merges them
            users[resource.id] = resource.attributes
        elif resource.id in tiers:
            return None
        else:
            tiers[resource.id] = resource
    def read_again() -> MembersPage:
        try:
            return _old_reading(body, observed_at, requested)
        except JsonApiError as error:
            if refusal is None:
                raise
            raise refusal(error) from error

    pagination = page.meta.pagination if page.meta is not None else None
    return ListingPage(
        MemberRows.deferred(page.data, users, observed_at, read_again),
        tiers=tuple(_tier(tier) for tier in tiers.values()),
        next_cursor=_next_cursor(page),
        total=pagination.total if pagination is not None else None,
    )


def _next_cursor(page: shape.Page) -> str | None:
    """As `jsonapi._next_cursor`: `meta.pagination.cursors.next`, else the `links.next` URL's cursor."""
    pagination = page.meta.pagination if page.meta is not None else None
    cursors = pagination.cursors if pagination is not None else None
    if cursors is not None and cursors.next is not UNSET:
        return cursors.next or None
    if page.links is not None and page.links.next:
        values = parse_qs(urlsplit(page.links.next).query).get("page[cursor]")
        return (values[0] or None) if values else None
    return None


def _tier(tier: shape.Tier) -> Tier:
    a = tier.attributes
    return Tier(
        id=tier.id,
        title=a.title or "",
        amount_cents=a.amount_cents if a.amount_cents is not None else 0,
        patron_count=a.patron_count,
        published=a.published,
        discord_role_ids=tuple(a.discord_role_ids) if a.discord_role_ids is not None else (),
    )
