"""JSON:API rendering the way Patreon v2 does it: sparse fieldsets, relationships only for included paths.

Two modes: API mode (`fields` is a dict; a type with no `fields[...]` gets empty attributes, as v2 does) and
delivery mode (`fields=None`: every attribute, as real webhook bodies carry them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fakes.patreon.attributes import KNOWN_ATTRIBUTES, campaign_attributes, tier_attributes
from fakes.patreon.state import CampaignState, FakeMember, FakeTier, FakeUser

#: relationship name → related type, per resource type.
RELATIONSHIPS: dict[str, dict[str, str]] = {
    "user": {"memberships": "member", "campaign": "campaign"},
    "member": {
        "address": "address",
        "campaign": "campaign",
        "currently_entitled_tiers": "tier",
        "user": "user",
        "pledge_history": "pledge-event",
    },
    "campaign": {"tiers": "tier", "creator": "user", "benefits": "benefit", "goals": "goal"},
    "tier": {"campaign": "campaign", "benefits": "benefit", "tier_image": "media"},
    "webhook": {"campaign": "campaign", "client": "client"},
}

IncludeTree = dict[str, "IncludeTree"]

WEBHOOK_MEMBER_TREE: IncludeTree = {"address": {}, "campaign": {}, "currently_entitled_tiers": {}, "user": {}}

_LINK_PATHS = {"user": "user", "campaign": "campaigns", "member": "members", "tier": "tiers"}


class RequestError(Exception):
    """A query the real API would refuse with a 400 JSON:API error."""

    def __init__(self, detail: str, parameter: str, *, code: int = 1, status: int = 400) -> None:
        super().__init__(detail)
        self.detail, self.parameter, self.code, self.status = detail, parameter, code, status


def error_document(
    status: int,
    title: str,
    detail: str,
    *,
    code: int | None = 1,
    code_name: str = "",
    parameter: str | None = None,
    error_id: str = "00000000-0000-4000-8000-000000000000",
    **extra: Any,
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "code": code,
        "code_name": code_name or title.replace(" ", ""),
        "detail": detail,
        "id": error_id,
        "status": str(status),
        "title": title,
        **extra,
    }
    if parameter is not None:
        item["source"] = {"parameter": parameter}
    return {"errors": [item]}


def parse_include(text: str | None, root_type: str) -> IncludeTree:
    """`memberships.currently_entitled_tiers,memberships.campaign` → a validated tree of relationship names."""
    tree: IncludeTree = {}
    for path in (text or "").split(","):
        path = path.strip()
        if not path:
            continue
        node, kind = tree, root_type
        for name in path.split("."):
            related = RELATIONSHIPS.get(kind, {}).get(name)
            if related is None:
                raise RequestError(f"'{path}' is not a valid include for a {root_type}", "include")
            node = node.setdefault(name, {})
            kind = related
    return tree


def parse_fields(query: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """Every `fields[type]=a,b` parameter, checked against the documented attributes of that type."""
    fields: dict[str, tuple[str, ...]] = {}
    for key, value in query.items():
        if not (key.startswith("fields[") and key.endswith("]")):
            continue
        kind = key[len("fields[") : -1]
        names = tuple(name.strip() for name in value.split(",") if name.strip())
        known = KNOWN_ATTRIBUTES.get(kind)
        unknown = [name for name in names if known is not None and name not in known]
        if unknown:
            raise RequestError(f"{key} contains unknown attribute(s) {', '.join(unknown)}", key)
        fields[kind] = names
    return fields


class DocumentBuilder:
    """Builds one response document; `included` is keyed by (type, id) so nothing appears twice."""

    def __init__(
        self,
        state: CampaignState,
        api_base: str,
        fields: dict[str, tuple[str, ...]] | None,
        *,
        collect_included: bool = True,
    ) -> None:
        self.state = state
        self.api_base = api_base
        self.fields = fields
        self.collect_included = collect_included
        self.included: dict[tuple[str, str], dict[str, Any]] = {}
        self.include_requested = False
        #: The campaigns whose memberships a user's `memberships` relationship lists (/identity sets it from the
        #: token's scopes); None: only this builder's campaign.
        self.membership_campaigns: list[CampaignState] | None = None

    def _attributes(self, kind: str, full: dict[str, Any]) -> dict[str, Any]:
        if self.fields is None:
            return full
        wanted = self.fields.get(kind)
        if not wanted:
            return {}
        return {name: full[name] for name in wanted if name in full}

    def _to_one(self, kind: str, resource_id: str) -> dict[str, Any]:
        return {
            "data": {"id": resource_id, "type": kind},
            "links": {"related": f"{self.api_base}/{_LINK_PATHS.get(kind, kind)}/{resource_id}"},
        }

    @staticmethod
    def _resource(kind: str, resource_id: str, attributes: dict[str, Any], rels: dict[str, Any]) -> dict[str, Any]:
        resource: dict[str, Any] = {"attributes": attributes, "id": resource_id}
        if rels:
            resource["relationships"] = rels
        resource["type"] = kind
        return resource

    def _include(self, kind: str, resource_id: str, render: Any, *args: Any) -> None:
        self.include_requested = True
        if not self.collect_included:
            return
        key = (kind, resource_id)
        if key not in self.included:
            self.included[key] = {}
            self.included[key] = render(*args)

    # ---------------------------------------------------------------- resources

    def member(self, member: FakeMember, tree: IncludeTree, state: CampaignState | None = None) -> dict[str, Any]:
        """A member of `state` (default: this builder's campaign)."""
        state = state or self.state
        user = state.users.get(member.user_id)
        rels: dict[str, Any] = {}
        for name, subtree in tree.items():
            if name == "address":
                rels[name] = {"data": None}
            elif name == "campaign":
                rels[name] = self._to_one("campaign", state.campaign_id)
                self._include("campaign", state.campaign_id, self.campaign, subtree, state)
            elif name == "currently_entitled_tiers":
                rels[name] = {"data": [{"id": tier_id, "type": "tier"} for tier_id in member.tier_ids]}
                for tier_id in member.tier_ids:
                    self._include("tier", tier_id, self.tier, state.tiers[tier_id], subtree, state)
            elif name == "user" and user is not None:
                rels[name] = self._to_one("user", user.id)
                self._include("user", user.id, self.user, user, subtree)
            elif name == "pledge_history":
                rels[name] = {"data": []}
        return self._resource("member", member.id, self._attributes("member", member.attributes(user)), rels)

    def user(self, user: FakeUser, tree: IncludeTree) -> dict[str, Any]:
        rels: dict[str, Any] = {}
        for name, subtree in tree.items():
            if name == "memberships":
                campaigns = self.membership_campaigns if self.membership_campaigns is not None else [self.state]
                found = [(c, m) for c in campaigns if (m := c.live_member_for(user.id)) is not None]
                rels[name] = {"data": [{"id": member.id, "type": "member"} for _c, member in found]}
                for campaign, member in found:
                    self._include("member", member.id, self.member, member, subtree, campaign)
            elif name == "campaign":
                owned = self.state.directory.owned_by(user.id)
                if owned:
                    rels[name] = self._to_one("campaign", owned[0].campaign_id)
                    self._include("campaign", owned[0].campaign_id, self.campaign, subtree, owned[0])
        return self._resource("user", user.id, self._attributes("user", user.attributes()), rels)

    def identity(self, user: FakeUser, tree: IncludeTree) -> dict[str, Any] | None:
        """/identity's primary data: the user, or the blank shape a test set (`CampaignState.blank_identity`)."""
        if user.identity_shape == "null":
            return None
        if user.identity_shape == "empty":
            return {}
        data = self.user(user, tree)
        if user.identity_shape == "no_id":
            data.pop("id")
        return data

    def campaign(self, tree: IncludeTree, state: CampaignState | None = None) -> dict[str, Any]:
        state = state or self.state
        rels: dict[str, Any] = {}
        for name, subtree in tree.items():
            if name == "tiers":
                rels[name] = {"data": [{"id": tier.id, "type": "tier"} for tier in state.tiers.values()]}
                for tier in state.tiers.values():
                    self._include("tier", tier.id, self.tier, tier, subtree, state)
            elif name == "creator":
                rels[name] = self._to_one("user", state.creator.id)
                self._include("user", state.creator.id, self.user, state.creator, subtree)
            else:
                rels[name] = {"data": []}
        return self._resource(
            "campaign", state.campaign_id, self._attributes("campaign", campaign_attributes(state)), rels
        )

    def tier(self, tier: FakeTier, tree: IncludeTree, state: CampaignState | None = None) -> dict[str, Any]:
        state = state or self.state
        rels: dict[str, Any] = {}
        for name, subtree in tree.items():
            if name == "campaign":
                rels[name] = self._to_one("campaign", state.campaign_id)
                self._include("campaign", state.campaign_id, self.campaign, subtree, state)
            else:
                rels[name] = {"data": [] if name == "benefits" else None}
        return self._resource("tier", tier.id, self._attributes("tier", tier_attributes(state, tier)), rels)

    def document(
        self,
        data: Any,
        *,
        links: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        doc: dict[str, Any] = {"data": data}
        if self.include_requested or self.included:
            # JSON:API: a resource appears once per document, so primary data is never repeated in `included`.
            items = data if isinstance(data, list) else [data]
            primary = {(item.get("type"), item.get("id")) for item in items if item}
            doc["included"] = [item for key, item in self.included.items() if key not in primary]
        if links:
            doc["links"] = links
        if meta:
            doc["meta"] = meta
        return doc


def member_delivery_document(state: CampaignState, member: FakeMember, api_base: str) -> dict[str, Any]:
    """A webhook body as real deliveries have it: every attribute, campaign + user + tiers included."""
    builder = DocumentBuilder(state, api_base, None)
    data = builder.member(member, WEBHOOK_MEMBER_TREE)
    return builder.document(data, links={"self": f"{api_base}/members/{member.id}"})
