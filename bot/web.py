"""The bot's HTTP face: the OAuth callback and a health check (the webhook joins them here)."""

from __future__ import annotations

import logging

from aiohttp import web

from bot.linking import LinkingService, LinkResult
from bot.pages import render_link_page

log = logging.getLogger(__name__)

LINKING_KEY = web.AppKey("linking", LinkingService)


def create_web_app(linking: LinkingService) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app[LINKING_KEY] = linking
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/patreon/callback", oauth_callback)
    return app


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def oauth_callback(request: web.Request) -> web.Response:
    params = {key: request.query.get(key, "") for key in ("code", "state", "error")}
    try:
        result = await request.app[LINKING_KEY].complete_link(params)
    except Exception:
        log.exception("OAuth callback failed unexpectedly")
        result = LinkResult(
            False, "Something went wrong on our side.", "Nothing was linked. Please try again.", status=500
        )
    return web.Response(
        text=render_link_page(result),
        status=result.status,
        content_type="text/html",
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )
