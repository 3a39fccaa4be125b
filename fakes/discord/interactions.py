"""Slash-command and autocomplete interactions: the INTERACTION_CREATE payload and what the bot answered.

Why: the bot's user interface is slash commands. Tests drive it the way a Discord client does, with
options typed from the synced schema, and then read back every callback, edit and followup.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .components import MAX_CUSTOM_ID, MAX_ROWS, FormErrors
from .guild import FakeGuild
from .models import FakeChannel, FakeMember, FakeRole

SUB_COMMAND = 1
SUB_COMMAND_GROUP = 2
STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER = 3, 4, 5, 6, 7, 8, 9, 10
EPHEMERAL = 64
LOADING = 128
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024
APPLICATION_COMMAND, MESSAGE_COMPONENT, AUTOCOMPLETE, MODAL_SUBMIT = 2, 3, 4, 5
MAX_MODAL_TITLE = 45

ALLOWED_CALLBACKS: dict[int, frozenset[int]] = {
    APPLICATION_COMMAND: frozenset({4, 5, 9}),
    MESSAGE_COMPONENT: frozenset({4, 5, 6, 7, 9}),
    AUTOCOMPLETE: frozenset({8}),
    MODAL_SUBMIT: frozenset({4, 5, 6, 7}),
}
"""Callback types Discord accepts per interaction type (receiving-and-responding.mdx, "Interaction Callback Type":
6 and 7 only for component-based interactions, 8 only for autocomplete, 9 not for a modal submit). Launching an
Activity (12) and the deprecated premium answer (10) are not modelled."""


class InteractionRecord:
    """One interaction sent to the bot and everything the bot answered to it, in order."""

    def __init__(
        self, interaction_id: int, token: str, payload: dict[str, Any], *, clicked: dict[str, Any] | None = None
    ) -> None:
        self.id = interaction_id
        self.token = token
        self.payload = payload
        self.type: int = payload["type"]
        self.created_at = time.monotonic()
        self.responses: list[dict[str, Any]] = []
        self.response_kinds: list[str] = []
        self.callback_type: int | None = None
        self.original: dict[str, Any] | None = None
        self.followups: dict[int, dict[str, Any]] = {}
        #: The modal the bot opened (callback type 9), if any.
        self.modal: dict[str, Any] | None = None
        self._latest: dict[str, Any] | None = None
        self._clicked = clicked
        self._changed = asyncio.Event()

    def record(self, kind: str, body: dict[str, Any], message: dict[str, Any] | None) -> None:
        """Store one callback/edit/followup body and wake waiters; `message` is the message it touched."""
        self.responses.append(body)
        self.response_kinds.append(kind)
        if message is not None:
            self._latest = message
        self._changed.set()

    def age_by(self, seconds: float) -> None:
        """Make the interaction `seconds` older, to reach the 3-second and 15-minute limits without waiting."""
        self.created_at -= seconds

    @property
    def clicked_message(self) -> dict[str, Any] | None:
        """For a component interaction, the stored message the button was on (what type 6/7 answers edit)."""
        return self._clicked

    def forget(self, message: dict[str, Any]) -> None:
        """A deleted message is no longer the latest one."""
        if self._latest is message:
            self._latest = None

    async def _wait_until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(f"interaction {self.id}: no {what} within {timeout}s; got {self.responses!r}") from None

    async def wait_response(self, timeout: float = 5.0) -> dict[str, Any]:
        """The first callback body ({"type": ..., "data": ...}), waiting for it if needed."""
        await self._wait_until(lambda: self.callback_type is not None, timeout, "callback")
        return self.responses[self.response_kinds.index("callback")]

    async def wait_responses(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until `count` bodies (callback + edits + followups) arrived; e.g. 2 for defer then edit."""
        await self._wait_until(lambda: len(self.responses) >= count, timeout, f"{count} responses")
        return list(self.responses)

    @property
    def message(self) -> dict[str, Any] | None:
        """The message the latest response created or edited (None for autocomplete or modal)."""
        return self._latest

    @property
    def ephemeral(self) -> bool:
        """Whether the latest message is only visible to the invoking user (flag 64)."""
        return bool(self._latest and self._latest.get("flags", 0) & EPHEMERAL)

    @property
    def deferred(self) -> bool:
        """Whether the bot answered with a deferral (callback type 5 or 6)."""
        return self.callback_type in (5, 6)

    @property
    def content(self) -> str | None:
        """Text of the latest message."""
        return None if self._latest is None else self._latest.get("content")

    @property
    def components(self) -> list[dict[str, Any]]:
        """Components (action rows, buttons) of the latest message."""
        return [] if self._latest is None else list(self._latest.get("components") or [])

    @property
    def embeds(self) -> list[dict[str, Any]]:
        """Embeds of the latest message."""
        return [] if self._latest is None else list(self._latest.get("embeds") or [])

    @property
    def choices(self) -> list[dict[str, Any]] | None:
        """Autocomplete choices from a type 8 callback, if any."""
        for kind, body in zip(self.response_kinds, self.responses, strict=True):
            if kind == "callback" and body.get("type") == 8:
                return list((body.get("data") or {}).get("choices") or [])
        return None

    def link_buttons(self) -> list[dict[str, Any]]:
        """Every link button (style 5) in the latest message, however deeply nested."""
        found: list[dict[str, Any]] = []
        stack = list(self.components)
        while stack:
            component = stack.pop(0)
            if component.get("type") == 2 and component.get("style") == 5:
                found.append(component)
            stack.extend(component.get("components") or [])
            if isinstance(component.get("accessory"), dict):
                stack.append(component["accessory"])
        return found

    def __repr__(self) -> str:
        return f"<InteractionRecord id={self.id} type={self.type} responses={len(self.responses)}>"


def _snowflake_of(value: Any) -> int:
    if isinstance(value, FakeMember):
        return value.user_id
    if isinstance(value, (FakeRole, FakeChannel)):
        return value.id
    return int(value)


def _coerce_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


class OptionBuilder:
    """Turns {"name": value} into typed interaction options plus the `resolved` map, per the schema."""

    def __init__(self, guild: FakeGuild) -> None:
        self.guild = guild
        self.resolved: dict[str, dict[str, Any]] = {}

    def build(
        self,
        command: dict[str, Any],
        path: Sequence[str],
        values: Mapping[str, Any],
        focused: str | None = None,
    ) -> list[dict[str, Any]]:
        """Nest the subcommand path, then type each leaf option; unknown names raise ValueError."""
        top: list[dict[str, Any]] = []
        container = top
        schema: list[dict[str, Any]] = command.get("options") or []
        for name in path:
            spec = next((o for o in schema if o["name"] == name and o["type"] in (1, 2)), None)
            if spec is None:
                raise ValueError(f"/{command['name']} has no subcommand {name!r} at this level")
            node: dict[str, Any] = {"type": spec["type"], "name": name, "options": []}
            container.append(node)
            container = node["options"]
            schema = spec.get("options") or []
        if any(o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP) for o in schema):
            raise ValueError(f"/{command['name']} {' '.join(path)} needs a subcommand; path is incomplete")
        by_name = {o["name"]: o for o in schema}
        for name in values:
            if name not in by_name:
                raise ValueError(f"option {name!r} is not in the synced schema {sorted(by_name)}")
        if focused is not None and focused not in by_name:
            raise ValueError(f"focused option {focused!r} is not in the synced schema {sorted(by_name)}")
        for name, spec in by_name.items():
            if name == focused:
                typed_so_far = str(values.get(name, ""))
                container.append({"type": spec["type"], "name": name, "value": typed_so_far, "focused": True})
            elif name in values:
                container.append({"type": spec["type"], "name": name, "value": self._typed(spec["type"], values[name])})
            elif spec.get("required") and focused is None:
                raise ValueError(f"required option {name!r} missing")
        return top

    def _typed(self, option_type: int, value: Any) -> Any:
        if option_type == STRING:
            return str(value)
        if option_type == INTEGER:
            return int(value)
        if option_type == NUMBER:
            return float(value)
        if option_type == BOOLEAN:
            return _coerce_bool(value)
        snowflake = _snowflake_of(value)
        if option_type == ROLE or (option_type == MENTIONABLE and snowflake in self.guild.roles):
            self._resolve_role(snowflake)
        elif option_type in (USER, MENTIONABLE):
            self._resolve_member(snowflake)
        elif option_type == CHANNEL:
            self._resolve_channel(snowflake)
        return str(snowflake)

    def _resolve_role(self, role_id: int) -> None:
        role = self.guild.roles.get(role_id)
        if role is None:
            raise ValueError(f"unknown role {role_id}")
        self.resolved.setdefault("roles", {})[str(role_id)] = role.to_payload()

    def _resolve_member(self, user_id: int) -> None:
        member = self.guild.members.get(user_id)
        if member is None:
            raise ValueError(f"user {user_id} is not a member of guild {self.guild.id}")
        self.resolved.setdefault("users", {})[str(user_id)] = member.user_payload()
        member_payload = member.to_payload(with_user=False)
        member_payload["permissions"] = str(self.guild.permissions_of(user_id))
        self.resolved.setdefault("members", {})[str(user_id)] = member_payload

    def _resolve_channel(self, channel_id: int) -> None:
        channel = self.guild.channels.get(channel_id)
        if channel is None:
            raise ValueError(f"unknown channel {channel_id}")
        self.resolved.setdefault("channels", {})[str(channel_id)] = {
            "id": str(channel.id),
            "name": channel.name,
            "type": channel.type,
            "parent_id": None,
            "permissions": str(self.guild.permissions_of(self.guild.bot_user_id)),
        }


def build_interaction_payload(
    *,
    interaction_id: int,
    token: str,
    interaction_type: int,
    application_id: int,
    guild: FakeGuild,
    member: FakeMember,
    channel: dict[str, Any],
    command: dict[str, Any],
    options: list[dict[str, Any]],
    resolved: dict[str, Any],
    locale: str,
) -> dict[str, Any]:
    """INTERACTION_CREATE data with every field discord.py 2.7 reads."""
    data: dict[str, Any] = {"id": command["id"], "name": command["name"], "type": command.get("type", 1)}
    if options:
        data["options"] = options
    if resolved:
        data["resolved"] = resolved
    if "guild_id" in command:
        data["guild_id"] = command["guild_id"]
    return _envelope(interaction_id, token, interaction_type, application_id, guild, member, channel, data, locale)


def build_component_payload(
    *,
    interaction_id: int,
    token: str,
    application_id: int,
    guild: FakeGuild,
    member: FakeMember,
    channel: dict[str, Any],
    message: dict[str, Any],
    component: dict[str, Any],
    locale: str,
) -> dict[str, Any]:
    """INTERACTION_CREATE for a click (type 3): `data` names the component, `message` is the message it is on.

    Source: receiving-and-responding.mdx ("Message Component Data Structure": custom_id, component_type; `message`
    "for components ... the message they were attached to"); discord.py 2.7's state.parse_interaction_create reads
    data.custom_id and data.component_type and builds Interaction.message from `message`.
    """
    data: dict[str, Any] = {"custom_id": component["custom_id"], "component_type": component["type"]}
    if component["type"] != 2:
        data["values"] = []
    payload = _envelope(interaction_id, token, MESSAGE_COMPONENT, application_id, guild, member, channel, data, locale)
    payload["message"] = copy.deepcopy(message)
    return payload


def permissions_in(guild: FakeGuild, user_id: int, channel: dict[str, Any]) -> int:
    """A user's permissions where the interaction happened: the channel's when the fake knows it (overwrites)."""
    channel_id = int(channel["id"])
    if channel_id in guild.channels:
        return guild.channel_permissions_of(user_id, channel_id)
    return guild.permissions_of(user_id)


def _envelope(
    interaction_id: int,
    token: str,
    interaction_type: int,
    application_id: int,
    guild: FakeGuild,
    member: FakeMember,
    channel: dict[str, Any],
    data: dict[str, Any],
    locale: str,
) -> dict[str, Any]:
    """The fields every guild interaction carries; `member.permissions` and `app_permissions` are channel-level."""
    member_payload = member.to_payload()
    member_payload["permissions"] = str(permissions_in(guild, member.user_id, channel))
    return {
        "id": str(interaction_id),
        "application_id": str(application_id),
        "type": interaction_type,
        "data": data,
        "guild_id": str(guild.id),
        "guild": {"id": str(guild.id), "locale": "en-US", "features": []},
        "channel_id": channel["id"],
        "channel": {**channel, "permissions": member_payload["permissions"]},
        "member": member_payload,
        "token": token,
        "version": 1,
        "app_permissions": str(permissions_in(guild, guild.bot_user_id, channel)),
        "locale": locale,
        "guild_locale": "en-US",
        "entitlements": [],
        "entitlement_sku_ids": [],
        "authorizing_integration_owners": {"0": str(guild.id)},
        "context": 0,
        "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
    }


def check_callback(record: InteractionRecord, callback_type: int, data: dict[str, Any]) -> None:
    """Refuse a callback type the interaction's kind doesn't take, and a malformed modal, with 400 50035.

    Discord documents which types go with which interaction but not the refusal's inner code; the fake puts its own
    `INTERACTION_CALLBACK_TYPE_INVALID` under `type`. Modal limits: custom_id at most 100 characters, title at most
    45, 1 to 5 rows (receiving-and-responding.mdx, "Modal").
    """
    found = FormErrors()
    if callback_type not in ALLOWED_CALLBACKS.get(record.type, frozenset()):
        found.add(
            ["type"],
            "INTERACTION_CALLBACK_TYPE_INVALID",
            f"Callback type {callback_type} is not valid for interaction type {record.type}",
        )
    elif callback_type == 9:
        custom_id, title, rows = data.get("custom_id"), data.get("title"), data.get("components")
        if not isinstance(custom_id, str) or not custom_id:
            found.add(["data", "custom_id"], "BASE_TYPE_REQUIRED", "This field is required")
        elif len(custom_id) > MAX_CUSTOM_ID:
            found.add(["data", "custom_id"], "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_CUSTOM_ID} or fewer in length.")
        if not isinstance(title, str) or not title:
            found.add(["data", "title"], "BASE_TYPE_REQUIRED", "This field is required")
        elif len(title) > MAX_MODAL_TITLE:
            found.add(["data", "title"], "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_MODAL_TITLE} or fewer in length.")
        if not isinstance(rows, list) or not 1 <= len(rows) <= MAX_ROWS:
            found.add(["data", "components"], "BASE_TYPE_BAD_LENGTH", f"Must be between 1 and {MAX_ROWS} in length.")
    found.raise_if_any()
