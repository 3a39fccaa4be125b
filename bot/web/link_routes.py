"""The link flow's pages: the start page, Discord's and Patreon's callbacks, and the undo button's POST.

The cookie that binds a browser to its attempt is set by bot/web/browser_cookie.py (its flags and why).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.accounts.link_flow import START_PATH, FlowStep, LinkFlow
from bot.accounts.linking import LinkResult
from bot.web.browser_cookie import browser_cookie, set_browser_cookie
from bot.web.connect_routes import connect_callback
from bot.web.discord_sign_in import DISCORD_CALLBACK_PATH
from bot.web.pages import render_link_page, render_result_page

log = logging.getLogger(__name__)

LINK_FLOW_KEY = web.AppKey("link_flow", LinkFlow)
UNDO_PATH = "/link/undo"
_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
_CRASH = LinkResult(False, "Something went wrong on our side.", "Nothing was linked. Please try again.", status=500)


def add_link_routes(app: web.Application, flow: LinkFlow) -> None:
    app[LINK_FLOW_KEY] = flow
    app.router.add_get(START_PATH, link_start)
    app.router.add_get(DISCORD_CALLBACK_PATH, discord_callback)
    app.router.add_get("/patreon/callback", patreon_callback)
    app.router.add_post(UNDO_PATH, undo)


def _params(request: web.Request) -> dict[str, str]:
    return {key: request.query.get(key, "") for key in ("code", "state", "error")}


def _cookie(request: web.Request) -> str | None:
    return browser_cookie(request.cookies, secure=request.app[LINK_FLOW_KEY].cookie_secure)


async def link_start(request: web.Request) -> web.StreamResponse:
    flow = request.app[LINK_FLOW_KEY]
    return _answer(flow, await _guarded(lambda: flow.start(request.query.get("state", ""), _cookie(request))))


async def discord_callback(request: web.Request) -> web.StreamResponse:
    if (connect := await connect_callback(request, "discord")) is not None:  # the state's salt says whose it is
        return connect
    flow = request.app[LINK_FLOW_KEY]
    return _answer(flow, await _guarded(lambda: flow.discord_callback(_params(request), _cookie(request))))


async def patreon_callback(request: web.Request) -> web.StreamResponse:
    if (connect := await connect_callback(request, "patreon")) is not None:
        return connect
    flow = request.app[LINK_FLOW_KEY]
    return _answer(flow, await _guarded(lambda: flow.patreon_callback(_params(request), _cookie(request))))


async def undo(request: web.Request) -> web.StreamResponse:
    flow = request.app[LINK_FLOW_KEY]
    form = await request.post()
    token = form.get("csrf")

    async def run() -> FlowStep:
        return FlowStep(result=await flow.undo(token if isinstance(token, str) else "", _cookie(request)))

    return _answer(flow, await _guarded(run))


async def _guarded(step: Callable[[], Awaitable[FlowStep]]) -> FlowStep:
    try:
        return await step()
    except Exception:
        log.exception("link step failed unexpectedly")
        return FlowStep(result=_CRASH)


def _answer(flow: LinkFlow, step: FlowStep) -> web.StreamResponse:
    if step.redirect is not None:
        response = web.Response(status=302, headers={"Location": step.redirect, **_HEADERS})
    else:
        result = step.result or _CRASH
        text = render_link_page(result, step.undo_token) if step.is_link_result else render_result_page(result)
        response = web.Response(text=text, status=result.status, content_type="text/html", headers=_HEADERS)
    if step.cookie is not None:
        set_browser_cookie(response, step.cookie, secure=flow.cookie_secure)
    return response
