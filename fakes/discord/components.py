"""Message components (action rows, buttons, selects): Discord's validation of a message body and lookups in it.

Why: a panel whose buttons Discord would refuse must fail in the tests, with the same 400 the bot would get, and
a click must name a button that is really on the message. Sources, read 2026-12:
- discord/discord-api-docs `docs/components/reference` and `docs/interactions/receiving-and-responding.mdx`:
  an action row (type 1) holds up to 5 buttons or one select; a message holds up to 5 rows (legacy, without
  the IS_COMPONENTS_V2 flag); `custom_id` is at most 100 characters and unique within the message; a non-link
  button needs a `custom_id` and no `url`, a link button (style 5) needs a `url` and no `custom_id`;
  labels are at most 80 characters.
- the error texts are those Discord returns in 50035 bodies, as bots quote them in public issues (CTFNote#408:
  `components[0].components[BASE_TYPE_BAD_LENGTH]: Must be between 1 and 5 in length.`; 2026 changelogs quoting
  `components[BASE_TYPE_MAX_LENGTH]: Must be 5 or fewer in length`; `...custom_id: A custom id is required`;
  `...custom_id[COMPONENT_CUSTOM_ID_DUPLICATED]: Component custom id cannot be duplicated`; discord.js#6639:
  `A custom id and url cannot both be specified`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from .errors import DiscordAPIError

ACTION_ROW, BUTTON, STRING_SELECT, TEXT_INPUT = 1, 2, 3, 4
SELECT_TYPES = {3, 5, 6, 7, 8}
LINK_STYLE = 5
BUTTON_STYLES = (1, 2, 3, 4, 5)
"""Premium buttons (style 6, with a `sku_id`) are not modelled: the fake refuses them."""
MAX_ROWS = 5
MAX_ROW_WIDTH = 5
MAX_CUSTOM_ID = 100
MAX_LABEL = 80
_BOTH = "A custom id and url cannot both be specified"


class InvalidFormBody(DiscordAPIError):
    """400 50035 with Discord's nested `errors` object: {"components": {"0": {"custom_id": {"_errors": [...]}}}}."""

    def __init__(self, errors: dict[str, Any]) -> None:
        super().__init__(400, 50035, "Invalid Form Body")
        self.errors = errors

    def body(self) -> dict[str, Any]:
        """Discord's body: code, message and the per-field errors."""
        return {"message": self.message, "code": self.code, "errors": self.errors}


class FormErrors:
    """Collects (path, code, message) like Discord does, to answer every problem of a body at once."""

    def __init__(self) -> None:
        self.tree: dict[str, Any] = {}

    def add(self, path: list[str], code: str, message: str) -> None:
        """Record one complaint at `path` (keys and list indexes as strings)."""
        node = self.tree
        for key in path:
            node = node.setdefault(key, {})
        node.setdefault("_errors", []).append({"code": code, "message": message})

    def raise_if_any(self) -> None:
        """Raise InvalidFormBody when anything was recorded."""
        if self.tree:
            raise InvalidFormBody(self.tree)


def validate_components(components: Any, prefix: tuple[str, ...] = ()) -> None:
    """Refuse a message body's `components` as Discord does (400 50035); `prefix` is ("data",) in a callback."""
    if components is None:
        return
    found = FormErrors()
    base = [*prefix, "components"]
    if not isinstance(components, list):
        found.add(base, "BASE_TYPE_ARRAY", "Must be an array.")
        found.raise_if_any()
    if len(components) > MAX_ROWS:
        found.add(base, "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_ROWS} or fewer in length.")
    seen: set[str] = set()
    for row_index, row in enumerate(components):
        row_path = [*base, str(row_index)]
        if not isinstance(row, dict) or row.get("type") != ACTION_ROW:
            found.add(row_path, "COMPONENT_TYPE_INVALID", "The specified component type is invalid in this context")
            continue
        children = row.get("components")
        if not isinstance(children, list) or not 1 <= len(children) <= MAX_ROW_WIDTH:
            found.add([*row_path, "components"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length.")
            children = children if isinstance(children, list) else []
        for child_index, child in enumerate(children):
            path = [*row_path, "components", str(child_index)]
            if isinstance(child, dict) and child.get("type") in SELECT_TYPES and len(children) > 1:
                found.add(path, "COMPONENT_LAYOUT_WIDTH_EXCEEDED", "The specified component exceeds the maximum width")
            _check_child(child, path, seen, found)
    found.raise_if_any()


def _check_child(child: Any, path: list[str], seen: set[str], found: FormErrors) -> None:
    if not isinstance(child, dict) or child.get("type") not in ({BUTTON} | SELECT_TYPES):
        found.add(path, "COMPONENT_TYPE_INVALID", "The specified component type is invalid in this context")
        return
    custom_id = child.get("custom_id")
    if child["type"] == BUTTON:
        style = child.get("style")
        if style not in BUTTON_STYLES:
            found.add([*path, "style"], "BASE_TYPE_CHOICES", "Value must be one of (1, 2, 3, 4, 5).")
            return
        label = child.get("label")
        if isinstance(label, str) and len(label) > MAX_LABEL:
            found.add([*path, "label"], "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_LABEL} or fewer in length.")
        if style == LINK_STYLE:
            if not child.get("url"):
                found.add([*path, "url"], "BASE_TYPE_REQUIRED", "This field is required")
            if custom_id is not None:
                found.add(path, "BUTTON_COMPONENT_CUSTOM_ID_URL_MUTUALLY_EXCLUSIVE", _BOTH)
            return
        if child.get("url") is not None:
            found.add(path, "BUTTON_COMPONENT_CUSTOM_ID_URL_MUTUALLY_EXCLUSIVE", _BOTH)
    if not isinstance(custom_id, str) or not custom_id:
        found.add([*path, "custom_id"], "BUTTON_COMPONENT_CUSTOM_ID_REQUIRED", "A custom id is required")
        return
    if len(custom_id) > MAX_CUSTOM_ID:
        found.add([*path, "custom_id"], "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_CUSTOM_ID} or fewer in length.")
    if custom_id in seen:
        found.add([*path, "custom_id"], "COMPONENT_CUSTOM_ID_DUPLICATED", "Component custom id cannot be duplicated")
    seen.add(custom_id)


def stored_components(components: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """A copy of validated components with the numeric `id` Discord gives each component (1, 2, ... in order)."""
    rows = copy.deepcopy(components or [])
    next_id = 1
    for component in _walk(rows):
        if component.get("id") is None:
            component["id"] = next_id
        next_id = max(next_id, int(component["id"])) + 1
    return rows


def _walk(components: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for component in components:
        yield component
        yield from _walk(component.get("components") or [])


def find_interactive(message: dict[str, Any], custom_id: str) -> dict[str, Any] | None:
    """The button or select with this `custom_id` on a message, or None."""
    for component in _walk(list(message.get("components") or [])):
        if component.get("type") != ACTION_ROW and component.get("custom_id") == custom_id:
            return component
    return None
