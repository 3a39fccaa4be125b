"""Linked Roles: the application's role-connection metadata, each user's role connection, and the roles Discord
itself grants from them.

What Discord does (discord/discord-api-docs `docs/resources/application-role-connection-metadata.mdx` and
`docs/resources/user.mdx`; the OAuth2 scope list in `docs/topics/oauth2.mdx`):
- `GET`/`PUT /applications/{app}/role-connections/metadata` take the **bot token**. The PUT replaces the whole list
  and answers it. "An application can have a maximum of 5 metadata records." Each record has `type` (1
  INTEGER_LESS_THAN_OR_EQUAL, 2 INTEGER_GREATER_THAN_OR_EQUAL, 3 INTEGER_EQUAL, 4 INTEGER_NOT_EQUAL, 5
  DATETIME_LESS_THAN_OR_EQUAL, 6 DATETIME_GREATER_THAN_OR_EQUAL, 7 BOOLEAN_EQUAL, 8 BOOLEAN_NOT_EQUAL), `key`
  ("must be a-z, 0-9, or _ characters; 1-50 characters"), `name` (1-100), `description` (1-200) and optional
  localizations. A body that breaks these is 400 `{"code": 50035, "message": "Invalid Form Body", "errors": {...}}`,
  the errors object naming the field path and a code such as `BASE_TYPE_MAX_LENGTH` (Discord's form-error format).
- `GET`/`PUT /users/@me/applications/{app}/role-connection` "Requires an OAuth2 access token with
  role_connections.write scope for the application specified in the path". The body: `platform_name` (max 50),
  `platform_username` (max 100), `metadata` ("object mapping application role connection metadata keys to their
  string-ified value (max 100 characters)"). A bot token, a missing, unknown, expired or revoked token, or one
  without the scope is 401 `{"message": "401: Unauthorized", "code": 0}`: Discord staff, discord-api-docs issue
  3945: "Endpoints that require authorization return 401 if the authorization isn't acceptable". Values must fit
  their record's type: an integer for types 1-4, an ISO8601 date for 5-6, 0 or 1 for 7-8 (the documented value
  types); the fake also refuses a key that is not a registered record (50035), which Discord does not document.
- A server admin adds the app to a role's **Links** requirements and picks, per record, the configured value
  ("guilds specify the required guild's configured value within the guild role settings"); dates compare with
  "days before current date". The fake keeps a role's requirements on the guild role (`set_role_requirements`,
  what the admin does in the UI) and, on every role-connection update and requirements change, gives the role to
  every connected member who meets them all and takes it from one who doesn't (on Discord the member also picks the
  role once in the Linked Roles menu; the fake skips that click). Discord grants these itself: no Manage Roles, no
  hierarchy; the change reaches the bot as GUILD_MEMBER_UPDATE like any other.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import errors
from .transport import API_PREFIX, json_response, read_body

if TYPE_CHECKING:
    from .server import FakeDiscord

MAX_RECORDS = 5
KEY_PATTERN = re.compile(r"^[a-z0-9_]{1,50}$")
INTEGER_TYPES = frozenset({1, 2, 3, 4})
DATETIME_TYPES = frozenset({5, 6})
BOOLEAN_TYPES = frozenset({7, 8})
SCOPE = "role_connections.write"
_USER_ROUTE = re.compile(rf"^{API_PREFIX}/users/@me/applications/(\d+)/role-connection$")
_UNAUTHORIZED = {"message": "401: Unauthorized", "code": 0}


class FormError(Exception):
    """A 50035 answer; `errors` is Discord's nested errors object."""

    def __init__(self, errors: dict[str, Any]) -> None:
        super().__init__("Invalid Form Body")
        self.errors = errors

    def response(self) -> web.Response:
        return json_response({"code": 50035, "errors": self.errors, "message": "Invalid Form Body"}, 400)


def _error(path: list[str], code: str, message: str) -> FormError:
    node: dict[str, Any] = {"_errors": [{"code": code, "message": message}]}
    for part in reversed(path):
        node = {part: node}
    return FormError(node)


@dataclass(frozen=True)
class RoleConnectionCall:
    """One call to the per-user endpoint, as Discord saw it: who (None for a refused token), what, the answer."""

    method: str
    user_id: int | None
    body: Any
    status: int
    at: float = field(default_factory=time.monotonic)


@dataclass
class RoleConnections:
    fake: FakeDiscord
    metadata: list[dict[str, Any]] = field(default_factory=list)
    #: user id → {"platform_name", "platform_username", "metadata"} as last PUT.
    connections: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: (guild id, role id) → {metadata key: the guild's configured value}.
    requirements: dict[tuple[int, int], dict[str, int]] = field(default_factory=dict)
    calls: list[RoleConnectionCall] = field(default_factory=list)
    #: Canned answers for the next per-user calls: (status, body, headers).
    _faults: list[tuple[int, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    # ---- test controls ---------------------------------------------------------------------------

    def set_role_requirements(self, guild_id: int, role_id: int, requirements: Mapping[str, int]) -> None:
        """What an admin does in Server Settings → Roles → Links: this app, and a value per metadata record.
        Only registered keys can be picked (the UI lists the app's records); an empty mapping removes the link."""
        known = {record["key"] for record in self.metadata}
        unknown = set(requirements) - known
        if unknown:
            raise ValueError(f"no metadata record {sorted(unknown)} is registered; the UI can't offer it")
        self.fake.guild(guild_id).role(role_id)
        if requirements:
            self.requirements[(guild_id, role_id)] = dict(requirements)
        else:
            self.requirements.pop((guild_id, role_id), None)
        for user_id in list(self.connections):
            self._evaluate(user_id)

    def fail_next(self, status: int, *, count: int = 1, retry_after: float | None = None) -> None:
        """The next `count` per-user calls with a good token get this answer (a 429 carries `retry_after`)."""
        for _ in range(count):
            if status == 429:
                wait = retry_after if retry_after is not None else 1.0
                body: dict[str, Any] = {"message": "You are being rate limited.", "retry_after": wait, "global": False}
                headers = {"Retry-After": str(max(1, round(wait))), "X-RateLimit-Scope": "user", "Via": "1.1 google"}
                self._faults.append((429, body, headers))
            else:
                self._faults.append((status, {"message": f"{status}: injected failure", "code": 0}, {}))

    def pushes(self, user_id: int | None = None) -> list[RoleConnectionCall]:
        """Accepted PUTs (for one user)."""
        return [c for c in self.calls if c.method == "PUT" and c.status == 200 and user_id in (None, c.user_id)]

    def meets(self, guild_id: int, role_id: int, user_id: int) -> bool:
        """Whether this user's connection meets every requirement of the role."""
        connection = self.connections.get(user_id)
        wanted = self.requirements.get((guild_id, role_id))
        if connection is None or not wanted:
            return False
        types = {record["key"]: int(record["type"]) for record in self.metadata}
        values = connection.get("metadata") or {}
        return all(
            key in types and key in values and _satisfies(types[key], str(values[key]), wanted_value, self.clock())
            for key, wanted_value in wanted.items()
        )

    # ---- wiring ----------------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        records = API_PREFIX + "/applications/{app_id}/role-connections/metadata"
        app.router.add_get(records, self.get_records)
        app.router.add_put(records, self.put_records)

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """The per-user route authenticates with the user's Bearer token, not the bot's, so it is answered here."""
        match = _USER_ROUTE.match(request.path)
        if match is None or request.method not in ("GET", "PUT"):
            return await handler(request)
        body = await read_body(request) if request.method == "PUT" else None
        user_id = self._bearer_user(request.headers.get("Authorization", ""), match.group(1))
        if user_id is None:
            return self._record(request.method, None, body, json_response(_UNAUTHORIZED, 401))
        if self._faults:
            status, fault, headers = self._faults.pop(0)
            return self._record(request.method, user_id, body, json_response(fault, status, headers))
        if request.method == "GET":
            return self._record("GET", user_id, None, json_response(self._connection_payload(user_id)))
        try:
            connection = self._validate_connection(body)
        except FormError as error:
            return self._record("PUT", user_id, body, error.response())
        self.connections[user_id] = connection
        self._evaluate(user_id)
        return self._record("PUT", user_id, body, json_response(self._connection_payload(user_id)))

    # ---- the bot token's side --------------------------------------------------------------------

    def _own_app(self, request: web.Request) -> None:
        if request.match_info["app_id"] != str(self.fake.application_id):
            raise errors.DiscordAPIError(403, 20012, "You are not authorized to perform this action on this app")

    async def get_records(self, request: web.Request) -> web.Response:
        self._own_app(request)
        return json_response(self.metadata)

    async def put_records(self, request: web.Request) -> web.Response:
        self._own_app(request)
        body = await read_body(request)
        try:
            self.metadata = _validate_records(body)
        except FormError as error:
            return error.response()
        keys = {record["key"] for record in self.metadata}
        for key in list(self.requirements):
            kept = {k: v for k, v in self.requirements[key].items() if k in keys}
            if kept:
                self.requirements[key] = kept
            else:
                del self.requirements[key]
        return json_response(self.metadata)

    # ---- the user's side -------------------------------------------------------------------------

    def _bearer_user(self, authorization: str, app_id: str) -> int | None:
        """The user whose Bearer token this is, when it may write this app's role connection; a bot token is not."""
        if not authorization.startswith("Bearer ") or app_id != str(self.fake.application_id):
            return None
        return self.fake.oauth.bearer_user(authorization.removeprefix("Bearer "), SCOPE)

    def _validate_connection(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _error([], "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
        connection: dict[str, Any] = {"platform_name": None, "platform_username": None, "metadata": {}}
        for name, limit in (("platform_name", 50), ("platform_username", 100)):
            value = body.get(name)
            if value is None:
                continue
            if not isinstance(value, str):
                raise _error([name], "BASE_TYPE_STRING", "This field must be a string.")
            if len(value) > limit:
                raise _error([name], "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")
            connection[name] = value
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise _error(["metadata"], "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
        types = {record["key"]: int(record["type"]) for record in self.metadata}
        for key, raw in metadata.items():
            value = str(raw)
            if key not in types:
                raise _error(["metadata", key], "APPLICATION_ROLE_CONNECTION_METADATA_KEY", "Unknown metadata key.")
            if len(value) > 100:
                raise _error(["metadata", key], "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.")
            if not _value_fits(types[key], value):
                raise _error(["metadata", key], "BASE_TYPE_BAD_VALUE", f"Value {value!r} does not fit its type.")
            connection["metadata"][key] = value
        return connection

    def _connection_payload(self, user_id: int) -> dict[str, Any]:
        return dict(self.connections.get(user_id) or {"platform_name": None, "platform_username": None, "metadata": {}})

    def _record(self, method: str, user_id: int | None, body: Any, response: web.Response) -> web.Response:
        self.calls.append(RoleConnectionCall(method, user_id, body, response.status))
        return response

    def _evaluate(self, user_id: int) -> None:
        """Give or take each linked role of every server the user is in, as Discord does on an update."""
        for (guild_id, role_id), _wanted in list(self.requirements.items()):
            guild = self.fake.guilds.get(guild_id)
            member = guild.members.get(user_id) if guild is not None else None
            if member is None or role_id not in guild.roles:  # type: ignore[union-attr]
                continue
            if self.meets(guild_id, role_id, user_id):
                member.role_ids.add(role_id)
            else:
                member.role_ids.discard(role_id)


def _validate_records(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, list):
        raise _error([], "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType")
    if len(body) > MAX_RECORDS:
        raise _error([], "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_RECORDS} or fewer in length.")
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, record in enumerate(body):
        at = [str(index)]
        if not isinstance(record, dict):
            raise _error(at, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
        kind = record.get("type")
        if not isinstance(kind, int) or isinstance(kind, bool) or not 1 <= kind <= 8:
            raise _error([*at, "type"], "ENUM_TYPE_COERCE", f'Value "{kind}" is not a valid enum value.')
        key = record.get("key")
        if not isinstance(key, str) or not KEY_PATTERN.match(key):
            raise _error([*at, "key"], "STRING_TYPE_REGEX", "String value did not match validation regex.")
        if key in seen:
            raise _error([*at, "key"], "APPLICATION_ROLE_CONNECTION_METADATA_KEY_DUPLICATE", "Duplicate key.")
        seen.add(key)
        for name, limit in (("name", 100), ("description", 200)):
            value = record.get(name)
            if not isinstance(value, str):
                raise _error([*at, name], "BASE_TYPE_REQUIRED", "This field is required")
            if not 1 <= len(value) <= limit:
                raise _error([*at, name], "BASE_TYPE_BAD_LENGTH", f"Must be between 1 and {limit} in length.")
        kept = {name: record[name] for name in ("type", "key", "name", "description")}
        for name in ("name_localizations", "description_localizations"):
            if record.get(name) is not None:
                kept[name] = record[name]
        records.append(kept)
    return records


def _value_fits(kind: int, value: str) -> bool:
    if kind in INTEGER_TYPES:
        return re.fullmatch(r"-?\d+", value) is not None
    if kind in BOOLEAN_TYPES:
        return value in ("0", "1")
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _satisfies(kind: int, value: str, configured: int, now: datetime) -> bool:
    if kind == 1:
        return int(value) <= configured
    if kind == 2:
        return int(value) >= configured
    if kind == 3:
        return int(value) == configured
    if kind == 4:
        return int(value) != configured
    if kind in DATETIME_TYPES:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        cutoff = now - timedelta(days=configured)
        return moment <= cutoff if kind == 5 else moment >= cutoff
    return (int(value) == configured) if kind == 7 else (int(value) != configured)
