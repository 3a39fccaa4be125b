"""Forgiving readers for single JSON values: Patreon sends nulls, strings for numbers and odd shapes anywhere."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bot.domain.models import PatronStatus

log = logging.getLogger(__name__)


def as_optional_int(value: Any) -> int | None:
    if type(value) is int:  # the common case first: a listing reads about a million numbers
        return value
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def as_int(value: Any, default: int = 0) -> int:
    if type(value) is int:
        return value
    result = as_optional_int(value)
    return default if result is None else result


def as_bool(value: Any, default: bool = False) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return default


def as_optional_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def as_str(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def as_datetime(value: Any) -> datetime | None:
    """ISO 8601 with or without offset; naive values are taken as UTC (Patreon always sends +00:00)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


_STATUSES = {status.value: status for status in PatronStatus}


def patron_status(value: Any) -> PatronStatus | None:
    if value is None:
        return None
    if type(value) is str and value in _STATUSES:  # Enum's own lookup costs a microsecond a member
        return _STATUSES[value]
    try:
        return PatronStatus(value)
    except ValueError:
        log.warning("unknown patron_status %r treated as unknown (None)", value)
        return None


def discord_id(social_connections: Any) -> int | None:
    """`social_connections.discord.user_id` as an int snowflake; any null or junk on the way gives None."""
    if not (type(social_connections) is dict or isinstance(social_connections, Mapping)):
        return None
    discord = social_connections.get("discord")
    if discord is None or not (type(discord) is dict or isinstance(discord, Mapping)):
        return None
    return discord_user_id(discord.get("user_id"))


def discord_user_id(raw: Any) -> int | None:
    """A Discord user id as Patreon writes it (a digit string, sometimes a number) as a positive int, else None."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw if raw > 0 else None
    if isinstance(raw, str) and raw.strip().isdigit():
        value = int(raw.strip())
        return value if value > 0 else None
    return None
