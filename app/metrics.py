"""Prometheus metrics of one application instance: its own registry, so several apps never collide.

Requests and LINSTOR calls are counted as they happen (a labelled counter and histogram each, ~2 us);
the cache's hits, misses and age and the full syncs are read from the resolver and the cache service only
when /metrics is scraped (a custom collector), so the lookup path pays nothing for them.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.registry import Collector

from app.cache_service import SyncStats
from app.linstor import LinstorError, LinstorOperationalError
from app.resolver import CacheCounters, CacheState

log = logging.getLogger("linstor_names.linstor")

CONTENT_TYPE = CONTENT_TYPE_LATEST
# requests are mostly cache lookups (ms), copies wait for clones (minutes): the buckets span both
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0, 600.0)


@dataclass(frozen=True, slots=True)
class CacheView:
    """What the cache collector reads at scrape time: the resolver's counters and state, the sync stats."""

    counters: CacheCounters
    state: CacheState
    syncs: SyncStats


def error_kind(exc: LinstorError) -> str:
    """A short label for an error class: LinstorNotFound -> not_found, LinstorTimeout -> timeout."""
    name = type(exc).__name__.removeprefix("Linstor") or "error"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class Metrics:
    """The registry and metric objects of one app; also the LINSTOR client's call observer."""

    def __init__(self, cache: Callable[[], CacheView | None]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "linstor_names_http_requests",
            "HTTP requests answered, by route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "linstor_names_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            ["method", "route"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.linstor_calls = Counter(
            "linstor_names_linstor_requests",
            "LINSTOR API calls (retries included in one call), by endpoint template.",
            ["method", "endpoint"],
            registry=self.registry,
        )
        self.linstor_seconds = Histogram(
            "linstor_names_linstor_request_duration_seconds",
            "Time of a LINSTOR API call, retries included, by endpoint template.",
            ["method", "endpoint"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.linstor_errors = Counter(
            "linstor_names_linstor_errors",
            "LINSTOR API calls that failed, by endpoint template and kind of error.",
            ["method", "endpoint", "kind"],
            registry=self.registry,
        )
        self.registry.register(CacheCollector(cache))
        # label sets are route templates and statuses: a bounded set
        self._per_request: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        # and LINSTOR calls' are methods and endpoint templates: bounded too
        self._per_call: dict[tuple[str, str], tuple[Counter, Histogram]] = {}

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered HTTP request."""
        key = (method, route, status)
        children = self._per_request.get(key)
        if children is None:  # labels() takes a lock and builds a key: once per label set, not per request
            children = (
                self.requests.labels(method, route, str(status)),
                self.request_seconds.labels(method, route),
            )
            self._per_request[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def linstor_call(self, method: str, endpoint: str, seconds: float, error: LinstorError | None) -> None:
        """Count one LINSTOR call (app.linstor.transport.CallObserver); an operational failure is logged."""
        key = (method, endpoint)
        children = self._per_call.get(key)
        if children is None:  # as in request(): labels() once per label set, not per call
            children = (
                self.linstor_calls.labels(method, endpoint),
                self.linstor_seconds.labels(method, endpoint),
            )
            self._per_call[key] = children
        children[0].inc()
        children[1].observe(seconds)
        if error is not None:
            self.linstor_errors.labels(method, endpoint, error_kind(error)).inc()
            # request errors (not found, exists) are answers; an unreachable or failing LINSTOR is news
            if isinstance(error, LinstorOperationalError):
                log.warning(
                    "LINSTOR %s %s failed: %s",
                    method,
                    endpoint,
                    error.message,
                    extra={"endpoint": endpoint, "kind": error_kind(error)},
                )

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)


class CacheCollector(Collector):
    """Cache hits, misses and age, and full syncs, read at scrape time (nothing before the lifespan ran)."""

    def __init__(self, cache: Callable[[], CacheView | None]) -> None:
        self._cache = cache

    def describe(self) -> list[object]:
        """Nothing up front: the families depend on whether the app has started."""
        return []

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | SummaryMetricFamily]:
        """The cache's families, when the app is running."""
        view = self._cache()
        if view is None:
            return
        counters, state, syncs = view.counters, view.state, view.syncs
        yield CounterMetricFamily(
            "linstor_names_cache_hits", "Lookups and lists answered from the cache.", value=counters.hits
        )
        yield CounterMetricFamily(
            "linstor_names_cache_misses",
            "Lookups and lists the cache could not answer.",
            value=counters.misses,
        )
        if counters.last_sync is not None:
            # this process's last full sync: in trust mode, how old a cached answer may be at most
            yield GaugeMetricFamily(
                "linstor_names_cache_age_seconds",
                "Seconds since this process's last successful full sync of the cache.",
                value=max(0.0, time.time() - counters.last_sync),
            )
        yield GaugeMetricFamily(
            "linstor_names_cache_warm", "1 once a full sync of this process succeeded.", value=int(state.warm)
        )
        yield SummaryMetricFamily(
            "linstor_names_cache_sync_duration_seconds",
            "Time of the full syncs (resyncs and rebuilds) of the cache, failed ones included.",
            count_value=syncs.count,
            sum_value=syncs.seconds,
        )
        yield CounterMetricFamily(
            "linstor_names_cache_sync_failures", "Full syncs of the cache that failed.", value=syncs.failures
        )
        yield GaugeMetricFamily(
            "linstor_names_cache_sync_failing", "Full syncs failed in a row, now.", value=state.failures
        )
