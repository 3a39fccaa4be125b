"""The connect flow's pages: its start page, the campaign picker's POST, and its share of the two callbacks.

Discord and Patreon each know one redirect URL for the bot; `connect_callback` answers a callback whose state is
the connect flow's (its own salts) and leaves every other to the link flow (bot/web/link_routes.py). The cookie is
the link flow's (HttpOnly, SameSite=Lax, Secure on https), so the picker's POST can't be forged from another site.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from html import escape

from aiohttp import web

from bot.accounts.connect_flow import CONNECT_PICK_PATH, CONNECT_START_PATH, ConnectFlow, ConnectStep
from bot.accounts.linking import LinkResult
from bot.web.browser_cookie import browser_cookie, set_browser_cookie
from bot.web.pages import render_result_page

log = logging.getLogger(__name__)

CONNECT_FLOW_KEY = web.AppKey("connect_flow", ConnectFlow)
_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
_CRASH = LinkResult(False, "Something went wrong on our side.", "Nothing was connected. Please try again.", status=500)
_PICKER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Choose a campaign</title>
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}}
h1{{font-size:1.4rem}} label{{display:block;margin:.4rem 0}}</style></head>
<body><h1>Which campaign should {server} follow?</h1>
<form method="post" action="{action}"><input type="hidden" name="pick" value="{token}">
{choices}<button type="submit" id="connect">Connect</button></form></body></html>"""


def add_connect_routes(app: web.Application, flow: ConnectFlow) -> None:
    app[CONNECT_FLOW_KEY] = flow
    app.router.add_get(CONNECT_START_PATH, connect_start)
    app.router.add_post(CONNECT_PICK_PATH, connect_pick)
    app.cleanup_ctx.append(_sweep_abandoned_pickers)


async def _sweep_abandoned_pickers(app: web.Application) -> AsyncIterator[None]:
    """While the pages are served, abandoned pickers' creator tokens are forgotten (at start, then every few
    minutes): the picker is the only way to use them, so they live no longer than it does."""
    sweeper = app[CONNECT_FLOW_KEY].sweeper
    sweeper.start()
    yield
    await sweeper.stop()


async def connect_callback(request: web.Request, which: str) -> web.StreamResponse | None:
    """Discord's (`which` "discord") or Patreon's callback when its state is the connect flow's; None otherwise."""
    flow = request.app.get(CONNECT_FLOW_KEY)
    state = request.query.get("state", "")
    if flow is None or not flow.owns(state):
        return None
    params = {key: request.query.get(key, "") for key in ("code", "state", "error")}
    cookie = browser_cookie(request.cookies, secure=flow.cookie_secure)
    if which == "discord":
        return _answer(flow, await _guarded(lambda: flow.discord_callback(params, cookie)))
    return _answer(flow, await _guarded(lambda: flow.patreon_callback(params, cookie)))


async def connect_start(request: web.Request) -> web.StreamResponse:
    flow = request.app[CONNECT_FLOW_KEY]
    cookie = browser_cookie(request.cookies, secure=flow.cookie_secure)
    return _answer(flow, await _guarded(lambda: flow.start(request.query.get("state", ""), cookie)))


async def connect_pick(request: web.Request) -> web.StreamResponse:
    flow = request.app[CONNECT_FLOW_KEY]
    form = await request.post()
    token, campaign = form.get("pick"), form.get("campaign")
    cookie = browser_cookie(request.cookies, secure=flow.cookie_secure)
    return _answer(
        flow,
        await _guarded(
            lambda: flow.pick(
                token if isinstance(token, str) else "", campaign if isinstance(campaign, str) else "", cookie
            )
        ),
    )


async def _guarded(step: Callable[[], Awaitable[ConnectStep]]) -> ConnectStep:
    try:
        return await step()
    except Exception:
        log.exception("connect step failed unexpectedly")
        return ConnectStep(result=_CRASH)


def render_picker(step: ConnectStep) -> str:
    choices = "".join(
        f'<label><input type="radio" name="campaign" value="{escape(campaign_id)}"{" checked" if n == 0 else ""}> '
        f"{escape(name)}</label>"
        for n, (campaign_id, name) in enumerate(step.choices)
    )
    return _PICKER.format(
        server=escape(step.guild_name or "this server"),
        action=CONNECT_PICK_PATH,
        token=escape(step.pick_token or ""),
        choices=choices,
    )


def _answer(flow: ConnectFlow, step: ConnectStep) -> web.StreamResponse:
    if step.redirect is not None:
        response = web.Response(status=302, headers={"Location": step.redirect, **_HEADERS})
    elif step.pick_token is not None:
        response = web.Response(text=render_picker(step), content_type="text/html", headers=_HEADERS)
    else:
        result = step.result or _CRASH
        text = render_result_page(result)
        response = web.Response(text=text, status=result.status, content_type="text/html", headers=_HEADERS)
    if step.cookie is not None:
        set_browser_cookie(response, step.cookie, secure=flow.cookie_secure)
    return response
