"""Patreon webhooks, the receiving side: check the signature, record the event, answer.

Each campaign has its own URL (`/patreon/webhook/<campaign id>`) and secret; the legacy `/patreon/webhook` takes
the `.env` campaign's secret only. A body whose signature matches no secret of the addressed campaign is refused
401 before it is parsed, and so is a delivery for a campaign that isn't connected: one answer for both, so the
endpoint doesn't tell a stranger which campaigns this install serves (and a disconnected campaign's leftover hook
fails at Patreon, which pauses it). Every candidate secret is compared (at least one), in constant time.

A delivery is only a hint of *which* member changed. The signature is checked over the raw bytes, in constant
time, before anything is parsed; the hint is recorded in SQLite and Patreon gets its answer at once. Applying
it (re-fetching the member) is `bot.sync.webhook_apply`'s job, in the background.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.store import WEBHOOK_LAST_SEEN, Store
from bot.store.queues import IGNORED

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
MEMBER_TRIGGERS = frozenset(
    {
        "members:create",
        "members:update",
        "members:delete",
        "members:pledge:create",
        "members:pledge:update",
        "members:pledge:delete",
    }
)
#: API v1 triggers: a webhook made before v2 still sends these (a v1 `pledge` body). Nothing in them is applied.
LEGACY_TRIGGERS = frozenset({"pledges:create", "pledges:update", "pledges:delete"})
LEGACY_ADVICE = (
    "edit this webhook in the Patreon portal (https://www.patreon.com/portal/registration/register-webhooks): "
    "replace the v1 pledges:* triggers with members:create, members:update, members:delete and "
    "members:pledge:create/update/delete"
)


def sign(body: bytes, secret: str) -> str:
    """Patreon's `X-Patreon-Signature`: lowercase hex HMAC-MD5 of the raw body, keyed with the webhook secret."""
    return hmac.new(secret.encode(), body, hashlib.md5).hexdigest()


def signature_matches(body: bytes, header: str | None, secret: str) -> bool:
    if not header or not secret:
        return False
    return hmac.compare_digest(sign(body, secret).encode(), header.strip().lower().encode("utf-8", "replace"))


#: Compared when a campaign has no secret, so an unknown campaign costs the same time as a wrong signature.
_NO_SECRET = "no campaign has this secret"


def matches_any(body: bytes, header: str | None, secrets: Sequence[str]) -> bool:
    """Whether the signature is any of `secrets`' (each compared, no early exit; never true with no secret)."""
    results = [signature_matches(body, header, secret) for secret in (list(secrets) or [_NO_SECRET])]
    return bool(secrets) and any(results)


@dataclass(frozen=True)
class WebhookHint:
    """What a delivery says about which member changed; never trusted for the member's state."""

    resource_type: str | None = None
    member_id: str | None = None
    patreon_user_id: str | None = None
    campaign_id: str | None = None


class NotJsonApi(ValueError):
    """The body is not JSON, or not a JSON:API document (an object with `data`)."""


def read_hint(body: bytes) -> WebhookHint:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise NotJsonApi(f"body is not JSON ({error})") from None
    except RecursionError:  # nesting deeper than Python's parser goes: not a Patreon document
        raise NotJsonApi("body is nested too deeply to be a JSON:API document") from None
    if not isinstance(doc, dict) or "data" not in doc:
        raise NotJsonApi("body is not a JSON:API document (no top-level data)")
    data = doc["data"]
    if data is None or isinstance(data, list):
        return WebhookHint()
    if not isinstance(data, dict):
        raise NotJsonApi("data is neither a resource, a list nor null")
    return WebhookHint(
        resource_type=_text(data.get("type")),
        member_id=_text(data.get("id")),
        patreon_user_id=_related_id(data, "user"),
        campaign_id=_related_id(data, "campaign"),
    )


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return text or None


def _related_id(resource: Mapping[str, Any], name: str) -> str | None:
    relationships = resource.get("relationships")
    related = relationships.get(name) if isinstance(relationships, Mapping) else None
    linkage = related.get("data") if isinstance(related, Mapping) else None
    return _text(linkage.get("id")) if isinstance(linkage, Mapping) else None


@dataclass(frozen=True)
class WebhookAnswer:
    status: int
    body: dict[str, Any]


class WebhookReceiver:
    """The HTTP side: what to answer to one delivery. Records before answering; applies nothing itself."""

    def __init__(
        self,
        secrets: str | Callable[[str | None], Sequence[str]],
        store: Store,
        clock: Callable[[], datetime],
        on_recorded: Callable[[], None] = lambda: None,
        *,
        legacy_campaign: Callable[[], str | None] = lambda: None,
    ) -> None:
        """`secrets(campaign_id)`: the secrets a delivery addressed to that campaign may carry (None: the legacy
        URL); a plain string is the one secret of a single-campaign receiver. It must not touch the database:
        it runs before the signature is checked. `legacy_campaign()`: the campaign the legacy URL's deliveries
        are recorded for (the `.env` one's id, None while unknown)."""
        self._secrets = secrets if callable(secrets) else (lambda campaign_id, only=secrets: [only])
        self.store = store
        self.clock = clock
        self.on_recorded = on_recorded
        self._legacy_campaign = legacy_campaign
        self._legacy_warned: set[str] = set()

    async def receive(
        self, trigger: str | None, signature: str | None, body: bytes, campaign_id: str | None = None
    ) -> WebhookAnswer:
        """One delivery to the campaign's URL (`campaign_id`), or to the legacy URL (None)."""
        if not matches_any(body, signature, self._secrets(campaign_id)):
            log.warning(
                "webhook refused for campaign %s: %s signature (%d bytes)",
                campaign_id or "(legacy URL)",
                "bad" if signature else "missing",
                len(body),
            )
            return WebhookAnswer(401, {"error": "bad or missing X-Patreon-Signature"})
        addressed = campaign_id if campaign_id is not None else self._legacy_campaign()
        if (trigger or "").strip() in LEGACY_TRIGGERS:
            return self._legacy((trigger or "").strip())
        try:
            hint = read_hint(body)
        except NotJsonApi as error:
            log.warning("webhook refused: %s", error)
            return WebhookAnswer(400, {"error": str(error)})
        trigger = (trigger or "").strip() or "(none)"
        applicable = trigger in MEMBER_TRIGGERS and hint.resource_type == "member" and hint.member_id is not None
        now = self.clock()
        event_id = await self.store.record_webhook_event(
            received_at=now,
            trigger=trigger[:100],
            resource_type=hint.resource_type,
            member_id=hint.member_id,
            patreon_user_id=hint.patreon_user_id,
            campaign_id=hint.campaign_id,
            body_sha256=hashlib.sha256(body).hexdigest(),
            applicable=applicable,
            seen_fact=(self._seen_fact(addressed), now.isoformat(timespec="seconds")),
            addressed_campaign_id=addressed or "",
        )
        if applicable:
            log.info("webhook %s member=%s recorded as event %d", trigger, hint.member_id, event_id)
            self.on_recorded()
            return WebhookAnswer(202, {"status": "accepted", "event": event_id})
        why = "unknown trigger" if trigger not in MEMBER_TRIGGERS else "no member to apply (a test delivery?)"
        log.info("webhook %s recorded as event %d and ignored: %s", trigger, event_id, why)
        return WebhookAnswer(200, {"status": IGNORED, "event": event_id, "reason": why})

    def _seen_fact(self, addressed: str | None) -> str:
        """`WEBHOOK_LAST_SEEN` of the `.env` campaign (the legacy name), else per campaign."""
        if not addressed or addressed == self._legacy_campaign():
            return WEBHOOK_LAST_SEEN
        return f"{WEBHOOK_LAST_SEEN}:{addressed}"

    def _legacy(self, trigger: str) -> WebhookAnswer:
        """A signed API v1 delivery: answered 2xx so Patreon stops retrying it, warned about once per trigger, and
        neither recorded nor applied (its `pledge` body says nothing the bot can re-read)."""
        if trigger not in self._legacy_warned:
            self._legacy_warned.add(trigger)
            log.warning("webhook %s is an API v1 delivery and was ignored; %s", trigger, LEGACY_ADVICE)
        else:
            log.debug("webhook %s (API v1) ignored again", trigger)
        return WebhookAnswer(200, {"status": IGNORED, "reason": f"API v1 trigger; {LEGACY_ADVICE}"})
