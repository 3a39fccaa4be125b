"""Patreon API v2: JSON:API parsing (`jsonapi`), the one HTTP client (`client`) and its errors (`errors`)."""

from bot.patreon.client import PatreonClient
from bot.patreon.errors import (
    PatreonAuthError,
    PatreonBadResponse,
    PatreonCursorExpired,
    PatreonError,
    PatreonNotFound,
    PatreonRequestError,
    PatreonUnavailable,
)
from bot.patreon.jsonapi import JsonApiError, Webhook

__all__ = [
    "JsonApiError",
    "PatreonAuthError",
    "PatreonBadResponse",
    "PatreonClient",
    "PatreonCursorExpired",
    "PatreonError",
    "PatreonNotFound",
    "PatreonRequestError",
    "PatreonUnavailable",
    "Webhook",
]
