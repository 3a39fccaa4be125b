"""The bot's HTTP face: the Patreon webhook and a health check (the link pages are in bot.web.link_routes)."""

from __future__ import annotations

import logging

from aiohttp import web

from bot.accounts.linking import LinkingService
from bot.web.webhook_receiver import MAX_BODY_BYTES, WebhookReceiver

log = logging.getLogger(__name__)

LINKING_KEY = web.AppKey("linking", LinkingService)
WEBHOOKS_KEY = web.AppKey("webhooks", WebhookReceiver)


def create_web_app(linking: LinkingService, webhooks: WebhookReceiver | None = None) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[LINKING_KEY] = linking
    app.router.add_get("/healthz", healthz)
    if webhooks is not None:
        app[WEBHOOKS_KEY] = webhooks
        app.router.add_post("/patreon/webhook", patreon_webhook)
        app.router.add_post(r"/patreon/webhook/{campaign_id:\d{1,20}}", patreon_webhook)
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
        request.headers.get("X-Patreon-Event"),
        request.headers.get("X-Patreon-Signature"),
        bytes(body),
        request.match_info.get("campaign_id"),
    )
    return web.json_response(answer.body, status=answer.status)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})
