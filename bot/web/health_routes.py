"""`/readyz` (readiness, 200 or 503 naming what fails) and `/metrics` (Prometheus text, behind a bearer token), and
the middleware that counts webhook deliveries by result. `/healthz`, the cheap liveness answer, is in bot.web.app.

`/metrics` is off (404) unless `METRICS_TOKEN` is set, and then wants `Authorization: Bearer <token>` (compared in
constant time; 401 otherwise): the numbers say which servers use the bot and how busy it is, and a forgotten
setting must not publish them. The deployment's Caddy answers 404 for `/metrics` and `/readyz` from the Internet
either way; Prometheus scrapes the bot on the internal network.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler

from bot.observability.metrics import CONTENT_TYPE, BotMetrics
from bot.observability.readiness import Readiness

log = logging.getLogger(__name__)

WEBHOOK_PATH_PREFIX = "/patreon/webhook"


@dataclass(frozen=True)
class Observability:
    """What the health routes need; built by bot/services.py."""

    readiness: Readiness
    metrics: BotMetrics
    #: The bearer token for /metrics; empty turns /metrics off.
    metrics_token: str = ""


OBSERVABILITY_KEY = web.AppKey("observability", Observability)


def add_health_routes(app: web.Application, observability: Observability) -> None:
    """/readyz, /metrics, and the webhook counter; call before the app starts."""
    app[OBSERVABILITY_KEY] = observability
    app.middlewares.append(_count_webhooks)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)


async def readyz(request: web.Request) -> web.Response:
    report = await request.app[OBSERVABILITY_KEY].readiness.check()
    return web.json_response(report.body(), status=200 if report.ready else 503)


async def metrics(request: web.Request) -> web.Response:
    observability = request.app[OBSERVABILITY_KEY]
    if not observability.metrics_token:
        raise web.HTTPNotFound()
    if not bearer_matches(request.headers.get("Authorization"), observability.metrics_token):
        log.warning("metrics refused: %s bearer token", "wrong" if request.headers.get("Authorization") else "no")
        return web.json_response(
            {"error": "a valid bearer token is required"}, status=401, headers={"WWW-Authenticate": "Bearer"}
        )
    body = await observability.metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def bearer_matches(header: str | None, token: str) -> bool:
    """Constant time, and over digests, so not even the token's length shows in the timing."""
    scheme, _, given = (header or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    return hmac.compare_digest(_digest(given.strip().encode("utf-8", "replace")), _digest(token.encode()))


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


@web.middleware
async def _count_webhooks(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(WEBHOOK_PATH_PREFIX) or request.method != "POST":
        return await handler(request)
    observability = request.app[OBSERVABILITY_KEY]
    try:
        response = await handler(request)
    except web.HTTPException as answer:
        observability.metrics.count_webhook(answer.status)
        raise
    except Exception:
        observability.metrics.count_webhook(500)
        raise
    observability.metrics.count_webhook(response.status)
    return response
