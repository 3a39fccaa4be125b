"""A loopback fake of Discord's REST API and gateway for testing the bot with the real discord.py.

Why: the machine has no network and mocks of discord.py would hide its real HTTP and cache
behaviour; this fake lets the unpatched client run end to end against Discord's rules.
Which rules, and what discord.py needs from a server: docs/discord-api.md.
"""

from .errors import DiscordAPIError
from .guild import FakeGuild
from .interactions import InteractionRecord
from .models import FakeChannel, FakeMember, FakeRole
from .rate_limits import RateLimiter, RateLimits, RouteLimit, Window
from .server import DEFAULT_OWNER_ID, FakeDiscord
from .transport import RecordedCall

__all__ = [
    "DEFAULT_OWNER_ID",
    "DiscordAPIError",
    "FakeChannel",
    "FakeDiscord",
    "FakeGuild",
    "FakeMember",
    "FakeRole",
    "InteractionRecord",
    "RateLimiter",
    "RateLimits",
    "RecordedCall",
    "RouteLimit",
    "Window",
]
