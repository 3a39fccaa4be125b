"""Where the CPU of reading Patreon's members listing goes, page by page, without the bot around it.

    python -m bench.parse_bench [--members 100000] [--repeat 3] [--heap 1000000]

The fake Patreon runs in this process; its 100 pages of 1,000 members (the refresh's `include` and `fields`) are
fetched once over loopback and kept as text. Then, per page and as the refresh does: `json.loads` (the client's
`_decode_json`), `parse_members_page` with the fields asked for (strict: `MissingAttributes`), and freeing the
decoded document. `--heap` keeps that many small live objects around (about discord.py's cache of 100,000 members)
with the refresh's collector threshold, so the garbage collector sees what it sees in the bot. Each figure is the
best of `--repeat` passes, in process CPU seconds.

`fast` is the client's own path since issue 9's last step (bot/patreon/member_pages.py): msgspec decodes the text
straight into typed structs (the shape and types checked in C) and the snapshots are built from those, so its
decode and parse are one step, printed as `parse` (`decode` 0). `ours` is the old reader the fast one falls back to
for any page that is not canonical (`json.loads`, then `parse_members_page`). `deferred` is what the refresh pays
for a page whose members all are as the last listing showed them: the page decoded with each member's attributes
kept as raw bytes, each member hashed (its listing hash), nothing else read (bot/patreon/member_rows.py).

`floor` is a reader that trusts every type and checks nothing (direct indexing into the same snapshots): not a
parser the bot could use, only how low a pure-Python reader can go; what stays is the dataclass construction,
dict lookups and `datetime.fromisoformat`. The bot's own refresh adds HTTP, the store and the plan
(`refresh_bench.py` prints those).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp

from bot.domain.models import MembershipSnapshot, PatronStatus
from bot.patreon.client import MEMBER_REQUEST_FIELDS, _fields
from bot.patreon.jsonapi import parse_members_page
from bot.patreon.member_pages import read_members_page
from bot.patreon.member_rows import ListingPage
from bot.patreon.transport import _decode_json
from bot.sync.refresh import LISTING_GC_THRESHOLD
from fakes.patreon import FakePatreon

TIERS = (("3001", "Bronze", 300), ("3002", "Silver", 500), ("3003", "Gold", 1000))
_STATUSES = {status.value: status for status in PatronStatus}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=100_000, help="members in the fake campaign")
    parser.add_argument("--repeat", type=int, default=3, help="passes over the pages; the best is printed")
    parser.add_argument("--heap", type=int, default=1_000_000, help="small live objects kept (discord.py's cache)")
    return parser.parse_args(argv)


async def fetch_pages(members: int) -> list[str]:
    """Every page of the fake campaign's listing as the refresh asks for it, as text."""
    fake = FakePatreon(client_id="bench", client_secret="bench", redirect_uris=("http://127.0.0.1:1/cb",))
    await fake.start()
    try:
        for tier_id, title, cents in TIERS:
            fake.add_tier(tier_id, title, cents)
        fake.seed_members(members, [tier[0] for tier in TIERS])
        url = f"{fake.base_url}/api/oauth2/v2/campaigns/{fake.campaign.id}/members"
        base = {"include": "currently_entitled_tiers,user", **_fields(MEMBER_REQUEST_FIELDS), "page[count]": "1000"}
        headers = {"Authorization": f"Bearer {fake.creator_access_token}"}
        pages: list[str] = []
        cursor: str | None = None
        async with aiohttp.ClientSession(headers=headers) as session:
            while True:
                params = base if cursor is None else {**base, "page[cursor]": cursor}
                async with session.get(url, params=params) as response:
                    pages.append(await response.text())
                cursor = parse_members_page(_decode_json(pages[-1])).next_cursor
                if cursor is None:
                    return pages
    finally:
        await fake.close()


def floor(document: dict[str, Any], now: datetime) -> list[MembershipSnapshot]:
    """The same snapshots by direct indexing, no checks (the lower bound of a pure-Python reader)."""
    users = {item["id"]: item["attributes"] for item in document["included"] if item["type"] == "user"}
    when = datetime.fromisoformat
    snapshots = []
    for member in document["data"]:
        attributes, relationships = member["attributes"], member["relationships"]
        user_id = relationships["user"]["data"]["id"]
        discord = (users[user_id].get("social_connections") or {}).get("discord")
        last, following, start = (
            attributes["last_charge_date"],
            attributes["next_charge_date"],
            attributes["pledge_relationship_start"],
        )
        snapshots.append(
            MembershipSnapshot(
                member_id=member["id"],
                campaign_id=None,
                patreon_user_id=user_id,
                full_name=attributes["full_name"],
                patron_status=_STATUSES.get(attributes["patron_status"]),
                last_charge_status=attributes["last_charge_status"],
                last_charge_date=when(last) if last else None,
                next_charge_date=when(following) if following else None,
                pledge_relationship_start=when(start) if start else None,
                pledge_cadence=attributes["pledge_cadence"],
                currently_entitled_amount_cents=attributes["currently_entitled_amount_cents"],
                will_pay_amount_cents=attributes["will_pay_amount_cents"],
                campaign_lifetime_support_cents=attributes["campaign_lifetime_support_cents"],
                is_free_trial=attributes["is_free_trial"],
                is_gifted=attributes["is_gifted"],
                entitled_tier_ids=tuple(t["id"] for t in relationships["currently_entitled_tiers"]["data"]),
                social_discord_id=int(discord["user_id"]) if discord else None,
                observed_at=now,
            )
        )
    return snapshots


def one_pass(pages: list[str], read: Callable[[Any, datetime], object], decode: bool = True) -> dict[str, float]:
    spent = {"decode": 0.0, "parse": 0.0, "free": 0.0}
    now, clock = datetime.now(UTC), time.process_time
    for text in pages:
        began = clock()
        document = _decode_json(text) if decode else text
        decoded = clock()
        result = read(document, now)
        parsed = clock()
        del document
        spent["free"] += clock() - parsed
        spent["decode"] += decoded - began
        spent["parse"] += parsed - decoded
        del result
    return spent


def ours(document: dict[str, Any], now: datetime) -> object:
    return parse_members_page(document, now, MEMBER_REQUEST_FIELDS)


def fast(text: str, now: datetime) -> object:
    """Every member read, as an eager reader reads them."""
    page = deferred(text, now)
    page.member_rows.check_all()
    return page


def deferred(text: str, now: datetime) -> ListingPage:
    """What the refresh pays for a page none of whose members changed: the page decoded, each member hashed, no
    member's attributes read (bot/patreon/member_rows.py)."""
    page = read_members_page(text, now, MEMBER_REQUEST_FIELDS)
    assert page is not None, "the fake's pages are canonical: the fast reader must not decline them"
    return page


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"fetching the listing of {args.members:,} members from an in-process fake Patreon ...", flush=True)
    pages = asyncio.run(fetch_pages(args.members))
    print(f"  {len(pages)} pages, {sum(map(len, pages)) / 1e6:.0f} MB of JSON")
    now = datetime.now(UTC)
    same = list(parse_members_page(_decode_json(pages[0]), now, MEMBER_REQUEST_FIELDS).members)
    assert floor(_decode_json(pages[0]), now) == same, "the floor reader must read what the parser reads"
    fast_page = read_members_page(pages[0], now, MEMBER_REQUEST_FIELDS)
    assert fast_page is not None and list(fast_page.members) == same, "the fast reader must read what ours reads"
    heap = [[index, {"i": index}] for index in range(args.heap)]
    gc.collect()
    previous = gc.get_threshold()
    gc.set_threshold(max(previous[0], LISTING_GC_THRESHOLD), *previous[1:])
    best: dict[str, dict[str, float]] = {}
    try:
        for _ in range(args.repeat):
            for name, read in (("fast", fast), ("deferred", deferred), ("ours", ours), ("floor", floor)):
                spent = one_pass(pages, read, decode=name not in ("fast", "deferred"))
                if name not in best or sum(spent.values()) < sum(best[name].values()):
                    best[name] = spent
    finally:
        gc.set_threshold(*previous)
    print(f"  with {len(heap):,} small live objects, the refresh's collector threshold; best of {args.repeat}:")
    for name, spent in best.items():
        total = sum(spent.values())
        per_member = spent["parse"] / args.members * 1e6
        print(
            f"  {name:<8} decode {spent['decode']:.2f}s  parse {spent['parse']:.2f}s ({per_member:.1f} µs a member)  "
            f"free {spent['free']:.2f}s  total {total:.2f}s"
        )
    print(
        f"RESULT fast_cpu_s={sum(best['fast'].values()):.2f} deferred_cpu_s={sum(best['deferred'].values()):.2f} "
        f"decode_cpu_s={best['ours']['decode']:.2f} parse_cpu_s={best['ours']['parse']:.2f} "
        f"free_cpu_s={best['ours']['free']:.2f} floor_parse_cpu_s={best['floor']['parse']:.2f} "
        f"members={args.members}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
