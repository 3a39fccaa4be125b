"""`QueueStore`: the two durable queues (webhook events, role jobs) as the one mixin `Store` takes."""

from __future__ import annotations

from bot.store.role_job_queue import RoleJobQueue
from bot.store.webhook_queue import WebhookEventQueue


class QueueStore(WebhookEventQueue, RoleJobQueue):
    """Mixed into `Store`; every method commits before it returns."""
