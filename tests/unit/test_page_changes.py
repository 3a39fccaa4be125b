"""Which members of a listing page the refresh reads (bot/sync/page_changes.py): a member whose bytes are the ones
stored is skipped unread; any other is compared by value; the daily full re-plan trusts no stored hash.

"Unread" is shown from outside: the page's member 0 lacks a requested attribute, so decoding it refuses the page;
while its stored listing hash matches, nothing decodes it and nothing is refused."""

from __future__ import annotations

import json

import pytest

from bot.patreon.client import MEMBER_REQUEST_FIELDS
from bot.patreon.jsonapi import MissingAttributes
from bot.patreon.member_pages import parse_listing_text
from bot.patreon.member_rows import ListingPage, MemberRows
from bot.store.codec import values_hash
from bot.sync.page_changes import differing_bytes, page_changes
from tests.unit.test_member_pages import canonical_page


def _rows(doc) -> MemberRows:
    page = parse_listing_text(json.dumps(doc), None, MEMBER_REQUEST_FIELDS)
    assert isinstance(page, ListingPage)
    return page.member_rows


def _unreadable_first_member() -> MemberRows:
    doc = canonical_page(3)
    del doc["data"][0]["attributes"]["pledge_cadence"]
    return _rows(doc)


def test_a_member_whose_bytes_are_the_stored_ones_is_skipped_without_being_decoded() -> None:
    rows = _unreadable_first_member()
    hashes = rows.listing_hashes
    assert hashes is not None
    readable = [values_hash(rows.row(index)) for index in (1, 2)]
    looks = {"u0": (b"whatever-its-value", hashes[0]), "u1": (readable[0], hashes[1]), "u2": (readable[1], None)}
    changes = page_changes(rows, looks)
    assert changes.changed == [] and changes.remember == [(2, readable[1], hashes[2])]
    with pytest.raises(MissingAttributes, match="pledge_cadence"):
        page_changes(rows, looks, by_bytes=False)  # the full re-plan reads member 0, and Patreon's page is refused


def test_a_member_whose_bytes_changed_is_read_and_compared_by_value() -> None:
    rows = _rows(canonical_page(4))
    hashes = rows.listing_hashes
    assert hashes is not None
    same, other = values_hash(rows.row(0)), values_hash(rows.row(2))
    looks = {
        "u0": (same, b"older bytes"),  # same values in new bytes: remembered, not stored again
        "u1": (b"another value", hashes[1]),  # bytes as stored: skipped, whatever the value says
        "u2": (other, None),  # stored by a webhook (no listing hash): compared by value, equal
        # u3: never stored
    }
    changes = page_changes(rows, looks)
    assert changes.changed == [3]
    assert changes.remember == [(0, same, hashes[0]), (2, other, hashes[2])]
    looks["u2"] = (b"a webhook's newer look", None)
    assert page_changes(rows, looks).changed == [2, 3]


def test_a_user_twice_on_a_page_and_a_page_read_by_the_old_reader_are_compared_as_before() -> None:
    doc = canonical_page(2)
    doc["data"][1]["relationships"]["user"]["data"]["id"] = "u0"
    rows = _rows(doc)
    hashes = rows.listing_hashes
    assert hashes is not None
    looks = {"u0": (values_hash(rows.row(0)), hashes[0])}
    assert page_changes(rows, looks).changed == [0, 1], "the later look wins: the store decides, not the hash"
    snapshots = MemberRows.of_snapshots(_rows(canonical_page(2)).snapshots())
    assert snapshots.listing_hashes is None
    stored = {"u0": (values_hash(snapshots.row(0)), b"x"), "u1": (b"changed", b"x")}
    assert page_changes(snapshots, stored).changed == [1] and page_changes(snapshots, stored).remember == []


def test_only_the_members_whose_bytes_differ_from_the_stored_ones_are_looked_at() -> None:
    """`differing_bytes` names whom `page_changes` reads; the member unread stays unread (its page isn't refused),
    and a user twice on the page, a member without a Patreon user or without a hash is always looked at."""
    doc = canonical_page(6)
    del doc["data"][0]["attributes"]["pledge_cadence"]  # unreadable: decoding it would refuse the page
    doc["data"][4]["relationships"]["user"]["data"]["id"] = "u3"  # u3 twice
    doc["data"][5]["relationships"]["user"]["data"] = None
    rows = _rows(doc)
    hashes = rows.listing_hashes
    assert hashes is not None
    stored = {"u0": hashes[0], "u1": b"older bytes", "u2": None, "u3": hashes[3]}
    among = differing_bytes(rows, stored)
    assert among == [1, 2, 3, 4, 5]
    looks = {"u1": (values_hash(rows.row(1)), b"older bytes"), "u2": (b"another value", None)}
    changes = page_changes(rows, looks, among=among)
    assert changes.changed == [2, 3, 4, 5] and changes.remember == [(1, looks["u1"][0], hashes[1])]
    snapshots = MemberRows.of_snapshots(_rows(canonical_page(2)).snapshots())
    assert differing_bytes(snapshots, {"u0": b"x", "u1": b"x"}) == [0, 1], "no hashes: every member"


def test_a_page_without_a_user_twice_is_compared_as_a_page_with_one() -> None:
    """The usual page (no user twice, every member hashed) is compared in one pass; it must name the same members as
    the member-by-member comparison: the stored hash equal is skipped, older, unremembered or unknown bytes and a
    member without a Patreon user are named."""
    doc = canonical_page(6)
    doc["data"][5]["relationships"]["user"]["data"] = None
    rows = _rows(doc)
    hashes = rows.listing_hashes
    assert hashes is not None and rows.user_ids[5] is None
    stored = {"u0": hashes[0], "u1": b"older bytes", "u2": None, "u4": hashes[4]}  # u3 unknown
    assert differing_bytes(rows, stored) == [1, 2, 3, 5]
    assert differing_bytes(rows, {}) == [0, 1, 2, 3, 4, 5]
    assert differing_bytes(rows, {user: hashes[i] for i, user in enumerate(rows.user_ids) if user}) == [5]
