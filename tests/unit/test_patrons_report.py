"""The patrons report's pure parts (bot/guild_admin/patrons_report.py): CSV cells a spreadsheet can't run, names
that can't format or mention in Discord, and what counts as unlinked, in grace and gone."""

import io
import zipfile
from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.guild_settings import GuildSettings
from bot.domain.models import MembershipSnapshot, PatronStatus, Tier, TierRoleMap
from bot.guild_admin.patrons_report import ServerView, attachment, build_report, safe_cell

NOW = datetime(2026, 1, 10, tzinfo=UTC)
GOLD_ROLE = 11


@pytest.mark.parametrize("name", ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"])
def test_a_cell_that_a_spreadsheet_would_run_is_made_text(name):
    assert safe_cell(name) == "'" + name


@pytest.mark.parametrize("name", ["Alice", "1+1", "a=b", "", "'quoted"])
def test_other_cells_are_left_as_they_are(name):
    assert safe_cell(name) == name


def member(user: str, name: str, status: PatronStatus | None, **fields: object) -> MembershipSnapshot:
    return MembershipSnapshot(
        member_id=f"m-{user}",
        campaign_id="c",
        patreon_user_id=user,
        full_name=name,
        patron_status=status,
        entitled_tier_ids=("gold",) if status else (),
        **fields,  # type: ignore[arg-type]
    )


def server(links: dict[int, str], roles_of: dict[int, frozenset[int] | None], grants: dict[int, frozenset[int]]):
    return ServerView(
        settings=GuildSettings(guild_id=1, enabled=True),
        tier_roles=TierRoleMap({"gold": frozenset({GOLD_ROLE})}),
        tiers={"gold": Tier(id="gold", title="Gold", amount_cents=1000)},
        links=links,
        roles_of=roles_of,
        grants=grants,
        role_name=lambda role: "Gold Patron" if role == GOLD_ROLE else f"role {role}",
        user_name=lambda user: f"user{user}",
    )


def test_unlinked_grace_and_gone_are_told_apart():
    declined = member(
        "p2", "Bea", PatronStatus.DECLINED, last_charge_status="Declined", last_charge_date=NOW - timedelta(days=1)
    )
    report = build_report(
        [
            member("p1", "Al", PatronStatus.ACTIVE),
            declined,
            member("p3", "Cy", PatronStatus.ACTIVE),
            member("p4", "Di", None),
        ],
        server(
            links={2: "p2", 3: "p3", 4: "p4"},
            roles_of={2: frozenset({GOLD_ROLE}), 3: None, 4: frozenset()},
            grants={2: frozenset({GOLD_ROLE})},
        ),
        NOW,
    )
    assert [row.patreon_name for row in report.unlinked_paying] == ["Al"]
    assert [row.patreon_name for row in report.in_grace] == ["Bea"]
    assert [row.patreon_name for row in report.linked_gone] == ["Cy"]
    assert [row.patreon_name for row in report.linked_here] == ["Bea", "Di"]
    text = report.summary()
    assert "Linked members here: 2** (Gold: 1, no tier: 1)" in text
    assert "Paying but not linked here: 1**: Al." in text


def test_a_name_can_neither_format_nor_mention_in_the_summary():
    report = build_report([member("p1", "**@everyone** <@1>", PatronStatus.ACTIVE)], server({}, {}, {}), NOW)
    line = report.summary().splitlines()[1]
    assert "\\*\\*\\@everyone\\*\\* \\<\\@1\\>" in line


def test_a_csv_too_big_for_discord_goes_zipped():
    data = b"patreon_name\r\n" + b"x" * 100
    assert attachment(data, limit=1000) == ("patrons.csv", data)
    name, zipped = attachment(data, limit=50)
    assert name == "patrons.csv.zip" and len(zipped) < len(data) + 200
    with zipfile.ZipFile(io.BytesIO(zipped)) as archive:
        assert archive.read("patrons.csv") == data
