"""Which members of one listing page changed since they were stored: by their bytes first, then by value.

A member whose listing hash (bot/patreon/member_rows.py) is the one stored is skipped without being decoded: the
store wrote that hash only with a snapshot read from those same bytes, and any other write cleared it. The
campaign's listing hashes are read once a listing (`Store.listing_hashes`, bot/sync/refresh_listing.py), and the
snapshot hashes only of the members whose bytes differ (`differing_bytes`). Any other
member is decoded and compared by value (`snapshot_hash`); one equal by value in bytes not yet remembered (the
first listing after an upgrade, Patreon reordering its JSON, a webhook's write) has its new listing hash remembered,
so the next listing skips it unread. The daily full re-plan compares by value only, a safety net that needs no
trust in the hashes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import compress, count
from operator import ne
from typing import cast

from bot.patreon.member_rows import MemberRows
from bot.store.codec import values_hash


@dataclass
class PageChanges:
    #: Indices of the members to store and plan (new, changed, or a user twice on the page).
    changed: list[int] = field(default_factory=list)
    #: (index, stored snapshot hash, listing hash) of members equal by value in bytes not remembered yet.
    remember: list[tuple[int, bytes, bytes]] = field(default_factory=list)


def differing_bytes(page: MemberRows, stored: Mapping[str, bytes | None]) -> list[int]:
    """Indices of the members whose listing hash isn't the one stored (`stored`: Patreon user → stored listing
    hash, `Store.listing_hashes`): the only ones `page_changes` needs to look at when it compares by bytes. A
    member without a hash, without a Patreon user, or whose user is twice on the page is always among them."""
    user_ids, hashes = page.user_ids, page.listing_hashes
    if hashes is None:
        return list(range(len(user_ids)))
    counts = _repeats(user_ids)
    if counts is None and None not in hashes:  # the usual page, compared in C: a user None has no stored hash
        found = cast(Callable[[str | None], bytes | None], stored.get)
        return list(compress(count(), map(ne, map(found, user_ids), hashes)))
    differ: list[int] = []
    for index, user in enumerate(user_ids):
        listing = hashes[index]
        if user is None or listing is None or stored.get(user) != listing or (counts is not None and counts[user] > 1):
            differ.append(index)
    return differ


def page_changes(
    page: MemberRows,
    looks: Mapping[str, tuple[bytes | None, bytes | None]],
    by_bytes: bool = True,
    among: Sequence[int] | None = None,
) -> PageChanges:
    """`looks`: Patreon user → (stored snapshot hash, stored listing hash), `Store.listing_looks`; `among`: the
    indices to look at (`differing_bytes`; the others are unchanged), else every member. Never unchanged: a member
    without a Patreon user (never stored) and a user twice on the page (there the later look wins, which
    `Store.save_membership_page` decides). A member it decodes may make the page refused (the page's refusal,
    `PatreonBadResponse` for the client's pages: bot/patreon/member_rows.py)."""
    user_ids, hashes = page.user_ids, page.listing_hashes
    counts = _repeats(user_ids)
    result = PageChanges()
    for index in among if among is not None else range(len(user_ids)):
        user = user_ids[index]
        look = looks.get(user) if user is not None and (counts is None or counts[user] == 1) else None
        if look is None:
            result.changed.append(index)
            continue
        stored_value, stored_listing = look
        listing = hashes[index] if hashes is not None else None
        if by_bytes and listing is not None and listing == stored_listing:
            continue
        if stored_value is None or stored_value != values_hash(page.row(index)):
            result.changed.append(index)
        elif listing is not None and listing != stored_listing:
            result.remember.append((index, stored_value, listing))
    return result


def _repeats(user_ids: list[str | None]) -> Counter[str | None] | None:
    """How often each user is on the page, or None when none is twice (the usual page: no counting)."""
    return Counter(user_ids) if len(set(user_ids)) < len(user_ids) else None
