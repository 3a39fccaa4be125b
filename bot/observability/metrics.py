"""The bot's Prometheus metrics, in a registry of its own (never the library's global one), so several bots in one
process (the tests, the benches) each count only their own work.

Counts that already live elsewhere (Patreon answers in the Patreon client, Discord role calls in the Discord
adapter, the queue and the links in the store, the last refresh in the refresh service) are read when Prometheus
scrapes, through the callables handed to the constructor; only webhook results (by the web app) and links made and
removed (by the linking service, through hooks bot/services.py wires) are counted here.

What is never a label: a token, an e-mail, a Discord user id, a Patreon user id. Server (guild) ids label the queue
gauges: an operator must see which server is behind, a guild id is visible to every member of that server and
names no person, and the number of label values is bounded by the servers the bot is in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

PREFIX = "patreon_role_sync"
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

#: How a link is made (the store's link sources) and who removes one: the only label values the counters take.
LINK_WAYS = ("oauth", "admin", "auto")
UNLINK_WHO = ("patron", "admin", "undo")

#: A webhook's HTTP answer (bot/web/app.py and bot/web/webhook_receiver.py decide it) → the result it is counted as.
WEBHOOK_RESULTS = {202: "accepted", 200: "ignored", 400: "malformed", 401: "bad_signature", 413: "too_large"}


def webhook_result(status: int) -> str:
    return WEBHOOK_RESULTS.get(status, "error" if status >= 500 else f"http_{status}")


@dataclass(frozen=True)
class RefreshFigures:
    """What the last finished refresh says, read from its report."""

    ok: bool
    finished_at: datetime
    duration_seconds: float
    members: Mapping[str, int]


class MetricsStore(Protocol):
    """The store's counting queries the metrics need (bot.store.stats.StatsStore)."""

    async def role_queue_depths(self) -> dict[int, tuple[int, datetime | None]]:
        """Per server: pending role jobs, and when the oldest of them was queued."""
        ...

    async def link_counts(self) -> dict[str, int]: ...

    async def webhook_event_counts(self) -> dict[str, int]: ...


class _CountsCollector(Collector):
    """A counter family whose values are kept elsewhere and read at scrape time."""

    def __init__(self, name: str, documentation: str, label: str, source: Callable[[], Mapping[str, int]]) -> None:
        self._name, self._documentation, self._label, self._source = name, documentation, label, source

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(self._name, self._documentation, labels=[self._label])
        for value, count in sorted(self._source().items()):
            family.add_metric([value], count)
        yield family


class BotMetrics:
    def __init__(
        self,
        store: MetricsStore,
        clock: Callable[[], datetime],
        *,
        patreon_responses: Callable[[], Mapping[str, int]],
        discord_role_calls: Callable[[], Mapping[str, int]],
        last_refresh: Callable[[], RefreshFigures | None],
    ) -> None:
        """`patreon_responses`: Patreon HTTP answers by status ("error" for a timeout or a dropped connection);
        `discord_role_calls`: role PUT/DELETE answers by status, 429s included; `last_refresh`: the last refresh."""
        self.registry = CollectorRegistry(auto_describe=True)
        self._store = store
        self._clock = clock
        self._last_refresh = last_refresh
        r = self.registry
        self.webhooks = Counter(f"{PREFIX}_webhooks", "Patreon webhook deliveries by result", ["result"], registry=r)
        r.register(_CountsCollector(
            f"{PREFIX}_patreon_requests", "Patreon API answers by HTTP status (each retry counts)", "status",
            patreon_responses,
        ))
        r.register(_CountsCollector(
            f"{PREFIX}_discord_role_calls", "Discord member-role calls by HTTP status (429s that discord.py retried "
            "count as 429)", "status", discord_role_calls,
        ))
        self.queue_depth = Gauge(
            f"{PREFIX}_role_queue_depth", "Members waiting for a role change, per server", ["guild"], registry=r
        )
        self.queue_oldest = Gauge(
            f"{PREFIX}_role_queue_oldest_seconds", "How long the oldest waiting role job has waited, per server",
            ["guild"], registry=r,
        )
        self.webhook_events = Gauge(
            f"{PREFIX}_webhook_events", "Recorded webhook events by state", ["state"], registry=r
        )
        self.links = Gauge(f"{PREFIX}_links", "Linked patrons by how the link was made", ["source"], registry=r)
        self.links_made = Counter(
            f"{PREFIX}_links_made", "Links made (a new Patreon account for a Discord user) by how", ["how"], registry=r
        )
        self.unlinks = Counter(f"{PREFIX}_unlinks", "Links removed by who asked", ["who"], registry=r)
        for how in LINK_WAYS:  # every way shows from the first scrape, at 0, so a rate() has a start
            self.links_made.labels(how)
        for who in UNLINK_WHO:
            self.unlinks.labels(who)
        self.refresh_duration = Gauge(
            f"{PREFIX}_last_refresh_duration_seconds", "How long the last finished refresh took", registry=r
        )
        self.refresh_finished = Gauge(
            f"{PREFIX}_last_refresh_finished_timestamp_seconds", "When the last refresh finished (Unix time)",
            registry=r,
        )
        self.refresh_ok = Gauge(f"{PREFIX}_last_refresh_ok", "1 if the last refresh succeeded, else 0", registry=r)
        self.refresh_members = Gauge(
            f"{PREFIX}_last_refresh_members", "Members the last refresh listed, planned and found changed", ["kind"],
            registry=r,
        )

    def count_webhook(self, status: int) -> None:
        self.webhooks.labels(webhook_result(status)).inc()

    def count_link(self, how: str) -> None:
        """`how`: one of LINK_WAYS; anything else is counted as "other", so a label never carries free text."""
        self.links_made.labels(how if how in LINK_WAYS else "other").inc()

    def count_unlink(self, who: str) -> None:
        self.unlinks.labels(who if who in UNLINK_WHO else "other").inc()

    async def render(self) -> bytes:
        """The text exposition, with the store's figures read now (one cheap GROUP BY each)."""
        await self._read_store()
        self._read_refresh()
        return bytes(generate_latest(self.registry))

    async def _read_store(self) -> None:
        now = self._clock()
        depths = await self._store.role_queue_depths()
        links = await self._store.link_counts()
        events = await self._store.webhook_event_counts()
        _replace(self.queue_depth, {str(guild): pending for guild, (pending, _) in depths.items()})
        _replace(self.queue_oldest, {
            str(guild): max(0.0, (now - oldest).total_seconds()) if oldest else 0.0
            for guild, (_, oldest) in depths.items()
        })
        _replace(self.links, links)
        _replace(self.webhook_events, events)

    def _read_refresh(self) -> None:
        figures = self._last_refresh()
        if figures is None:
            return
        self.refresh_duration.set(figures.duration_seconds)
        self.refresh_finished.set(figures.finished_at.timestamp())
        self.refresh_ok.set(1 if figures.ok else 0)
        _replace(self.refresh_members, figures.members)


def _replace(gauge: Gauge, values: Mapping[str, float]) -> None:
    """Set a labelled gauge to exactly these values: a server whose queue emptied disappears."""
    gauge.clear()
    for label, value in values.items():
        gauge.labels(label).set(value)


RenderMetrics = Callable[[], Awaitable[bytes]]
