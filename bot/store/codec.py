"""JSON round-trips for the dataclasses the store keeps as documents (snapshots and guild settings)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import datetime
from operator import attrgetter
from typing import Any

import msgspec

from bot.domain.guild_settings import GuildSettings, RoleMode
from bot.domain.models import MembershipSnapshot, PatronStatus

_SNAPSHOT_DATES = ("last_charge_date", "next_charge_date", "pledge_relationship_start", "observed_at")
#: `observed_at` is kept in its own column, so that an unchanged member encodes to the same text at every refresh.
#: What `snapshot_hash` packs, in this order (the listing's fast reader builds its rows in the same order).
SNAPSHOT_FIELDS = tuple(field.name for field in dataclasses.fields(MembershipSnapshot) if field.name != "observed_at")
_snapshot_values = attrgetter(*SNAPSHOT_FIELDS)
#: What a stored snapshot's text may hold: a key from a newer version is dropped (looked up once, not per decode:
#: a count or report of 100,000 members spent a seventh of its time asking `dataclasses.fields` again).
_SNAPSHOT_KEYS = frozenset(field.name for field in dataclasses.fields(MembershipSnapshot))
_pack = msgspec.msgpack.Encoder().encode
_blake2b = hashlib.blake2b


def snapshot_hash(snapshot: MembershipSnapshot) -> bytes:
    """8 bytes that change whenever what Patreon said changes (`observed_at` aside): the refresh compares this
    with the stored hash, so an unchanged member is neither encoded nor rewritten.

    Built from the field values in order, packed by msgpack (`msgspec`): stable across processes (unlike `hash()`,
    salted for str), each type packed apart (1 and "1", None and "", True and 1 differ), an aware datetime as its
    instant (so equal snapshots hash equal), and five times cheaper than the `repr` hash of migration 7, which a
    100,000-member refresh paid 0.5 s for. A stored hash of that older kind never matches: each member counts as
    changed once, at the first refresh after the upgrade. A value msgpack can't pack (an int past 64 bits) is
    hashed by its `repr`, under a prefix no msgpack array starts with. A collision (1 in 2**64 per change) would
    delay that member's change to the daily full re-plan (bot/sync/refresh.py) or its next webhook.
    """
    return values_hash(_snapshot_values(snapshot))


def values_hash(values: tuple[Any, ...]) -> bytes:
    """`snapshot_hash` of the snapshot whose `SNAPSHOT_FIELDS` values these are, without building it (the
    refresh hashes a listing page's rows and builds only the changed members)."""
    try:
        packed = _pack(values)
    except (OverflowError, TypeError):
        packed = b"repr:" + repr(values).encode()
    return _blake2b(packed, digest_size=8).digest()


def encode_snapshot(snapshot: MembershipSnapshot) -> str:
    """What Patreon said, without when: equal text means an unchanged member (the refresh skips rewriting it)."""
    # A shallow copy: every field is immutable, and `dataclasses.asdict` (a deep copy) costs a full refresh seconds.
    data = {name: getattr(snapshot, name) for name in SNAPSHOT_FIELDS}
    for name in _SNAPSHOT_DATES:
        if data.get(name) is not None:
            data[name] = data[name].isoformat()
    data["entitled_tier_ids"] = list(snapshot.entitled_tier_ids)
    return json.dumps(data, separators=(",", ":"))


def decode_snapshot(text: str, observed_at: datetime | None = None) -> MembershipSnapshot:
    """`observed_at` comes from its column; rows written before it moved there carry it in the text."""
    data: dict[str, Any] = json.loads(text)
    if observed_at is not None and data.get("observed_at") is None:
        data["observed_at"] = observed_at.isoformat()
    data = {key: value for key, value in data.items() if key in _SNAPSHOT_KEYS}
    for name in _SNAPSHOT_DATES:
        if data.get(name) is not None:
            data[name] = datetime.fromisoformat(data[name])
    if data.get("patron_status") is not None:
        data["patron_status"] = PatronStatus(data["patron_status"])
    data["entitled_tier_ids"] = tuple(data.get("entitled_tier_ids") or ())
    return MembershipSnapshot(**data)


def encode_settings(settings: GuildSettings) -> str:
    data = dataclasses.asdict(settings)
    data.pop("guild_id")
    return json.dumps(data, separators=(",", ":"))


def decode_settings(guild_id: int, text: str) -> GuildSettings:
    """Unknown keys (from a newer version) are dropped; missing ones take today's defaults."""
    data: dict[str, Any] = json.loads(text)
    known = {field.name for field in dataclasses.fields(GuildSettings)} - {"guild_id"}
    data = {key: value for key, value in data.items() if key in known}
    if "role_mode" in data:
        data["role_mode"] = RoleMode(data["role_mode"])
    return GuildSettings(guild_id=guild_id, **data)
