"""Dynamic batching: requests that arrive together share one ``generate`` call on the model.

One worker task takes the oldest waiting request, then collects more for up to ``max_wait_ms`` (or until
``max_batch_size`` prompts), groups them by generation options, and runs each group as one predictor call
in a single model thread. While the model is busy new requests queue up, so under load batches fill by
themselves. Requests with a ``seed`` run alone: a shared sampling stream would make their output depend
on their neighbours. The queue is bounded; a full queue raises :class:`QueueFullError` (HTTP 429).
Hand-written because the pieces (asyncio queue, one executor) are a few lines and the grouping rule is ours.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from easynlp_bp.serving.metrics import ServerMetrics

logger = logging.getLogger(__name__)


class QueueFullError(RuntimeError):
    """The bounded request queue is full; the client should retry later (HTTP 429)."""


@dataclass
class _Job:
    prompts: list[str]
    overrides: dict
    future: asyncio.Future
    group: str = field(init=False)

    def __post_init__(self) -> None:
        # Seeded jobs get a group of their own (see the module docstring).
        self.group = f"seeded:{id(self)}" if "seed" in self.overrides else json.dumps(self.overrides, sort_keys=True)


class DynamicBatcher:
    """Queue beautify jobs and run them in batches on ``predictor`` (one model call at a time).

    Example (inside a running event loop):
        >>> batcher = DynamicBatcher(predictor, max_batch_size=16, max_wait_ms=10, max_queue_size=64)
        >>> batcher.start()
        >>> outputs = await batcher.submit(["1 girl"], {"num_return_sequences": 5})
    """

    def __init__(self, predictor, max_batch_size: int, max_wait_ms: float, max_queue_size: int,
                 metrics: Optional[ServerMetrics] = None):
        self.predictor = predictor
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_queue_size = max_queue_size
        self.metrics = metrics or ServerMetrics()
        self._queue: Optional[asyncio.Queue] = None
        self._carry: Optional[_Job] = None  # a job that did not fit the last batch; it opens the next one
        self._worker: Optional[asyncio.Task] = None
        self.in_flight = 0  # prompts in the generate call running now
        # One thread owns the model: generate calls never overlap, so GPU memory and RNG stay predictable.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")

    @property
    def queue_depth(self) -> int:
        return (self._queue.qsize() if self._queue else 0) + (self._carry is not None)

    def start(self) -> None:
        """Start the worker task on the running event loop."""
        self._queue = asyncio.Queue(maxsize=self.max_queue_size)
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="dynamic-batcher")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=True)

    async def submit(self, prompts: list[str], overrides: dict) -> list:
        """Queue one request and wait for its results (one ``PromptResult`` per prompt).

        Raises:
            QueueFullError: ``max_queue_size`` requests are already waiting.
            ValueError: the predictor rejected the options or inputs.
        """
        if self._queue is None:
            raise RuntimeError("DynamicBatcher.start() was not called.")
        job = _Job(list(prompts), dict(overrides), asyncio.get_running_loop().create_future())
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull as err:
            raise QueueFullError(f"{self.max_queue_size} requests are waiting (max_queue_size).") from err
        return await job.future

    async def run_exclusive(self, function: Callable[[], Any]) -> Any:
        """Run ``function`` on the model thread (e.g. image generation), between batches."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, function)

    async def _next_job(self, timeout: Optional[float]) -> Optional[_Job]:
        if self._carry is not None:
            job, self._carry = self._carry, None
            return job
        if timeout is None:
            return await self._queue.get()
        if not self._queue.empty():
            return self._queue.get_nowait()
        if timeout <= 0:
            return None
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:
            return None

    async def _collect(self) -> list[_Job]:
        """The next batch: the oldest job plus whatever arrives within max_wait, up to max_batch_size prompts."""
        batch = [await self._next_job(None)]
        n_prompts = len(batch[0].prompts)
        deadline = time.monotonic() + self.max_wait_s
        while n_prompts < self.max_batch_size:
            job = await self._next_job(max(0.0, deadline - time.monotonic()))
            if job is None:
                break
            if n_prompts + len(job.prompts) > self.max_batch_size:
                self._carry = job
                break
            batch.append(job)
            n_prompts += len(job.prompts)
        return [job for job in batch if not job.future.done()]  # drop jobs whose client timed out

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            groups: dict[str, list[_Job]] = {}
            for job in batch:
                groups.setdefault(job.group, []).append(job)
            for jobs in groups.values():
                prompts = [p for job in jobs for p in job.prompts]
                overrides = {**jobs[0].overrides, "batch_size": max(self.max_batch_size, len(prompts))}
                self.in_flight = len(prompts)
                try:
                    outputs = await loop.run_in_executor(self._executor, predict_results, self.predictor, prompts,
                                                         overrides)
                except Exception as err:  # noqa: BLE001 - the error goes back to each waiting client
                    logger.exception("Batch of %d prompts failed.", len(prompts))
                    for job in jobs:
                        if not job.future.done():
                            job.future.set_exception(err)
                    continue
                finally:
                    self.in_flight = 0
                self.metrics.record_batch(len(prompts))
                self.metrics.record_guard([status for result in outputs for status in result.statuses])
                start = 0
                for job in jobs:
                    if not job.future.done():
                        job.future.set_result(outputs[start : start + len(job.prompts)])
                    start += len(job.prompts)


def predict_results(predictor, prompts: list[str], overrides: dict) -> list:
    """The predictor's :class:`~easynlp_bp.prompting.guard.PromptResult` per prompt (a predictor with only
    ``predict`` gets its outputs wrapped, each output ``unchecked``)."""
    if hasattr(predictor, "predict_results"):
        return predictor.predict_results(prompts, overrides)
    from easynlp_bp.prompting.guard import PromptResult

    return [PromptResult(list(out), ["unchecked"] * len(out)) for out in predictor.predict(prompts, overrides)]
