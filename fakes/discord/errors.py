"""Discord's JSON error answers, as raised inside the fake and turned into HTTP responses.

Why: discord.py maps status + JSON code onto Forbidden / NotFound / HTTPException, and the bot
branches on those codes (50013 means stop), so the fake must answer with the real ones.
"""

from __future__ import annotations

from typing import Any


class DiscordAPIError(Exception):
    """A refusal the fake answers with `status` and body {"code": code, "message": message}."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        """The JSON body Discord sends for this error."""
        return {"message": self.message, "code": self.code}


def missing_permissions() -> DiscordAPIError:
    """403 50013: Manage Roles missing, role above the bot, managed role or @everyone."""
    return DiscordAPIError(403, 50013, "Missing Permissions")


def missing_access() -> DiscordAPIError:
    """403 50001: the bot cannot see the resource at all."""
    return DiscordAPIError(403, 50001, "Missing Access")


def unknown_guild() -> DiscordAPIError:
    """404 10004."""
    return DiscordAPIError(404, 10004, "Unknown Guild")


def unknown_member() -> DiscordAPIError:
    """404 10007."""
    return DiscordAPIError(404, 10007, "Unknown Member")


def unknown_role() -> DiscordAPIError:
    """404 10011."""
    return DiscordAPIError(404, 10011, "Unknown Role")


def unknown_channel() -> DiscordAPIError:
    """404 10003."""
    return DiscordAPIError(404, 10003, "Unknown Channel")


def unknown_message() -> DiscordAPIError:
    """404 10008."""
    return DiscordAPIError(404, 10008, "Unknown Message")


def unknown_interaction() -> DiscordAPIError:
    """404 10062: wrong token, or the 3-second window to acknowledge has passed."""
    return DiscordAPIError(404, 10062, "Unknown interaction")


def already_acknowledged() -> DiscordAPIError:
    """400 40060: a second initial callback for the same interaction."""
    return DiscordAPIError(400, 40060, "Interaction has already been acknowledged.")


def unauthorized() -> DiscordAPIError:
    """401 0: wrong or missing bot token."""
    return DiscordAPIError(401, 0, "401: Unauthorized")


def unknown_webhook() -> DiscordAPIError:
    """404 10015: followup before the interaction was acknowledged, or a bad webhook."""
    return DiscordAPIError(404, 10015, "Unknown Webhook")
