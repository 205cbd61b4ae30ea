"""Server counters for ``GET /metrics``: requests by status, batch sizes, queue depth and latency percentiles."""
from __future__ import annotations

import threading
from collections import Counter, deque

import numpy as np


class ServerMetrics:
    """Thread-safe counters; latencies are kept for the last ``window`` answered requests."""

    def __init__(self, window: int = 2048):
        self._lock = threading.Lock()
        self.requests_by_status: Counter[int] = Counter()
        self.batch_sizes: Counter[int] = Counter()  # prompts per generate call -> number of calls
        self.prompts_generated = 0
        self._latencies_ms: deque[float] = deque(maxlen=window)

    def record_request(self, status: int, latency_ms: float) -> None:
        with self._lock:
            self.requests_by_status[status] += 1
            self._latencies_ms.append(latency_ms)

    def record_batch(self, n_prompts: int) -> None:
        with self._lock:
            self.batch_sizes[n_prompts] += 1
            self.prompts_generated += n_prompts

    def snapshot(self, queue_depth: int) -> dict:
        with self._lock:
            latencies = np.asarray(self._latencies_ms, dtype=float)
            n_batches = sum(self.batch_sizes.values())
            return {
                "requests_total": sum(self.requests_by_status.values()),
                "requests_by_status": {str(k): v for k, v in sorted(self.requests_by_status.items())},
                "prompts_generated": self.prompts_generated,
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
