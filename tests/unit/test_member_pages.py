"""The listing's fast reader (bot/patreon/member_pages.py) reads every page exactly as `parse_members_page` does,
or declines it and lets that reader decide: the same snapshots, the same refusal with the same words.

The property test takes the client's canonical page and breaks it the ways Patreon's documents vary (nulls,
strings for numbers, floats, bools, missing attributes and relationships, a resource split over two `included`
entries, a cursor only in `links.next`, junk): whatever the mutation, the text read by the client's path gives
what the old reader gives over `json.loads`.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.patreon.client import MEMBER_REQUEST_FIELDS
from bot.patreon.jsonapi import JsonApiError, MissingAttributes, parse_members_page
from bot.patreon.member_pages import FAST_FIELDS, parse_listing_text, parse_members_text, read_members_page
from bot.patreon.member_rows import ROW_FIELDS, ListingPage, MemberRows
from bot.store.codec import SNAPSHOT_FIELDS, snapshot_hash, values_hash
from tests.samples import sample, sample_paths
from tests.unit.test_jsonapi_strict import FULL_MEMBER, FULL_TIER

OBSERVED = None


def canonical_page(members: int = 3) -> dict[str, Any]:
    """A page as the client asks for it and Patreon (and the fake) answers it."""
    data, included = [], []
    for n in range(members):
        data.append(
            {
                "type": "member",
                "id": f"m{n}",
                # Every value apart from the others, so a field read into another's place shows.
                "attributes": {
                    **FULL_MEMBER,
                    "full_name": f"Patron {n}" if n % 2 else None,
                    "will_pay_amount_cents": 600 + n,
                    "is_gifted": True,
                    "pledge_cadence": 12,
                },
                "relationships": {
                    "currently_entitled_tiers": {"data": [{"id": "t1", "type": "tier"}]},
                    "user": {"data": {"id": f"u{n}", "type": "user"}, "links": {"related": "https://x/u"}},
                },
            }
        )
        included.append(
            {
                "type": "user",
                "id": f"u{n}",
                "attributes": {
                    "full_name": f"User {n}",
                    "social_connections": {"discord": {"user_id": str(1000 + n), "url": None}, "twitch": None},
                },
            }
        )
    included.append({"type": "tier", "id": "t1", "attributes": dict(FULL_TIER, discord_role_ids=["55"])})
    return {
        "data": data,
        "included": included,
        "meta": {"pagination": {"cursors": {"next": "next-cursor"}, "total": members}},
        "links": {"next": "https://www.patreon.com/api/oauth2/v2/campaigns/1/members?page%5Bcursor%5D=other"},
    }


def outcome(read: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "page", read(*args)
    except JsonApiError as error:
        return type(error).__name__, str(error)


def old_reading(text: str) -> tuple[str, Any]:
    return outcome(parse_members_page, json.loads(text), OBSERVED, MEMBER_REQUEST_FIELDS)


def test_the_fast_reader_requires_what_the_client_asks_for() -> None:
    """Then the client's canonical pages take the fast path and no requested attribute goes unchecked."""
    assert {kind: frozenset(names) for kind, names in MEMBER_REQUEST_FIELDS.items()} == dict(FAST_FIELDS)


def test_a_canonical_page_is_read_fast_and_as_the_old_reader_reads_it() -> None:
    text = json.dumps(canonical_page())
    fast = read_members_page(text, OBSERVED, MEMBER_REQUEST_FIELDS)
    assert fast is not None, "the canonical page must not fall back"
    assert ("page", fast) == old_reading(text)
    assert [m.social_discord_id for m in fast.members] == [1000, 1001, 1002]
    assert [m.full_name for m in fast.members] == ["User 0", "Patron 1", "User 2"]
    assert (fast.next_cursor, fast.total, fast.tiers[0].discord_role_ids) == ("next-cursor", 3, ("55",))


@pytest.mark.parametrize("name", sorted(FULL_MEMBER))
def test_a_member_missing_a_requested_attribute_is_refused_on_the_client_s_path(name: str) -> None:
    doc = canonical_page()
    del doc["data"][1]["attributes"][name]
    with pytest.raises(MissingAttributes, match=rf"member m1 lacks the requested attribute\(s\) {name}"):
        parse_members_text(json.dumps(doc), OBSERVED, MEMBER_REQUEST_FIELDS)


@pytest.mark.parametrize(("kind", "name"), [("user", "social_connections"), ("user", "full_name"), ("tier", "title")])
def test_an_included_resource_missing_a_requested_attribute_is_refused(kind: str, name: str) -> None:
    doc = canonical_page()
    resource = next(item for item in doc["included"] if item["type"] == kind)
    del resource["attributes"][name]
    with pytest.raises(MissingAttributes, match=name):
        parse_members_text(json.dumps(doc), OBSERVED, MEMBER_REQUEST_FIELDS)


@pytest.mark.parametrize("text", ["", "   ", "<html>502</html>", '{"data": [', "[]", '{"errors": [{"title": "x"}]}'])
def test_a_body_that_is_no_page_is_refused_as_before(text: str) -> None:
    with pytest.raises(JsonApiError):
        parse_members_text(text, OBSERVED, MEMBER_REQUEST_FIELDS)
    if text.strip().startswith("<"):
        with pytest.raises(JsonApiError, match="not JSON"):
            parse_members_text(text, OBSERVED, MEMBER_REQUEST_FIELDS)


def test_a_request_for_more_than_the_fast_reader_checks_never_takes_it() -> None:
    text = json.dumps(canonical_page())
    wider = {**MEMBER_REQUEST_FIELDS, "member": (*MEMBER_REQUEST_FIELDS["member"], "note")}
    assert read_members_page(text, OBSERVED, wider) is None
    with pytest.raises(MissingAttributes, match="note"):
        parse_members_text(text, OBSERVED, wider)


@pytest.mark.parametrize("name", [p.name for p in sample_paths() if p.name.startswith("members_page")])
@pytest.mark.parametrize("requested", [None, MEMBER_REQUEST_FIELDS, {"user": ("social_connections",)}])
def test_every_members_page_sample_reads_the_same_on_both_paths(name: str, requested: Any) -> None:
    doc = sample(name)
    text = json.dumps(doc)
    expected = outcome(parse_members_page, doc, OBSERVED, requested)
    assert outcome(parse_members_text, text, OBSERVED, requested) == expected


ODD_VALUES = st.sampled_from(
    [None, "1200", 500.0, 12.5, True, False, "true", "FALSE", 7, 0, -3, "", " 42 ", [], {}, [1], {"a": 1},
     "2025-02-26T12:00:00", "2025-02-26T12:00:00Z", "not a date", "secret_patron", "active_patron",
     "former_patron", 2**70, "Paid", "²"]
)  # fmt: skip


@st.composite
def mutated_pages(draw: st.DrawFn) -> str:
    doc = canonical_page(draw(st.integers(1, 3)))
    for _ in range(draw(st.integers(0, 4))):
        where = draw(st.sampled_from(["member", "relationship", "user", "tier", "meta", "shape"]))
        data = [m for m in doc["data"] if isinstance(m, dict)] if isinstance(doc["data"], list) else []
        included = [i for i in doc["included"] if isinstance(i, dict)] if isinstance(doc["included"], list) else []
        member = draw(st.sampled_from(data)) if data else None
        if member is not None and not isinstance(member.get("attributes"), dict):
            member = None
        if where == "member" and member is not None:
            name = draw(st.sampled_from(sorted(FULL_MEMBER)))
            if draw(st.booleans()):
                member["attributes"].pop(name, None)
            else:
                member["attributes"][name] = draw(ODD_VALUES)
        elif where == "relationship" and member is not None and isinstance(member.get("relationships"), dict):
            relation = draw(st.sampled_from(["currently_entitled_tiers", "user", "campaign"]))
            member["relationships"][relation] = draw(
                st.sampled_from(
                    [
                        None,
                        {},
                        {"data": None},
                        {"data": []},
                        {"data": {"id": "c1", "type": "campaign"}},
                        {"data": {"id": "  "}},
                        {"data": {"id": 3001}},
                        {"data": [{"id": "t1"}, {"id": "t1"}, {"id": "t2"}]},
                        {"data": [{"id": 3001}, "junk"]},
                        {"data": [{"type": "tier"}]},
                        "junk",
                    ]
                )
            )
            if draw(st.booleans()):
                member["relationships"].pop(relation, None)
        elif where == "user":
            users = [i for i in included if i.get("type") == "user" and "social_connections" in i["attributes"]]
            user = draw(st.sampled_from(users)) if users else None
            if user is not None:
                choice = draw(st.sampled_from(["social", "name", "drop", "split", "id"]))
                if choice == "social":
                    user["attributes"]["social_connections"] = draw(
                        st.sampled_from(
                            [None, {}, {"discord": None}, {"discord": "junk"}, {"discord": {"user_id": None}},
                             {"discord": {"user_id": 42}}, {"discord": {"user_id": True}},
                             {"discord": {"user_id": " 77 "}}, {"discord": {"user_id": "-5"}},
                             {"discord": {"user_id": "0"}}, {"discord": {}}, [], "x"]
                        )
                    )  # fmt: skip
                elif choice == "name":
                    user["attributes"]["full_name"] = draw(ODD_VALUES)
                elif choice == "drop":
                    doc["included"].remove(user)
                elif choice == "split":
                    social = user["attributes"].pop("social_connections")
                    split = {"type": "user", "id": user["id"], "attributes": {"social_connections": social}}
                    doc["included"].append(split)
                else:
                    user["id"] = draw(st.sampled_from([None, 5, "", "u-other"]))
        elif where == "tier" and any(item.get("type") == "tier" for item in included):
            tier = next(item for item in included if item.get("type") == "tier")
            name = draw(st.sampled_from(sorted(FULL_TIER)))
            if draw(st.booleans()):
                tier["attributes"].pop(name, None)
            else:
                tier["attributes"][name] = draw(st.one_of(ODD_VALUES, st.just(["1", 2]), st.just(["9"])))
        elif where == "meta":
            doc["meta"] = draw(
                st.sampled_from(
                    [None, {}, "junk", {"pagination": None}, {"pagination": {"total": "5"}},
                     {"pagination": {"total": 2.0, "cursors": {"next": None}}},
                     {"pagination": {"cursors": {}}, "total": 1}, {"pagination": {"cursors": {"next": 9}}},
                     {"pagination": {"cursors": {"next": ""}, "total": True}}]
                )
            )  # fmt: skip
            if draw(st.booleans()):
                doc["links"] = draw(st.sampled_from([None, {}, {"next": 5}, {"next": ""}, {"next": "https://x/?a=b"}]))
        else:
            mutation = draw(st.sampled_from(["type", "no-type", "no-attributes", "id", "included", "extra", "data"]))
            if mutation == "type" and member is not None:
                member["type"] = draw(st.sampled_from(["tier", "user", None, 5]))
            elif mutation == "no-type" and member is not None:
                member.pop("type", None)
            elif mutation == "no-attributes" and member is not None:
                member["attributes"] = draw(st.sampled_from([None, [], "x"]))
            elif mutation == "id" and member is not None:
                member["id"] = draw(st.sampled_from([None, 17, "", "  "]))
            elif mutation == "included":
                doc["included"] = draw(st.sampled_from([None, {}, [], "junk", [*included, "junk"],
                                                        [*included, {"type": "campaign", "id": "c1"}]]))  # fmt: skip
            elif mutation == "extra" and member is not None:
                member["attributes"]["note"] = "not asked for"
            elif mutation == "data":
                doc["data"] = draw(st.sampled_from([None, {}, "x", [*data, 5]]))
    return json.dumps(doc)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(mutated_pages())
def test_any_page_reads_the_same_on_the_fast_path_and_the_old_one(text: str) -> None:
    assert outcome(parse_members_text, text, OBSERVED, MEMBER_REQUEST_FIELDS) == old_reading(text)
    assert outcome(parse_members_text, text, OBSERVED, None) == outcome(
        parse_members_page, json.loads(text), OBSERVED, None
    )


def test_a_snapshot_from_either_path_is_a_fresh_copy_per_page() -> None:
    """The date cache is per page: two pages never share state through the reader."""
    first = json.loads(json.dumps(canonical_page()))
    second = copy.deepcopy(first)
    second["data"][0]["attributes"]["last_charge_date"] = "2025-03-26T12:00:00.000+00:00"
    a = read_members_page(json.dumps(first), OBSERVED, MEMBER_REQUEST_FIELDS)
    b = read_members_page(json.dumps(second), OBSERVED, MEMBER_REQUEST_FIELDS)
    assert a is not None and b is not None
    assert a.members[0].last_charge_date != b.members[0].last_charge_date


# ---------------------------------------------------------------- rows: hashed as their snapshots, built when asked


def test_a_row_holds_what_the_store_s_hash_packs_in_its_order() -> None:
    assert ROW_FIELDS == SNAPSHOT_FIELDS


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(mutated_pages())
def test_a_row_hashes_as_the_snapshot_it_builds_and_either_path_gives_the_same_rows(text: str) -> None:
    """The refresh compares a row's hash with the stored `snapshot_hash` before building anything: any difference
    would rewrite (and plan) an unchanged member at every refresh, or skip a changed one."""
    fast = read_members_page(text, OBSERVED, MEMBER_REQUEST_FIELDS)
    if fast is None or old_reading(text)[0] != "page":
        return  # declined at once, or refused (the test above holds the refusal the same)
    rows = MemberRows.of_page(fast)
    old = MemberRows.of_page(parse_members_page(json.loads(text), OBSERVED, MEMBER_REQUEST_FIELDS))
    assert rows.rows == old.rows
    for index, row in enumerate(rows.rows):
        assert values_hash(row) == snapshot_hash(rows.snapshot(index)) == snapshot_hash(old.snapshot(index))


def test_a_listing_page_builds_a_snapshot_only_when_asked_and_once() -> None:
    when = datetime(2026, 11, 1, tzinfo=UTC)
    page = read_members_page(json.dumps(canonical_page(3)), when, MEMBER_REQUEST_FIELDS)
    assert isinstance(page, ListingPage)
    rows = MemberRows.of_page(page)
    assert rows is page.member_rows and len(rows) == 3
    second = rows.snapshot(1)
    assert second is rows.snapshot(1) and second.observed_at == when and second.patreon_user_id == "u1"
    assert page.members[1] is second, "the page's members are the rows' snapshots"
    old = parse_members_page(canonical_page(3), when, MEMBER_REQUEST_FIELDS)
    assert page == old and old == page and hash(page) == hash(old)
    assert MemberRows.of_page(old).snapshot(2) is old.members[2]


# ---------------------------------------------------------------- deferred members: hashed unread, decoded when asked


def _rows(doc: dict[str, Any]) -> MemberRows:
    page = parse_listing_text(json.dumps(doc), OBSERVED, MEMBER_REQUEST_FIELDS)
    assert isinstance(page, ListingPage), "the canonical shape must take the fast path"
    return page.member_rows


def test_a_member_that_can_t_be_read_is_refused_when_it_is_decoded_as_the_eager_reader_refuses_it() -> None:
    """The refresh decodes only changed members: one Patreon sent without a requested attribute must still be
    refused, with the old reader's words, the moment anything reads it, and never be used half-read."""
    doc = canonical_page(3)
    del doc["data"][1]["attributes"]["patron_status"]
    rows = _rows(doc)
    assert rows.user_ids == ["u0", "u1", "u2"] and rows.listing_hashes is not None
    assert rows.row(0)[ROW_FIELDS.index("member_id")] == "m0", "a readable member reads before the bad one"
    with pytest.raises(MissingAttributes, match="member m1 lacks the requested attribute") as deferred:
        rows.row(1)
    with pytest.raises(MissingAttributes) as eager:
        parse_members_text(json.dumps(doc), OBSERVED, MEMBER_REQUEST_FIELDS)
    assert str(deferred.value) == str(eager.value)


def test_a_member_only_the_old_reader_can_read_makes_the_page_read_the_old_way_with_the_same_rows() -> None:
    doc = canonical_page(3)
    doc["data"][2]["attributes"]["currently_entitled_amount_cents"] = "500"  # a string: the old reader's coercion
    rows = _rows(doc)
    old = MemberRows.of_page(parse_members_page(copy.deepcopy(doc), OBSERVED, MEMBER_REQUEST_FIELDS))
    assert rows.row(0) == old.row(0)
    assert rows.snapshot(2) == old.snapshot(2) and rows.rows == old.rows


@pytest.mark.parametrize("where", ["a member's name", "a user's name", "a member id"])
def test_a_page_with_a_byte_that_isn_t_utf_8_reads_it_as_u_fffd_on_either_path(where: str) -> None:
    """The client hands the listing's bytes over as they came (bot/patreon/transport.py), where it once decoded them
    to text with every stray byte replaced: such a byte still reads as U+FFFD, through the old reader, whether the
    fast reader meets it as it decodes the page or only when it decodes the member (its attributes kept raw)."""
    doc = canonical_page(3)
    marker = {"a member's name": "Patron 1", "a user's name": "User 2", "a member id": "m1"}[where]
    spoilt = json.dumps(doc).encode().replace(f'"{marker}"'.encode(), f'"{marker}'.encode() + b'\xff"', 1)
    assert b"\xff" in spoilt
    page = parse_listing_text(spoilt, OBSERVED, MEMBER_REQUEST_FIELDS)
    expected = old_reading(spoilt.decode(errors="replace"))
    assert expected[0] == "page" and marker + "\ufffd" in repr(expected[1])
    assert page.members == expected[1].members and page == expected[1]
    if isinstance(page, ListingPage):  # the deferred path: decoding the spoilt member reads the whole page again
        assert page.member_rows.listing_hashes is not None


def test_an_unread_member_s_discord_account_is_that_of_its_row() -> None:
    doc = canonical_page(3)
    doc["included"][1]["attributes"]["social_connections"] = None
    unread, read = _rows(doc), _rows(doc)
    social = ROW_FIELDS.index("social_discord_id")
    assert [unread.social(index) for index in range(3)] == [read.row(index)[social] for index in range(3)]
    assert [unread.social(index) for index in range(3)] == [1000, None, 1002]


def test_the_inline_listing_hash_is_the_one_listing_hash_computes() -> None:
    from bot.patreon import listing_structs as shape
    from bot.patreon.member_rows import listing_hash

    doc = canonical_page(3)
    doc["data"][2]["relationships"]["user"]["data"] = None
    text = json.dumps(doc)
    page = shape.PAGE.decode(text)
    users = {r.id: r.attributes for r in page.included if isinstance(r, shape.User)}
    expected = [listing_hash(m, users.get(m.relationships.user.data.id) if m.relationships.user.data else None)
                for m in page.data]  # fmt: skip
    assert read_members_page(text, OBSERVED, MEMBER_REQUEST_FIELDS).member_rows.listing_hashes == expected


def test_a_listing_hash_is_stable_and_changes_with_any_byte_of_the_member_its_user_or_its_relationships() -> None:
    """Equal bytes, equal hash, in any process (the store keeps it between refreshes); anything that could change a
    row changes it. Only bytes count: the same values spelt otherwise hash apart and are compared by value."""
    base = _rows(canonical_page(2)).listing_hashes
    assert base is not None and base == _rows(canonical_page(2)).listing_hashes and len(base[0]) == 16
    mutations = {
        "an attribute": lambda d: d["data"][0]["attributes"].update(will_pay_amount_cents=1),
        "the member's id": lambda d: d["data"][0].update(id="m-renewed"),
        "the user's account": lambda d: d["included"][0]["attributes"]["social_connections"].update(discord=None),
        "the tiers": lambda d: d["data"][0]["relationships"]["currently_entitled_tiers"].update(data=[]),
        "tiers not given": lambda d: d["data"][0]["relationships"].pop("currently_entitled_tiers"),
        "tiers null": lambda d: d["data"][0]["relationships"].update(currently_entitled_tiers=None),
        "the campaign": lambda d: d["data"][0]["relationships"].update(campaign={"data": {"id": "c9", "type": "x"}}),
        "the user": lambda d: d["data"][0]["relationships"]["user"].update(data={"id": "u1", "type": "user"}),
        "its user gone": lambda d: d["included"].pop(0),
    }
    for what, mutate in mutations.items():
        doc = canonical_page(2)
        mutate(doc)
        changed = _rows(doc).listing_hashes
        assert changed is not None and changed[0] != base[0], what
        assert changed[1] == base[1], f"{what} changed another member's hash"
    spaced = json.dumps(canonical_page(2), indent=1)
    assert read_members_page(spaced, OBSERVED, MEMBER_REQUEST_FIELDS).member_rows.listing_hashes[0] != base[0]
