"""The bot's HTTP face: the OAuth callback, the Patreon webhook and a health check."""

from __future__ import annotations

import logging

from aiohttp import web

from bot.accounts.linking import LinkingService, LinkResult
from bot.web.pages import render_link_page
from bot.web.webhook_receiver import MAX_BODY_BYTES, WebhookReceiver

log = logging.getLogger(__name__)

LINKING_KEY = web.AppKey("linking", LinkingService)
WEBHOOKS_KEY = web.AppKey("webhooks", WebhookReceiver)


def create_web_app(linking: LinkingService, webhooks: WebhookReceiver | None = None) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[LINKING_KEY] = linking
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/patreon/callback", oauth_callback)
    if webhooks is not None:
        app[WEBHOOKS_KEY] = webhooks
        app.router.add_post("/patreon/webhook", patreon_webhook)
    return app


async def patreon_webhook(request: web.Request) -> web.Response:
    """Read at most MAX_BODY_BYTES of raw body (413 beyond, without reading the rest), then let the receiver
    check the signature, record the event and choose the answer."""
    too_large = web.json_response({"error": f"body over {MAX_BODY_BYTES} bytes"}, status=413)
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        log.warning("webhook refused: Content-Length %d is over the limit", request.content_length)
        return too_large
    body = bytearray()
    async for chunk in request.content.iter_any():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            log.warning("webhook refused: body over %d bytes", MAX_BODY_BYTES)
            return too_large
    answer = await request.app[WEBHOOKS_KEY].receive(
        request.headers.get("X-Patreon-Event"), request.headers.get("X-Patreon-Signature"), bytes(body)
    )
    return web.json_response(answer.body, status=answer.status)


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
