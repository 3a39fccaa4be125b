"""The cookie that binds a browser to its sign-in attempt, set and read the same way by every flow's pages (link,
connect, Linked Roles): HttpOnly (no script reads it), SameSite=Lax (sent on the top-level redirects back from
Discord and Patreon, never on another site's POST, so the pages' forms can't be forged from elsewhere), Path=/.

Behind https it is `__Host-patreon_link`, Secure (review 5, R5-11). A plain host cookie can be "tossed": any sibling
subdomain of the bot's domain may set `patreon_link=…; Domain=example.com` in a patron's browser, e.g. the
attacker's own signed value holding his Discord-step proof, and the planted-attempt login CSRF works again. Browsers
refuse a `__Host-` cookie that has a Domain, lacks Secure or Path=/ (RFC 6265bis, cookie prefixes), so only the
bot's own host can set it, and only that name is read. Over plain http (tests, the demo) the prefix can't be used in
general: a Secure cookie from http is dropped except on loopback (headless Chromium 156 keeps one from
http://localhost and http://127.0.0.1; other browsers and hosts don't), so the plain name stays there.

Upgrading: an attempt begun before it holds its value under the plain name. Behind https that name is still read
when the `__Host-` one is missing, but only for a value made before the upgrade (`made_before_host_prefix`): such a
value can only finish an attempt begun then (15 minutes), while every value made since, the attacker's included,
carries its version and is ignored under the plain name.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from bot.accounts.oauth_state import COOKIE_LIFETIME, COOKIE_NAME, HOST_COOKIE_NAME, made_before_host_prefix


def cookie_name(*, secure: bool) -> str:
    return HOST_COOKIE_NAME if secure else COOKIE_NAME


def set_browser_cookie(response: web.StreamResponse, value: str, *, secure: bool) -> None:
    response.set_cookie(
        cookie_name(secure=secure),
        value,
        max_age=int(COOKIE_LIFETIME.total_seconds()),
        path="/",
        httponly=True,
        samesite="Lax",
        secure=secure,
    )


def browser_cookie(cookies: Mapping[str, str], *, secure: bool) -> str | None:
    """The request's binding cookie: behind https the `__Host-` one, else a plain one made before the upgrade."""
    if not secure:
        return cookies.get(COOKIE_NAME)
    value = cookies.get(HOST_COOKIE_NAME)
    if value:
        return value
    legacy = cookies.get(COOKIE_NAME)
    return legacy if legacy and made_before_host_prefix(legacy) else None
