"""Registers the Linked Roles metadata records once at start-up, with the bot token (discord.py's own HTTP client,
so its rate-limit handling applies; discord.py 2.7 has no method of its own for this route).

Idempotent: the records are read first and written only when they differ, so a restart costs one GET. A failure is
logged and start-up goes on: the records already registered keep working, and bot-managed roles don't need them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import discord
from discord.http import Route

from bot.accounts.linked_roles import schema_payload

log = logging.getLogger(__name__)

_PATH = "/applications/{application_id}/role-connections/metadata"


def _comparable(records: Any) -> list[tuple[Any, ...]]:
    if not isinstance(records, list):
        return []
    return [(r.get("type"), r.get("key"), r.get("name"), r.get("description")) for r in records if isinstance(r, dict)]


async def register_metadata_schema(client: discord.Client, before_each_call: Callable[[], Awaitable[None]]) -> bool:
    """Make Discord's records equal to ours; True when they are (already, or now). `before_each_call` takes a token
    of the global bucket the role calls share (bot/sync/role_pacing.py), so these calls never push a second of role
    calls over Discord's global 50."""
    application_id = client.application_id
    if application_id is None:
        log.warning("linked roles: the application id is unknown; metadata records not registered")
        return False
    wanted = schema_payload()
    try:
        await before_each_call()
        current = await client.http.request(Route("GET", _PATH, application_id=application_id))
        if _comparable(current) == _comparable(wanted):
            log.info("linked roles: %d metadata records already registered", len(wanted))
            return True
        await before_each_call()
        await client.http.request(Route("PUT", _PATH, application_id=application_id), json=wanted)
    except discord.HTTPException as error:
        log.warning("linked roles: could not register the metadata records: %s %s", error.status, error.text)
        return False
    log.info("linked roles: registered %d metadata records", len(wanted))
    return True
