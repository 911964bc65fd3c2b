"""``/metrics``: the daemon in the Prometheus text format (prometheus_client).

Read at each scrape: runs by state and samples recorded (``runs.list``), restarts per
actor (the tree), the bus's published, lost and queued messages, the event store's
commits. Kept by the gateway as they happen: request latency per route, requests by
status, open streams, emergency stops (every ``emergency_stop`` trip an instrument
reports, whoever asked for it: HTTP, the socket, the TUI), and the sample rate over the
last 10 s (from a lossy bus subscription: it never slows the daemon).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from runtime import topics
from runtime.actor import READ_SCOPE
from runtime.api.dispatch import ask_actor
from runtime.errors import ApiError
from runtime.messages import SafetyTripped, SampleBatch

if TYPE_CHECKING:
    from runtime.api_keys import Caller
    from runtime.http.gateway import Gateway

__all__ = ["Metrics", "scrape"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_STATES = ("idle", "running", "paused", "completed", "stopped", "aborted", "failed", "interrupted")
_RATE_WINDOW_S = 10.0


class _Live(Collector):
    """What is read from the daemon at each scrape."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        gw = self.metrics.gateway
        runs = GaugeMetricFamily("galvana_runs", "Runs by state", labels=["state"])
        samples = CounterMetricFamily("galvana_samples_recorded", "Samples recorded over every run")
        try:
            records: Any = ask_actor(
                gw.resolve, "runs", "list", (), {}, scopes=(READ_SCOPE,), timeout=10.0
            )
        except ApiError:
            records = []
        for state in _STATES:
            runs.add_metric([state], sum(1 for r in records if r.get("state") == state))
        samples.add_metric([], sum(int(r.get("samples", 0)) for r in records))
        yield runs
        yield samples
        yield GaugeMetricFamily(
            "galvana_sample_rate_hz",
            f"Samples per second published over the last {_RATE_WINDOW_S:g} s",
            value=self.metrics.sample_rate(),
        )
        restarts = CounterMetricFamily(
            "galvana_actor_restarts", "Restarts of each supervised actor", labels=["path"]
        )
        try:
            tree: Any = ask_actor(
                gw.resolve, "", "tree", (), {}, scopes=(READ_SCOPE,), timeout=10.0
            )
        except ApiError:
            tree = []
        for node in _walk(tree):
            restarts.add_metric([str(node.get("path", ""))], int(node.get("restarts", 0)))
        yield restarts
        bus = gw.bus.statistics()
        yield CounterMetricFamily(
            "galvana_bus_published", "Messages published on the event bus", value=bus.published
        )
        yield CounterMetricFamily(
            "galvana_bus_lost",
            "Messages dropped for slow lossy subscribers (the bus lag)",
            value=sum(s.lost for s in bus.subscriptions),
        )
        yield GaugeMetricFamily(
            "galvana_bus_queued_max",
            "The longest subscriber queue now (messages)",
            value=max((s.queued for s in bus.subscriptions), default=0),
        )
        store = gw.store.statistics()
        yield CounterMetricFamily(
            "galvana_events_committed",
            "Events made durable in the event log",
            value=store.events_committed,
        )
        yield GaugeMetricFamily(
            "galvana_event_store_pending",
            "Events queued for the log's writer",
            value=store.pending,
        )
        yield GaugeMetricFamily(
            "galvana_http_streams",
            "Run streams open now (SSE and WebSocket)",
            value=gw.counters.streams,
        )
        estops = CounterMetricFamily(
            "galvana_estops", "Emergency stops instruments reported", labels=["instrument"]
        )
        for instrument, count in sorted(self.metrics.estops.items()):
            estops.add_metric([instrument], count)
        yield estops
        yield CounterMetricFamily(
            "galvana_http_estop_requests",
            "Emergency stops asked for over HTTP",
            value=gw.counters.estops,
        )


def _walk(nodes: Any) -> Iterator[dict[str, Any]]:
    for node in nodes if isinstance(nodes, list) else []:
        if isinstance(node, dict):
            yield node
            yield from _walk(node.get("children"))


class Metrics:
    """The gateway's metrics registry and the counters it keeps."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.registry = CollectorRegistry(auto_describe=False)
        self.latency = Histogram(
            "galvana_http_request_duration_seconds",
            "Time to answer an API request (streams: to their first byte)",
            ["route", "method"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.requests = Counter(
            "galvana_http_requests",
            "API requests answered, by route, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.registry.register(_Live(self))
        self.estops: dict[str, int] = {}
        self._samples: deque[tuple[float, int]] = deque()
        self._sub = gateway.bus.subscribe(
            topics.EVERY_RUN_SAMPLES, mode="lossy", maxsize=10_000, on_ready=None
        )
        self._trips = gateway.bus.subscribe(
            topics.EVERY_INSTRUMENT_STATE, mode="lossy", maxsize=1_000
        )

    def observe(self, route: str, method: str, status: int, began: float) -> None:
        """Count one answered request and its latency."""
        self.latency.labels(route, method).observe(time.perf_counter() - began)
        self.requests.labels(route, method, str(status)).inc()

    def _drain(self) -> None:
        now = time.monotonic()
        for _topic, message in self._sub.drain():
            if isinstance(message, SampleBatch):
                self._samples.append((now, len(message)))
        while self._samples and self._samples[0][0] < now - _RATE_WINDOW_S:
            self._samples.popleft()
        for _topic, message in self._trips.drain():
            if isinstance(message, SafetyTripped) and message.limit == "emergency_stop":
                self.estops[message.instrument_id] = self.estops.get(message.instrument_id, 0) + 1

    async def run(self) -> None:
        """Drain the bus subscriptions twice a second (so samples are counted when they
        arrive, not when scraped), until cancelled."""
        import trio  # noqa: PLC0415 - the gateway's loop

        while True:
            self._drain()
            await trio.sleep(0.5)

    def sample_rate(self) -> float:
        """Samples per second over the last window."""
        self._drain()
        return sum(n for _, n in self._samples) / _RATE_WINDOW_S

    def text(self) -> bytes:
        """The metrics now, in the text format (blocking: call it from a worker thread)."""
        self._drain()
        return generate_latest(self.registry)

    def close(self) -> None:
        """Drop the bus subscriptions."""
        self._sub.close()
        self._trips.close()


async def scrape(gw: Gateway, request: Request, caller: Caller, query: None) -> Response:
    """``GET /metrics``."""
    body = await gw.read(partial(gw.metrics.text))
    return Response(body, media_type=CONTENT_TYPE)
