"""The Linked Roles pages: the verification URL Discord opens, and Discord's OAuth2 callback for it.

The cookie is the link flow's own (bot/web/browser_cookie.py: HttpOnly, SameSite=Lax, `__Host-` on https), so a browser
keeps one id across both flows and the Patreon step that may follow is the link flow's `/patreon/callback`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.accounts.link_flow import FlowStep
from bot.accounts.linked_role_flow import VERIFY_PATH, LinkedRoleFlow
from bot.accounts.linking import LinkResult
from bot.web.browser_cookie import browser_cookie, set_browser_cookie
from bot.web.discord_bearer import LINKED_ROLE_CALLBACK_PATH
from bot.web.pages import render_result_page

log = logging.getLogger(__name__)

LINKED_ROLE_FLOW_KEY = web.AppKey("linked_role_flow", LinkedRoleFlow)
_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
_CRASH = LinkResult(False, "Something went wrong on our side.", "Nothing was changed. Please try again.", status=500)


def add_linked_role_routes(app: web.Application, flow: LinkedRoleFlow, *, cookie_secure: bool) -> None:
    app[LINKED_ROLE_FLOW_KEY] = flow

    async def verify(request: web.Request) -> web.StreamResponse:
        return await _serve(request, cookie_secure, start=True)

    async def callback(request: web.Request) -> web.StreamResponse:
        return await _serve(request, cookie_secure, start=False)

    app.router.add_get(VERIFY_PATH, verify)
    app.router.add_get(LINKED_ROLE_CALLBACK_PATH, callback)


async def _serve(request: web.Request, cookie_secure: bool, *, start: bool) -> web.StreamResponse:
    flow = request.app[LINKED_ROLE_FLOW_KEY]
    cookie = browser_cookie(request.cookies, secure=cookie_secure)
    params = {key: request.query.get(key, "") for key in ("code", "state", "error")}
    if start:
        step = await _guarded(lambda: flow.start(cookie))
    else:
        step = await _guarded(lambda: flow.discord_callback(params, cookie))
    if step.redirect is not None:
        response = web.Response(status=302, headers={"Location": step.redirect, **_HEADERS})
    else:
        result = step.result or _CRASH
        text = render_result_page(result)
        response = web.Response(text=text, status=result.status, content_type="text/html", headers=_HEADERS)
    if step.cookie is not None:
        set_browser_cookie(response, step.cookie, secure=cookie_secure)
    return response


async def _guarded(step: Callable[[], Awaitable[FlowStep]]) -> FlowStep:
    try:
        return await step()
    except Exception:
        log.exception("linked-role step failed unexpectedly")
        return FlowStep(result=_CRASH)
