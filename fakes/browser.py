"""A person's browser for the e2e tests: real HTTP with its own cookie jar, following redirects as a browser does.

It presses the buttons a person would on the fake Discord's pages: "Log In" when it has been told who it is and
Discord asks, and "Authorize" on the consent screen. Every page it lands on is kept in `pages`, so tests can count
what a person saw between the Link button and the role.
"""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import urljoin

import aiohttp
from yarl import URL

_FORM = re.compile(r'<form method="post" action="([^"]+)">(.*?)</form>', re.S)
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


class Browser:
    def __init__(self, discord_base_url: str, discord_login: str | None = None) -> None:
        #: `unsafe`: accept cookies from 127.0.0.1 as a real browser does (aiohttp's default jar refuses IP hosts).
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.discord_base_url = discord_base_url
        #: The username it signs in to Discord with when Discord asks; None: a browser whose owner doesn't.
        self.discord_login = discord_login
        #: Whether it presses "Authorize" on Discord's consent screen.
        self.approve_discord = True
        #: (status, URL) of every page a person saw (redirects pass unseen).
        self.pages: list[tuple[int, str]] = []
        #: The buttons this browser pressed on Discord's pages ("Log In", "Authorize", "Cancel").
        self.discord_clicks = 0

    async def close(self) -> None:
        await self.session.close()

    def cookie(self, name: str) -> str | None:
        """A cookie this browser would send to the bot's host (tests look, as a person with devtools would)."""
        for cookie in self.session.cookie_jar:
            if cookie.key == name:
                return cookie.value
        return None

    def drop_cookie(self, name: str) -> None:
        """The cookie is gone (cleared, another browser profile, a private window)."""
        self.session.cookie_jar.clear(lambda morsel: morsel.key == name)

    def set_cookie(self, name: str, value: str, url: str) -> None:
        self.session.cookie_jar.update_cookies({name: value}, URL(url))

    async def open(self, url: str) -> tuple[int, str]:
        """Go to `url` and on through redirects and the Discord pages a person clicks through; the last page."""
        status, text, _ = await self._go("GET", url, None, stop_at=None)
        return status, text

    async def url_before(self, url: str, stop_at: str) -> str:
        """Like `open`, but stop at the first redirect to a URL starting with `stop_at` and return that URL."""
        status, text, where = await self._go("GET", url, None, stop_at=stop_at)
        assert status == 302, f"never reached {stop_at}: [{status}] {where} {text[:300]}"
        return where

    async def post_form(self, url: str, fields: dict[str, str]) -> tuple[int, str]:
        status, text, _ = await self._go("POST", url, fields, stop_at=None)
        return status, text

    async def _go(
        self, method: str, url: str, data: dict[str, str] | None, *, stop_at: str | None
    ) -> tuple[int, str, str]:
        """Follow redirects one by one (so the jar sees every Set-Cookie, as a browser's does), then press the
        Discord page's button when a person would."""
        for _ in range(30):
            async with self.session.request(method, url, data=data, allow_redirects=False) as response:
                status, text = response.status, await response.text()
                location = response.headers.get("Location")
            if status in (301, 302, 303, 307) and location:
                url, method, data = urljoin(url, location), "GET", None
                if stop_at is not None and url.startswith(stop_at):
                    return 302, "", url
                continue
            self.pages.append((status, url))
            form = self._discord_form(url, text)
            if form is None:
                return status, text, url
            (url, data), method = form, "POST"
        raise AssertionError(f"too many redirects, last at {url}")

    def _discord_form(self, where: str, text: str) -> tuple[str, dict[str, str]] | None:
        """The form a person would submit on this fake Discord page, or None (not Discord's, or they wouldn't)."""
        if not where.startswith(self.discord_base_url):
            return None
        match = _FORM.search(text)
        if match is None:
            return None
        action, inner = match.groups()
        fields = {unescape(name): unescape(value) for name, value in _HIDDEN.findall(inner)}
        if unescape(action) == "/login":
            if self.discord_login is None:
                return None
            fields["login"] = self.discord_login
        elif self.approve_discord:
            fields["decision"] = "authorize"
        else:
            fields["decision"] = "cancel"
        self.discord_clicks += 1
        return urljoin(self.discord_base_url, unescape(action)), fields
