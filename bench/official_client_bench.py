"""Time the official `patreon` PyPI client (0.5.0) against our PatreonClient on the same fake campaign.

    python -m bench.official_client_bench [--members 100000] [--repeat 3]

What was done to make the comparison possible, and fair: patreon 0.5.0 is a synchronous `requests` client that
only knows API v1 and the real host: `fetch_page_of_pledges` calls
`patreon.api.requests.get("https://www.patreon.com/api/oauth2/api/campaigns/{id}/pledges?page[count]=…")`.
This bench replaces `patreon.api.requests` with `V1ToFakeV2`, a shim whose `get` rewrites that URL to the fake's
API v2 members endpoint, `/api/oauth2/v2/campaigns/{id}/members`, with page[count]=1000, the cursor the official
client passed, and the same include and fields our client asks for, then calls the real `requests.get` (a new
connection per call, as the official client does). So both clients walk the same pages of the same fake
campaign (served from a child process); only the HTTP stack and the parsing differ.

Work per member, to compare like with like: our client builds a typed `MembershipSnapshot` (every attribute,
tier ids, user id, the user's Discord id). The official client gets a `JSONAPIParser` page; the bench reads the
same attributes and the tier and user ids from it ("ids"), and in a second variant also resolves each member's
user with `relationship("user")`, the official API for included resources ("resolve"), which is how one would
reach the user's social connections. `extract_cursor` is only called on pages that carry `links` (0.5.0 raises
"Provided cursor path did not result in a link" on v2's last page, which has none). Members counted by each must
be equal. Wall and CPU seconds are this process's (the fakes run in the child); each figure is the median of
`--repeat` walks after one warm-up walk. The official client does less per member than ours (no dates parsed,
no typed result), so "ids" is its cheapest honest use, and "resolve" what reaching included data costs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import aiohttp
import patreon
import patreon.api
import requests

from bench.bot_runner import Span, free_port, ratio
from bench.fakes_process import FakesProcess
from bench.seeding import USER_AGENT
from bot.patreon.client import MAX_PAGE_SIZE, MEMBER_FIELDS, TIER_FIELDS, USER_FIELDS, PatreonClient

V1_PREFIX = "https://www.patreon.com/api/oauth2/api/"


class V1ToFakeV2:
    """Stands in for the `requests` module inside `patreon.api`: v1 pledges URL in, fake v2 members page out."""

    def __init__(self, base_url: str, campaign_id: str) -> None:
        self.v1_url = f"{V1_PREFIX}campaigns/{campaign_id}/pledges"
        self.v2_url = f"{base_url}/api/oauth2/v2/campaigns/{campaign_id}/members"
        self.params = {
            "include": "currently_entitled_tiers,user",
            "fields[member]": ",".join(MEMBER_FIELDS),
            "fields[user]": ",".join(USER_FIELDS),
            "fields[tier]": ",".join(TIER_FIELDS),
            "page[count]": str(MAX_PAGE_SIZE),
        }
        self.calls = 0

    def get(self, url: str, headers: dict[str, str] | None = None, **kwargs: Any) -> requests.Response:
        if not url.startswith(self.v1_url):
            raise AssertionError(f"the official client asked for {url}, not the pledges of the campaign")
        cursor = parse_qs(urlsplit(url).query).get("page[cursor]")
        params = {**self.params, **({"page[cursor]": cursor[0]} if cursor else {})}
        self.calls += 1
        return requests.get(f"{self.v2_url}?{urlencode(params, quote_via=quote, safe=',')}", headers=headers, **kwargs)


def official_walk(token: str, campaign_id: str, resolve_users: bool) -> int:
    """Every member via patreon 0.5.0 (`fetch_page_of_pledges` + `extract_cursor`); returns members read."""
    api, cursor, members = patreon.API(token), None, 0
    while True:
        document = api.fetch_page_of_pledges(campaign_id, MAX_PAGE_SIZE, cursor=cursor)
        if isinstance(document, dict):
            raise RuntimeError(f"the official client got errors: {document.get('errors')}")
        for member in document.data():
            values = [member.attribute(name) for name in MEMBER_FIELDS]
            tiers = [ref.id() for ref in member.relationship_info("currently_entitled_tiers").resource_reference()]
            user_id = member.relationship_info("user").resource_reference().id()
            if resolve_users:
                user = member.relationship("user")
                values.append(user.attribute("social_connections") if user is not None else None)
            members += bool(values is not None and tiers is not None and user_id)
        # extract_cursor raises on a page with no `links` at all (v2's last page); v1 always sent `links`.
        cursor = api.extract_cursor(document) if "links" in document.json_data else None
        if not cursor:
            return members


async def our_walk(session: aiohttp.ClientSession, base_url: str, token: str, campaign_id: str) -> int:
    client = PatreonClient(
        session,
        base_url=base_url,
        client_id="bench",
        client_secret="bench",
        redirect_uri="http://127.0.0.1/patreon/callback",
        user_agent=USER_AGENT,
    )
    members = 0
    async for page in client.iter_member_pages(token, campaign_id):
        members += len(page.members)
    return members


def timed(walk: Callable[[], int]) -> tuple[int, Span]:
    span = Span.start()
    members = walk()
    return members, span.stop()


def median(spans: list[Span]) -> Span:
    return Span(statistics.median(s.wall for s in spans), statistics.median(s.cpu for s in spans))


def compare(members: int, repeat: int) -> int:
    fakes = FakesProcess().start()
    try:
        seed = fakes.request("seed", members=members, web_port=free_port(), db_path=None)
        env = seed["env"]
        base, token, campaign = env["PATREON_BASE_URL"], env["PATREON_CREATOR_ACCESS_TOKEN"], env["PATREON_CAMPAIGN_ID"]
        shim = V1ToFakeV2(base, campaign)
        patreon.api.requests = shim  # type: ignore[attr-defined]
        loop = asyncio.new_event_loop()
        session = loop.run_until_complete(_session())
        try:

            def ours() -> int:
                return loop.run_until_complete(our_walk(session, base, token, campaign))

            walks: dict[str, Callable[[], int]] = {
                "ours (PatreonClient.iter_member_pages)": ours,
                "official 0.5.0, ids": lambda: official_walk(token, campaign, resolve_users=False),
                "official 0.5.0, resolve users": lambda: official_walk(token, campaign, resolve_users=True),
            }
            ours()  # warm-up: the fake renders and caches every member's JSON once
            counts: dict[str, set[int]] = {name: set() for name in walks}
            spans: dict[str, list[Span]] = {name: [] for name in walks}
            for _ in range(repeat):
                for name, walk in walks.items():
                    read, span = timed(walk)
                    counts[name].add(read)
                    spans[name].append(span)
        finally:
            loop.run_until_complete(session.close())
            loop.close()
    finally:
        fakes.stop()

    pages = -(-members // MAX_PAGE_SIZE)
    print(f"fake campaign: {members:,} members, {pages} pages of {MAX_PAGE_SIZE}; median of {repeat} walk(s)")
    print("the official client's requests.get was rerouted by V1ToFakeV2: v1 .../campaigns/{id}/pledges →")
    print("  fake v2 .../campaigns/{id}/members with page[count]=1000, its cursor, and our include/fields;")
    print(f"  both clients walked the same pages of the same fake ({shim.calls} rerouted calls in all)")
    base_span = median(spans["ours (PatreonClient.iter_member_pages)"])
    for name in walks:
        span = median(spans[name])
        print(f"  {name:<40} members {'/'.join(f'{c:,}' for c in sorted(counts[name])):>9}   "
              f"wall {span.wall:6.2f}s   CPU {span.cpu:6.2f}s")  # fmt: skip
    for name in list(walks)[1:]:
        span = median(spans[name])
        print(f"  {name} / ours: wall {ratio(round(span.wall, 2), round(base_span.wall, 2))}, "
              f"CPU {ratio(round(span.cpu, 2), round(base_span.cpu, 2))}")  # fmt: skip
    same = len({frozenset(c) for c in counts.values()}) == 1 and counts[next(iter(counts))] == {members}
    print(f"  members parsed equal for every client and walk: {same}")
    return 0 if same else 1


async def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=100_000, help="members in the fake campaign")
    parser.add_argument("--repeat", type=int, default=3, help="timed walks per client (the median is printed)")
    args = parser.parse_args(argv)
    return compare(args.members, args.repeat)


if __name__ == "__main__":
    sys.exit(main())
