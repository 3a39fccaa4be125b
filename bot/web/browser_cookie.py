"""The cookie that binds a browser to its sign-in attempt, set the same way by every flow's pages (link, connect,
Linked Roles): HttpOnly (no script reads it), SameSite=Lax (sent on the top-level redirects back from Discord and
Patreon, never on another site's POST, so the pages' forms can't be forged from elsewhere) and Secure when the
public URL is https."""

from __future__ import annotations

from aiohttp import web

from bot.accounts.oauth_state import COOKIE_LIFETIME, COOKIE_NAME


def set_browser_cookie(response: web.StreamResponse, value: str, *, secure: bool) -> None:
    response.set_cookie(
        COOKIE_NAME,
        value,
        max_age=int(COOKIE_LIFETIME.total_seconds()),
        path="/",
        httponly=True,
        samesite="Lax",
        secure=secure,
    )
