"""How a JSON:API document is read: its shape, its `included` index, and the checks that make a document unusable.

Shared by the parsers in `bot.patreon.jsonapi`. Readers here are forgiving about values and strict about shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bot.patreon.values import as_str

Resource = Mapping[str, Any]
ResourceIndex = dict[tuple[str, str], Resource]
#: The sparse fieldsets a request asked for: resource type → attribute names (`fields[member]=a,b`).
Requested = Mapping[str, Sequence[str]]


class JsonApiError(ValueError):
    """The body is not the JSON:API document we expected (no `data`, wrong resource type, not an object)."""


class MissingAttributes(JsonApiError):
    """A resource lacks attributes the request asked for, so reading them as defaults would misread it."""


def parse_api_errors(body: Any) -> list[dict[str, Any]]:
    """The error items of an error body, whichever of Patreon's two shapes it has.

    JSON:API (`{"errors": [...]}`) items are returned as they are, with `status` as a string. An OAuth body
    (`{"error": "invalid_grant", "error_description": ...}`) becomes one item that keeps `error` and
    `error_description` and mirrors them into `code_name`/`detail`. Anything else gives `[]`.
    """
    if not isinstance(body, Mapping):
        return []
    errors = body.get("errors")
    if isinstance(errors, list):
        items: list[dict[str, Any]] = []
        for item in errors:
            if isinstance(item, Mapping):
                normalised = dict(item)
                if normalised.get("status") is not None:
                    normalised["status"] = str(normalised["status"])
                items.append(normalised)
        return items
    error = body.get("error")
    if isinstance(error, str):
        description = as_str(body.get("error_description"))
        return [
            {
                "error": error,
                "error_description": description,
                "code_name": error,
                "title": error,
                "detail": description,
                "status": None,
            }
        ]
    return []


_EMPTY: Mapping[str, Any] = {}


def is_mapping(value: Any) -> bool:
    """`isinstance(value, Mapping)`, JSON's own dicts answered before the ABC check (a listing asks 10**6 times)."""
    return type(value) is dict or isinstance(value, Mapping)


def attributes_of(resource: Resource) -> Mapping[str, Any]:
    attributes = resource.get("attributes")
    return attributes if type(attributes) is dict or isinstance(attributes, Mapping) else _EMPTY


def relationships_of(resource: Resource) -> Mapping[str, Any]:
    relationships = resource.get("relationships")
    return relationships if type(relationships) is dict or isinstance(relationships, Mapping) else _EMPTY


def linkage(relationships: Mapping[str, Any], name: str) -> tuple[bool, Any]:
    """(present, linkage data) from a resource's `relationships`. Present means the key exists, even with
    `data: null`."""
    related = relationships.get(name, _EMPTY)
    if related is _EMPTY:
        return name in relationships, None
    if type(related) is dict or isinstance(related, Mapping):
        return True, related.get("data")
    return True, None


def relationship(resource: Resource, name: str) -> tuple[bool, Any]:
    """(present, linkage data). Present means the relationship key exists, even with `data: null`."""
    return linkage(relationships_of(resource), name)


def linked_id(data: Any) -> str | None:
    """The id of to-one linkage data, or None for no linkage, `data: null`, or a blank id (never an empty key)."""
    if data is not None and (type(data) is dict or isinstance(data, Mapping)):  # None would take the ABC's slow path
        related = as_str(data.get("id"))
        return related if related and related.strip() else None
    return None


def to_one_id(resource: Resource, name: str) -> str | None:
    """The related id, or None for no linkage, `data: null`, or a blank id (never an empty-string key)."""
    return linked_id(relationship(resource, name)[1])


def to_many_ids(data: Any) -> tuple[str, ...]:
    if not isinstance(data, list):
        return ()
    ids: list[str] = []
    for item in data:
        if type(item) is dict or isinstance(item, Mapping):
            item_id = as_str(item.get("id"))
            if item_id is not None and item_id not in ids:
                ids.append(item_id)
    return tuple(ids)


def require_document(doc: Any) -> Mapping[str, Any]:
    if not isinstance(doc, Mapping):
        raise JsonApiError(f"expected a JSON object, got {type(doc).__name__}")
    if "data" not in doc:
        if "errors" in doc:
            titles = ", ".join(str(e.get("title") or e.get("code_name")) for e in parse_api_errors(doc))
            raise JsonApiError(f"JSON:API error document, not data: {titles}")
        raise JsonApiError(f"not a JSON:API document: no 'data' (keys: {sorted(doc)[:8]})")
    return doc


def require_resource(data: Any, expected_type: str) -> Resource:
    if not isinstance(data, Mapping):
        raise JsonApiError(f"expected one {expected_type!r} resource in 'data', got {type(data).__name__}")
    resource_type = data.get("type")
    if resource_type is not None and resource_type != expected_type:
        raise JsonApiError(f"expected a {expected_type!r} resource, got {resource_type!r}")
    return data


def require_list(data: Any, expected_type: str) -> list[Resource]:
    if not isinstance(data, list):
        raise JsonApiError(f"expected a list of {expected_type!r} resources in 'data', got {type(data).__name__}")
    return [item for item in data if is_mapping(item) and item.get("type") in (None, expected_type)]


def index_included(doc: Mapping[str, Any]) -> ResourceIndex:
    """`included` keyed by (type, id); a repeated resource is merged so no attribute is lost."""
    index: ResourceIndex = {}
    included = doc.get("included")
    if not isinstance(included, list):
        return index
    for item in included:
        if not is_mapping(item):
            continue
        key_type, key_id = as_str(item.get("type")), as_str(item.get("id"))
        if key_type is None or key_id is None:
            continue
        previous = index.get((key_type, key_id))
        if previous is None:
            index[(key_type, key_id)] = item
        else:
            index[(key_type, key_id)] = {
                **previous,
                "attributes": {**attributes_of(previous), **attributes_of(item)},
                "relationships": {**(previous.get("relationships") or {}), **(item.get("relationships") or {})},
            }
    return index


def check_requested(resources: Iterable[Resource], requested: Requested | None) -> None:
    """Every resource of a type in `requested` carries every attribute asked for (a null counts as present)."""
    if requested is None:
        return
    wanted_sets = {kind: frozenset(names) for kind, names in requested.items()}
    for resource in resources:
        kind = as_str(resource.get("type"))
        if kind is None:
            continue
        wanted_set = wanted_sets.get(kind)
        if not wanted_set:
            continue
        attributes = attributes_of(resource)
        if attributes.keys() >= wanted_set:
            continue
        missing = [name for name in requested[kind] if name not in attributes]
        if missing:
            raise MissingAttributes(
                f"Patreon's {kind} {as_str(resource.get('id')) or '(no id)'} lacks the requested "
                f"attribute(s) {', '.join(missing)}; the document can't be read safely"
            )


def check_linked_tiers(campaigns: Iterable[Resource], index: ResourceIndex, requested: Requested | None) -> None:
    """A campaign's tier that `included` lacks would read as a free, untitled tier: refuse it when tiers were asked."""
    if requested is None or not requested.get("tier"):
        return
    for campaign in campaigns:
        _present, linkage = relationship(campaign, "tiers")
        absent = [tier_id for tier_id in to_many_ids(linkage) if ("tier", tier_id) not in index]
        if absent:
            raise MissingAttributes(f"Patreon's campaign lists tier(s) {', '.join(absent)} but did not include them")
