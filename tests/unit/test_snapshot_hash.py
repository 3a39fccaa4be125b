"""The stored snapshot hash (bot/store/codec.py `snapshot_hash`) tells a changed member from an unchanged one.

The refresh rewrites and plans only members whose hash changed, so two snapshots that differ in anything but
`observed_at` (every other field is something Patreon said, read by the policy or shown) must hash differently, and
equal ones must hash equal in every process: no salted `hash()` of a str anywhere in it.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bot.domain.models import MembershipSnapshot, PatronStatus
from bot.store.codec import snapshot_hash

ROOT = Path(__file__).resolve().parents[2]
FIELDS = [field.name for field in dataclasses.fields(MembershipSnapshot) if field.name != "observed_at"]
WHEN = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
) | st.none()
TEXT = st.none() | st.text(max_size=12)
VALUES: dict[str, Any] = {
    "member_id": TEXT,
    "campaign_id": TEXT,
    "patreon_user_id": TEXT,
    "full_name": TEXT,
    "patron_status": st.none() | st.sampled_from(PatronStatus),
    "last_charge_status": TEXT,
    "last_charge_date": WHEN,
    "next_charge_date": WHEN,
    "pledge_relationship_start": WHEN,
    "pledge_cadence": st.none() | st.integers(-(2**70), 2**70),
    "currently_entitled_amount_cents": st.integers(-(2**70), 2**70),
    "will_pay_amount_cents": st.integers(-(2**63), 2**64 - 1),
    "campaign_lifetime_support_cents": st.integers(0, 10**9),
    "is_free_trial": st.booleans(),
    "is_gifted": st.booleans(),
    "entitled_tier_ids": st.lists(st.text(max_size=4), max_size=3).map(tuple),
    "tiers_known": st.booleans(),
    "social_discord_id": st.none() | st.integers(1, 2**64 - 1),
    "currency": st.none() | st.sampled_from(["USD", "EUR", "usd", ""]),
}
SNAPSHOTS = st.builds(MembershipSnapshot, **VALUES, observed_at=WHEN)
FIXED = MembershipSnapshot(
    member_id="m-1",
    campaign_id="c-1",
    patreon_user_id="u-1",
    full_name="Ann",
    patron_status=PatronStatus.ACTIVE,
    last_charge_status="Paid",
    last_charge_date=datetime(2025, 2, 26, 12, tzinfo=UTC),
    next_charge_date=datetime(2025, 3, 26, 12, tzinfo=UTC),
    pledge_relationship_start=datetime(2025, 1, 1, tzinfo=UTC),
    pledge_cadence=1,
    currently_entitled_amount_cents=500,
    will_pay_amount_cents=500,
    campaign_lifetime_support_cents=1500,
    entitled_tier_ids=("3001",),
    social_discord_id=970344763544973342,
)


def test_every_field_but_observed_at_is_covered() -> None:
    """A field added to MembershipSnapshot needs a strategy here (and so is covered by the property below)."""
    assert sorted(VALUES) == sorted(FIELDS)


@given(SNAPSHOTS, st.sampled_from(FIELDS), st.data())
def test_snapshots_that_differ_in_any_field_hash_differently(
    snapshot: MembershipSnapshot, name: str, data: st.DataObject
) -> None:
    other_value = data.draw(VALUES[name].filter(lambda value: value != getattr(snapshot, name)))
    other = dataclasses.replace(snapshot, **{name: other_value})
    assert snapshot_hash(other) != snapshot_hash(snapshot), name


@given(SNAPSHOTS, WHEN)
def test_equal_snapshots_hash_equal_whenever_they_were_observed(snapshot: MembershipSnapshot, when: Any) -> None:
    copy = dataclasses.replace(snapshot, observed_at=when)
    assert snapshot_hash(copy) == snapshot_hash(snapshot) and len(snapshot_hash(snapshot)) == 8


def test_the_same_instant_in_another_offset_is_the_same_snapshot_and_the_same_hash() -> None:
    shifted = FIXED.last_charge_date.astimezone(timezone(timedelta(hours=2)))  # type: ignore[union-attr]
    other = dataclasses.replace(FIXED, last_charge_date=shifted)
    assert other == FIXED and snapshot_hash(other) == snapshot_hash(FIXED)


def test_look_alike_values_of_other_types_hash_differently() -> None:
    assert snapshot_hash(dataclasses.replace(FIXED, full_name="")) != snapshot_hash(
        dataclasses.replace(FIXED, full_name=None)
    )
    assert snapshot_hash(dataclasses.replace(FIXED, last_charge_status="1")) != snapshot_hash(
        dataclasses.replace(FIXED, last_charge_status=1)  # type: ignore[arg-type]
    )
    assert snapshot_hash(dataclasses.replace(FIXED, pledge_cadence=1)) != snapshot_hash(
        dataclasses.replace(FIXED, pledge_cadence=True)
    )


def test_the_hash_is_the_same_in_every_process() -> None:
    """Two interpreters with different str-hash salts agree with this one and with the digest pinned here (a
    change of the pinned digest rewrites every stored membership once: say so in the upgrade notes)."""
    script = (
        "from tests.unit.test_snapshot_hash import FIXED; from bot.store.codec import snapshot_hash;"
        "print(snapshot_hash(FIXED).hex())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", script],
            cwd=ROOT,
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert digests == {snapshot_hash(FIXED).hex()} == {PINNED}


PINNED = "562ae86e012ebede"
