"""Server counters: requests by status, batch sizes, queue depth and latency, as JSON (``GET /metrics.json``) and
in Prometheus' text format (``GET /metrics``, through prometheus-client).

Each server has its own ``CollectorRegistry`` (no process-global state), so two servers in one process (tests,
notebooks) count separately.
"""
from __future__ import annotations

import threading
from collections import Counter, deque
from typing import Callable, Optional

import numpy as np

# Latency buckets (seconds) from one generate call on a laptop CPU to a long queue on a busy GPU.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class ServerMetrics:
    """Thread-safe counters; latencies for the JSON percentiles are kept for the last ``window`` requests."""

    def __init__(self, window: int = 2048):
        self._lock = threading.Lock()
        self.requests_by_status: Counter[int] = Counter()
        self.batch_sizes: Counter[int] = Counter()  # prompts per generate call -> number of calls
        self.prompts_generated = 0
        self.guard_outputs: Counter[str] = Counter()  # outputs by faithfulness-guard status
        self._latencies_ms: deque[float] = deque(maxlen=window)
        self._prometheus: Optional[dict] = None  # built on first use: prometheus-client is the serving extra

    def record_request(self, status: int, latency_ms: float) -> None:
        with self._lock:
            self.requests_by_status[status] += 1
            self._latencies_ms.append(latency_ms)
            if self._prometheus is not None:
                self._prometheus["requests"].labels(status=str(status)).inc()
                self._prometheus["latency"].observe(latency_ms / 1000)

    def record_batch(self, n_prompts: int) -> None:
        with self._lock:
            self.batch_sizes[n_prompts] += 1
            self.prompts_generated += n_prompts
            if self._prometheus is not None:
                self._prometheus["batch"].observe(n_prompts)

    def record_guard(self, statuses) -> None:
        """Count outputs by their faithfulness-guard status (ok, resampled, kept_input, ...)."""
        with self._lock:
            self.guard_outputs.update(statuses)
            if self._prometheus is not None:
                for status in statuses:
                    self._prometheus["guard"].labels(status=status).inc()

    def enable_prometheus(self, queue_depth: Callable[[], int], in_flight: Callable[[], int]) -> None:
        """Start the Prometheus collectors (in a registry of this object's own); gauges read the batcher."""
        from prometheus_client import CollectorRegistry, Counter as PCounter, Gauge, Histogram

        registry = CollectorRegistry(auto_describe=True)
        collectors = {
            "registry": registry,
            "requests": PCounter("beautifulprompt_requests", "Answered /v1/ requests by HTTP status.",
                                 ["status"], registry=registry),
            "latency": Histogram("beautifulprompt_request_latency_seconds", "Latency of answered /v1/ requests.",
                                 buckets=LATENCY_BUCKETS, registry=registry),
            "batch": Histogram("beautifulprompt_batch_size_prompts", "Raw prompts per generate call.",
                               buckets=BATCH_BUCKETS, registry=registry),
            "guard": PCounter("beautifulprompt_guard_outputs", "Outputs by faithfulness-guard status.",
                              ["status"], registry=registry),
        }
        Gauge("beautifulprompt_queue_depth", "Requests waiting for the model.",
              registry=registry).set_function(queue_depth)
        Gauge("beautifulprompt_in_flight_prompts", "Prompts in the generate call running now.",
              registry=registry).set_function(in_flight)
        with self._lock:
            self._prometheus = collectors

    def prometheus_text(self) -> tuple[str, str]:
        """(exposition text, content type) of this server's registry."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        if self._prometheus is None:
            raise RuntimeError("enable_prometheus() was not called on this ServerMetrics.")
        return generate_latest(self._prometheus["registry"]).decode("utf-8"), CONTENT_TYPE_LATEST

    def snapshot(self, queue_depth: int) -> dict:
        with self._lock:
            latencies = np.asarray(self._latencies_ms, dtype=float)
            n_batches = sum(self.batch_sizes.values())
            return {
                "requests_total": sum(self.requests_by_status.values()),
                "requests_by_status": {str(k): v for k, v in sorted(self.requests_by_status.items())},
                "prompts_generated": self.prompts_generated,
                "guard_outputs": dict(sorted(self.guard_outputs.items())),
                "batches": n_batches,
                "batch_size_histogram": {str(k): v for k, v in sorted(self.batch_sizes.items())},
                "mean_batch_size": self.prompts_generated / n_batches if n_batches else 0.0,
                "queue_depth": queue_depth,
                "latency_ms": {
                    "count": int(latencies.size),
                    "p50": float(np.percentile(latencies, 50)) if latencies.size else None,
                    "p99": float(np.percentile(latencies, 99)) if latencies.size else None,
                    "max": float(latencies.max()) if latencies.size else None,
                },
            }
