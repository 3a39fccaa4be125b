"""Fast members pages: each member and user keeps its JSON fragment for the (fields, include) it was asked with.

A sync asks for the same fieldsets on every page and every run, so after the first pass a 1000-member page is
string joins. Strings are also invisible to the garbage collector, which keeps big seeded campaigns from
stalling on full collections. Nested includes (`user.memberships`, ...) take the plain `DocumentBuilder` path.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from fakes.patreon.documents import DocumentBuilder, IncludeTree
from fakes.patreon.state import CampaignState, FakeMember

_COMPACT = (",", ":")


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=_COMPACT)


def render_members_page(
    state: CampaignState,
    api_base: str,
    fields: dict[str, tuple[str, ...]],
    tree: IncludeTree,
    members: Sequence[FakeMember],
    *,
    links: dict[str, Any] | None,
    meta: dict[str, Any],
) -> bytes:
    """The same document `DocumentBuilder` would produce for this page, built from cached fragments."""
    if any(tree.values()):
        builder = DocumentBuilder(state, api_base, fields)
        builder.include_requested = bool(tree)
        data = [builder.member(member, tree) for member in members]
        return _dumps(builder.document(data, links=links, meta=meta)).encode()
    member_key = (api_base, tuple(sorted(fields.items())), tuple(tree))
    user_key = fields.get("user", ())
    bare = DocumentBuilder(state, api_base, fields, collect_included=False)
    parts: list[str] = []
    included: dict[tuple[str, str], str | None] = {}
    for member in members:
        if member.fragment_key != member_key or member.fragment is None:
            member.fragment = _dumps(bare.member(member, tree))
            member.fragment_key = member_key
        parts.append(member.fragment)
        for name in tree:
            if name == "campaign":
                included.setdefault(("campaign", state.campaign_id), None)
            elif name == "currently_entitled_tiers":
                for tier_id in member.tier_ids:
                    included.setdefault(("tier", tier_id), None)
            elif name == "user":
                user = state.users.get(member.user_id)
                if user is None:
                    continue
                if user.fragment_key != user_key or user.fragment is None:
                    user.fragment = _dumps(bare.user(user, {}))
                    user.fragment_key = user_key
                included.setdefault(("user", user.id), user.fragment)
    for key, fragment in included.items():
        if fragment is None:
            kind, resource_id = key
            resource = bare.campaign({}) if kind == "campaign" else bare.tier(state.tiers[resource_id], {})
            included[key] = _dumps(resource)
    body = '{"data":[' + ",".join(parts) + "]"
    if tree:
        body += ',"included":[' + ",".join(fragment or "" for fragment in included.values()) + "]"
    if links:
        body += ',"links":' + _dumps(links)
    body += ',"meta":' + _dumps(meta) + "}"
    return body.encode()
