"""The fake's webhook control: registering hooks by hand, and sending each campaign's events to its webhooks.

Patreon sends a campaign's member events to every webhook registered on that campaign, each signed with that
webhook's own secret (docs "APIv2: Webhook Endpoints": "HMAC signed (with MD5) using your webhook's secret"), so
`deliver_event` signs once per hook and never lends one hook's secret to another. `send_webhook` is the older
one-hook path (the first hook subscribed to the trigger, or a given `uri`) that tests use to forge and replay.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from fakes.patreon.state import CampaignState, Directory
from fakes.patreon.webhooks import FakeWebhook, WebhookRegistry, deliver, delivery_document, sign


@dataclass(frozen=True, slots=True)
class Delivery:
    """What became of one event at one webhook: `status` 0 means unreachable or, with `queued`, held while paused."""

    webhook_id: str
    status: int
    text: str
    queued: bool = False


class WebhookControl:
    """Mixed into `FakePatreon`; the attributes below are set by its constructor."""

    state: CampaignState
    directory: Directory
    webhooks: WebhookRegistry
    _session: aiohttp.ClientSession | None
    _tasks: set[asyncio.Task[Any]]

    @property
    def api_base(self) -> str:  # pragma: no cover - FakePatreon defines it
        raise NotImplementedError

    def add_webhook(
        self, uri: str, triggers: Iterable[str], secret: str | None = None, *, campaign_id: str | None = None
    ) -> FakeWebhook:
        """A hook made by hand (as in the portal) on the default campaign or `campaign_id`."""
        campaign = self.state if campaign_id is None else self.directory.campaigns[campaign_id]
        return self.webhooks.add(uri, list(triggers), campaign.campaign_id, secret)

    def sign(self, body: bytes, secret: str) -> str:
        return sign(body, secret)

    def render_member_webhook_body(self, trigger: str, user_id: str, campaign_id: str | None = None) -> bytes:
        """The body a real delivery carries (the trigger goes in the header, as with Patreon; a v1 `pledges:*`
        trigger gets the v1 pledge body), for the user's membership of the default campaign or `campaign_id`."""
        campaign = self.state if campaign_id is None else self.directory.campaigns[campaign_id]
        member_id = campaign.member_by_user.get(user_id)
        if member_id is None:
            raise KeyError(f"user {user_id!r} has never had a membership of campaign {campaign.campaign_id}")
        doc = delivery_document(campaign, campaign.members[member_id], trigger, self.api_base)
        return json.dumps(doc).encode()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        return self._session

    async def deliver_event(self, trigger: str, user_id: str, *, campaign_id: str | None = None) -> list[Delivery]:
        """Patreon's own path: the event goes to every webhook on the campaign subscribed to `trigger`, each
        signed with its own secret; a paused hook keeps it queued. One `Delivery` per hook, in creation order."""
        campaign = self.state if campaign_id is None else self.directory.campaigns[campaign_id]
        body = self.render_member_webhook_body(trigger, user_id, campaign.campaign_id)
        results: list[Delivery] = []
        for hook in self.webhooks.on_campaign(campaign.campaign_id):
            if trigger not in hook.triggers:
                continue
            if hook.paused:
                hook.queue.append((trigger, body))
                results.append(Delivery(hook.id, 0, "webhook paused; delivery queued", queued=True))
                continue
            status, text = await deliver(
                self._http(), hook, trigger, body, pause_after_failures=self.webhooks.pause_after_failures
            )
            results.append(Delivery(hook.id, status, text))
        return results

    async def send_webhook(
        self,
        trigger: str,
        user_id: str | None,
        *,
        secret: str | None = None,
        uri: str | None = None,
        body_override: bytes | str | Mapping[str, Any] | None = None,
        signature_override: str | None = None,
    ) -> tuple[int, str]:
        """Deliver one event to the first webhook subscribed to `trigger` (or to `uri`); (status, text).

        Status 0 means the receiver was unreachable. A paused webhook queues the event instead of sending. The body
        is the user's membership of the hook's own campaign; `secret` signs with another key (a forgery).
        """
        hook = next((h for h in self.webhooks.hooks.values() if uri is not None and h.uri == uri), None)
        if hook is None and uri is None:
            hook = next(iter(self.webhooks.for_trigger(trigger)), None)
        if hook is None:
            if uri is None:
                raise LookupError(f"no webhook subscribes to {trigger!r}; add_webhook() or pass uri=")
            hook = FakeWebhook("unregistered", uri, [trigger], secret or "unregistered-secret", self.state.id)
        if body_override is None:
            if user_id is None:
                raise ValueError("user_id is needed unless body_override is given")
            campaign_id = hook.campaign_id if hook.campaign_id in self.directory.campaigns else None
            body = self.render_member_webhook_body(trigger, user_id, campaign_id)
        elif isinstance(body_override, bytes):
            body = body_override
        elif isinstance(body_override, str):
            body = body_override.encode()
        else:
            body = json.dumps(body_override).encode()
        signature = signature_override or sign(body, secret or hook.secret)
        if hook.paused:
            hook.queue.append((trigger, body))
            return 0, "webhook paused; delivery queued"
        return await deliver(
            self._http(),
            hook,
            trigger,
            body,
            uri=uri,
            signature=signature,
            pause_after_failures=self.webhooks.pause_after_failures,
        )

    async def flush_webhook_queue(self, webhook_id: str) -> list[tuple[int, str]]:
        """Send a webhook's queued deliveries in order, stopping at the first failure (it stays queued)."""
        hook = self.webhooks.hooks[webhook_id]
        pending, hook.queue = hook.queue, []
        results: list[tuple[int, str]] = []
        for index, (trigger, body) in enumerate(pending):
            status, text = await deliver(
                self._http(), hook, trigger, body, pause_after_failures=self.webhooks.pause_after_failures
            )
            results.append((status, text))
            if not 200 <= status < 300:
                hook.queue.extend(pending[index + 1 :])
                break
        return results

    def schedule_flush(self, hook: FakeWebhook) -> None:
        """What PATCH `paused: false` triggers; `await fake.drain()` to wait for it."""
        task = asyncio.get_running_loop().create_task(self.flush_webhook_queue(hook.id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for background deliveries (queue flushes) to finish."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
