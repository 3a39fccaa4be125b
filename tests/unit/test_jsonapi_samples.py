"""Every real/documented Patreon sample parses, with the values a human reads off the JSON.

The samples are vendored in `tests/data/patreon/` (origins in its SOURCES.md). A new sample without a check here
fails the suite on purpose: each capture is evidence about Patreon's real shape and deserves an assertion.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.domain.models import PatronStatus
from bot.patreon.jsonapi import (
    JsonApiError,
    parse_api_errors,
    parse_campaign,
    parse_campaigns,
    parse_identity,
    parse_member_document,
    parse_members_page,
    parse_token_response,
    parse_webhook,
    parse_webhooks,
)
from tests.samples import sample_paths

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
OBSERVED = datetime(2024, 5, 1, 12, 0, 5, tzinfo=UTC)


def _utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def parse_sample(name: str, doc: Any) -> Any:
    """Pick the parser the bot would use for a document of this kind (by file name)."""
    if name.startswith("identity"):
        return parse_identity(doc)
    if name.startswith("members_page"):
        return parse_members_page(doc, OBSERVED)
    if name.startswith(("member_by_id", "webhook_member", "webhook_portal_send_test")):
        return parse_member_document(doc, OBSERVED)
    if name.startswith("campaigns_list"):
        return parse_campaigns(doc)
    if name.startswith("campaign_by_id"):
        return parse_campaign(doc)
    if name.startswith("token_response"):
        return parse_token_response(doc, NOW)
    if name.startswith(("error_", "oauth_token_error")):
        return parse_api_errors(doc)
    if name.startswith("webhooks_list"):
        return parse_webhooks(doc)
    if name.startswith("webhook_"):
        return parse_webhook(doc)
    raise AssertionError(f"no parser chosen for sample {name}")


def check_kopi(snapshot: Any) -> None:
    """The Zulip captures all follow one test patron, Kopi, on campaign 11539233."""
    assert snapshot.member_id == "38c264ba-0612-4bb9-bc33-f9755cc68bb0"
    assert snapshot.campaign_id == "11539233"
    assert snapshot.patreon_user_id == "111836593"
    assert snapshot.full_name == "Kopi"
    assert snapshot.tiers_known is True
    assert snapshot.social_discord_id is None
    assert snapshot.observed_at == OBSERVED


def _campaign_by_id(c: Any) -> None:
    assert (c.id, c.patron_count, c.tiers, c.vanity) == ("12345", 1000, (), None)


def _campaigns_list(cs: Any) -> None:
    assert [(c.id, c.patron_count) for c in cs] == [("1234560", 2)]


def _error_401(errors: Any) -> None:
    assert len(errors) == 1
    assert (errors[0]["status"], errors[0]["code"], errors[0]["code_name"]) == ("401", 1, "Unauthorized")


def _error_429(errors: Any) -> None:
    assert errors[0]["status"] == "429"
    assert errors[0]["code_name"] == "RequestThrottled"
    assert errors[0]["retry_after_seconds"] == 9


def _identity_2020(identity: Any) -> None:
    assert identity.user.id == "12345"
    assert identity.user.full_name == "Platform Team"
    assert identity.user.social_discord_id is None  # discord: null, twitter linked
    assert identity.memberships == ()


def _identity_docs(identity: Any) -> None:
    assert (identity.user.id, identity.user.full_name, identity.memberships) == ("id", "Platform Team", ())


def _identity_ruby(identity: Any) -> None:
    assert identity.user.id == "1234"
    (membership,) = identity.memberships
    assert membership.member_id == "960d87e4-49ab-4828-b411-8ba9f91c6d81"
    assert membership.patreon_user_id == "1234"
    assert membership.campaign_id is None
    assert membership.tiers_known is False  # no currently_entitled_tiers relationship was asked for
    assert identity.membership_for("any-campaign") is None, "a membership without its campaign is no campaign's"


def _member_by_id(m: Any) -> None:
    assert (m.member_id, m.full_name, m.patreon_user_id, m.campaign_id) == ("123-456-789", "first last", "123", None)
    assert m.last_charge_date == _utc(2020, 10, 1, 11, 18, 36)
    assert m.tiers_known is False
    assert m.patron_status is None


def _page_2020(page: Any) -> None:
    (member,) = page.members
    assert member.patron_status is PatronStatus.ACTIVE
    assert (member.last_charge_status, member.currently_entitled_amount_cents) == ("Paid", 400)
    assert member.entitled_tier_ids == ("54321",)
    assert member.patreon_user_id is None
    assert (page.next_cursor, page.total) == ("12345678abcdefg", 100)
    (tier,) = page.tiers
    assert (tier.id, tier.title, tier.amount_cents, tier.patron_count) == ("54321", "Patron", 100, 32)
    assert (tier.published, tier.discord_role_ids) == (True, ("1234567890",))


def _page_docs(page: Any) -> None:
    assert (page.next_cursor, page.total) == ("12345678ab1231cdefg", 100)
    assert page.members[0].member_id == "03ca69c3-ebea-4b9a-8fac-e4a837873254"
    assert page.members[0].last_charge_date == _utc(2018, 4, 1, 21, 28, 6)


def _page_beira(page: Any) -> None:
    (member,) = page.members
    assert member.social_discord_id == 970344763544973342
    assert member.patreon_user_id == "44733510"
    assert member.entitled_tier_ids == ("8589697",)
    assert member.patron_status is None  # `fields[member]` was not asked for: attributes {}
    assert (page.next_cursor, page.total) == (None, 1)
    assert [t.id for t in page.tiers] == ["8589697"]


def _invalid_grant(errors: Any) -> None:
    assert errors[0]["error"] == "invalid_grant"
    assert errors[0]["error_description"] is None


def _missing_code(errors: Any) -> None:
    assert (errors[0]["error"], errors[0]["error_description"]) == ("invalid_request", "Missing code parameter.")


def _token(tokens: Any) -> None:
    assert tokens.expires_at == NOW + timedelta(seconds=2678400)
    assert tokens.token_type == "Bearer"
    assert "identity.memberships" in tokens.scope
    assert len(tokens.scope) == 7
    assert tokens.access_token == tokens.refresh_token == "0" * 43


def _webhook_request(hook: Any) -> None:
    assert hook.uri == "https://www.example.com"
    assert hook.triggers == ("members:create", "members:update", "members:delete")


def _webhook_response(hook: Any) -> None:
    assert (hook.id, hook.secret, hook.paused) == ("3955", "abcdefghiklmnopqrstuvwyz", False)
    assert hook.uri == "https://example.com/hooks/patreon"


def _webhook_payload_docs(m: Any) -> None:
    assert (m.member_id, m.campaign_id, m.patreon_user_id) == (
        "d485d5ac-6c82-42c6-9c08-c50cf01b73d7",
        "123456",
        "987654321",
    )
    assert m.currently_entitled_amount_cents == 0  # null in the doc
    assert (m.patron_status, m.entitled_tier_ids, m.tiers_known) == (None, (), True)


def _members_create(m: Any) -> None:
    check_kopi(m)
    assert (m.patron_status, m.last_charge_status, m.currently_entitled_amount_cents) == (None, None, 0)
    assert m.entitled_tier_ids == ()
    assert m.pledge_relationship_start == datetime(2023, 12, 29, 2, 59, 46, 36000, tzinfo=UTC)


def _pledge_create(m: Any) -> None:
    check_kopi(m)
    assert m.patron_status is PatronStatus.ACTIVE
    assert (m.last_charge_status, m.currently_entitled_amount_cents, m.will_pay_amount_cents) == ("Paid", 500, 500)
    assert m.entitled_tier_ids == ()  # paying, yet no tiers listed: the billing-day gap in a real capture
    assert (m.last_charge_date, m.next_charge_date) == (_utc(2023, 12, 29, 5, 26, 19), _utc(2024, 1, 29))
    assert m.pledge_cadence == 1


def _pledge_delete(m: Any) -> None:
    check_kopi(m)
    assert m.patron_status is PatronStatus.FORMER
    assert (m.last_charge_status, m.currently_entitled_amount_cents) == ("Deleted", 0)


def _pledge_update(m: Any) -> None:
    check_kopi(m)
    assert (m.patron_status, m.currently_entitled_amount_cents, m.entitled_tier_ids) == (PatronStatus.ACTIVE, 1000, ())


def _maael(m: Any) -> None:
    assert (m.campaign_id, m.patreon_user_id, m.full_name) == ("9441253", "88555402", "Matt Test")
    assert m.entitled_tier_ids == ("9512023", "9512103")
    assert (m.currently_entitled_amount_cents, m.campaign_lifetime_support_cents) == (100, 240)
    assert m.social_discord_id is None


def _free_trial(m: Any) -> None:
    check_kopi(m)
    assert (m.patron_status, m.is_free_trial, m.last_charge_status) == (PatronStatus.ACTIVE, True, None)
    assert m.currently_entitled_amount_cents == 100
    assert m.entitled_tier_ids == ("21926235", "21926168")


def _patch_request(hook: Any) -> None:
    assert (hook.id, hook.paused) == ("1234567", False)  # "paused": "false" as a string
    assert hook.triggers == ("members:create", "members:delete")


def _send_test(m: Any) -> None:
    assert m.member_id is None  # the portal's "Send Test" shape
    assert (m.campaign_id, m.patreon_user_id, m.full_name) == ("1194966", "7498102", "Zulip")
    assert (m.patron_status, m.last_charge_status) == (PatronStatus.ACTIVE, "Paid")
    assert m.currently_entitled_amount_cents == 0  # v1 `pledge_amount_cents` is deliberately not read
    assert m.tiers_known is False


def _webhooks_list(hooks: Any) -> None:
    (hook,) = hooks
    assert (hook.id, hook.secret, len(hook.triggers)) == ("2793", "hereisaverycomplexsecret", 3)
    assert hook.last_attempted_at == _utc(2018, 4, 1, 20, 9, 18)


CHECKS: dict[str, Callable[[Any], None]] = {
    "campaign_by_id_docs_sample.json": _campaign_by_id,
    "campaigns_list_docs_sample.json": _campaigns_list,
    "error_401_unauthorized.json": _error_401,
    "error_429_rate_limited_docs.json": _error_429,
    "identity_docs_2020_with_social_connections.json": _identity_2020,
    "identity_docs_sample.json": _identity_docs,
    "identity_with_memberships_patreon_ruby_readme.json": _identity_ruby,
    "member_by_id_docs_sample.json": _member_by_id,
    "members_page_docs_2020_with_links_next.json": _page_2020,
    "members_page_docs_sample.json": _page_docs,
    "members_page_with_discord_social_connection.json": _page_beira,
    "oauth_token_error_invalid_grant.json": _invalid_grant,
    "oauth_token_error_missing_code.json": _missing_code,
    "token_response.json": _token,
    "webhook_create_request_docs.json": _webhook_request,
    "webhook_create_response_docs.json": _webhook_response,
    "webhook_member_payload_docs_sample.json": _webhook_payload_docs,
    "webhook_members_create.json": _members_create,
    "webhook_members_pledge_create.json": _pledge_create,
    "webhook_members_pledge_delete.json": _pledge_delete,
    "webhook_members_pledge_update.json": _pledge_update,
    "webhook_members_pledge_update_maael_capture.json": _maael,
    "webhook_members_update_free_trial.json": _free_trial,
    "webhook_patch_request_docs.json": _patch_request,
    "webhook_portal_send_test_members_create.json": _send_test,
    "webhooks_list_docs_sample.json": _webhooks_list,
}

SAMPLE_FILES = sample_paths()


def test_every_checked_sample_is_vendored_and_every_vendored_sample_has_its_source() -> None:
    vendored = {path.name for path in SAMPLE_FILES}
    assert vendored == set(CHECKS), "a sample without a check, or a check whose sample is missing"
    sources = (SAMPLE_FILES[0].parent / "SOURCES.md").read_text()
    assert [name for name in sorted(vendored) if f"| {name} |" not in sources] == []


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.name)
def test_every_sample_parses_to_the_values_it_shows(path: Path) -> None:
    assert path.name in CHECKS, f"new sample {path.name}: add a check for it"
    result = parse_sample(path.name, json.loads(path.read_text()))
    CHECKS[path.name](result)


# ---------------------------------------------------------------- tolerance beyond the samples


def _member_doc(attributes: dict[str, Any], user_attributes: dict[str, Any] | None = None) -> dict[str, Any]:
    relationships: dict[str, Any] = {"user": {"data": {"id": "7", "type": "user"}}}
    doc: dict[str, Any] = {"data": {"type": "member", "id": "m1", "attributes": attributes}}
    if user_attributes is not None:
        doc["data"]["relationships"] = relationships
        doc["included"] = [{"type": "user", "id": "7", "attributes": user_attributes}]
    return doc


@pytest.mark.parametrize(
    ("social", "expected"),
    [
        (None, None),
        ({"discord": None}, None),
        ({"discord": {"user_id": None}}, None),
        ({"discord": {"user_id": "not-a-number"}}, None),
        ({"discord": {"user_id": ""}}, None),
        ({"discord": {"user_id": True}}, None),
        ({"discord": "970344763544973342"}, None),
        ({"discord": {"user_id": " 970344763544973342 "}}, 970344763544973342),
        ({"discord": {"user_id": 42}}, 42),
    ],
)
def test_discord_id_tolerates_nulls_and_garbage(social: Any, expected: int | None) -> None:
    snapshot = parse_member_document(_member_doc({}, {"social_connections": social}))
    assert snapshot.social_discord_id == expected
    assert snapshot.patreon_user_id == "7"


def test_unknown_enum_values_do_not_stop_parsing() -> None:
    snapshot = parse_member_document(
        _member_doc(
            {
                "patron_status": "paused_patron",
                "last_charge_status": "Something New",
                "currently_entitled_amount_cents": "250",
                "is_free_trial": None,
                "last_charge_date": "yesterday",
                "next_charge_date": "2024-02-01T00:00:00",
                "pledge_cadence": 12,
            }
        )
    )
    assert snapshot.patron_status is None
    assert snapshot.last_charge_status == "Something New"
    assert snapshot.currently_entitled_amount_cents == 250
    assert snapshot.is_free_trial is False
    assert snapshot.last_charge_date is None
    assert snapshot.next_charge_date == _utc(2024, 2, 1)  # naive → UTC
    assert snapshot.pledge_cadence == 12
    assert snapshot.tiers_known is False
    assert snapshot.campaign_id is None


def test_offsets_are_kept_as_aware_datetimes() -> None:
    snapshot = parse_member_document(_member_doc({"last_charge_date": "2024-01-01T10:00:00+02:00"}))
    assert snapshot.last_charge_date == _utc(2024, 1, 1, 8)
    assert snapshot.last_charge_date is not None and snapshot.last_charge_date.utcoffset() is not None


def test_duplicated_included_resources_are_merged_once() -> None:
    doc = {
        "data": [
            {
                "type": "member",
                "id": f"m{i}",
                "relationships": {"currently_entitled_tiers": {"data": [{"type": "tier", "id": "t1"}] * 2}},
            }
            for i in range(2)
        ],
        "included": [
            {"type": "tier", "id": "t1", "attributes": {"title": "Gold"}},
            {"type": "tier", "id": "t1", "attributes": {"amount_cents": 900}},
        ],
        "links": {"next": "https://www.patreon.com/api/oauth2/v2/campaigns/1/members?page%5Bcursor%5D=abc"},
    }
    page = parse_members_page(doc)
    assert [m.entitled_tier_ids for m in page.members] == [("t1",), ("t1",)]
    assert [(t.id, t.title, t.amount_cents) for t in page.tiers] == [("t1", "Gold", 900)]
    assert page.next_cursor == "abc"  # only `links.next` was present (pre-2020 docs)


@pytest.mark.parametrize(
    "doc",
    [
        [],
        "data",
        {},
        {"links": {}},
        {"errors": [{"status": "401", "title": "Unauthorized"}]},
        {"data": {"type": "campaign", "id": "1"}},
        {"data": [{"type": "member", "id": "1"}]},
    ],
)
def test_documents_that_are_not_a_member_raise_json_api_error(doc: Any) -> None:
    with pytest.raises(JsonApiError):
        parse_member_document(doc)


def test_members_page_needs_a_list() -> None:
    with pytest.raises(JsonApiError, match="list"):
        parse_members_page({"data": {"type": "member", "id": "1"}})


@pytest.mark.parametrize(
    "body",
    [{}, {"access_token": "a"}, {"access_token": "a", "refresh_token": "r", "expires_in": "soon"}, ["x"]],
)
def test_token_responses_without_tokens_or_lifetime_raise(body: Any) -> None:
    with pytest.raises(JsonApiError):
        parse_token_response(body, NOW)


def test_api_errors_of_anything_else_is_empty() -> None:
    assert parse_api_errors("<html>401</html>") == []
    assert parse_api_errors({"errors": "nope"}) == []
    assert parse_api_errors({"errors": [{"status": 404}]}) == [{"status": "404"}]
