"""Dynamic batching: concurrent requests gathered into one network call.

Requests wait in a bounded queue (counted in images, so memory is bounded whatever the request
sizes). One worker takes the oldest request and, for at most `max_wait_s` after it arrived, adds
the next ones while their images fit `max_batch` (the largest batch the model or engine profile
takes); then one `run(seeds, labels)` call makes them all, in a single thread beside the event loop
(ONNX Runtime and TensorRT release the GIL). A request larger than `max_batch` runs alone, in chunks.
With `batching=False` every request runs alone: the comparison the load test makes.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

Run = Callable[[list[int], list[int] | None], np.ndarray]  # (seeds, labels or None) -> (n, C, H, W) float32


class Overloaded(Exception):
    """The queue is full: the client should retry after `retry_after_s`."""

    def __init__(self, retry_after_s: int):
        super().__init__(f"the queue is full; retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s


class Draining(Exception):
    """The server is shutting down: no new work is taken."""


@dataclass
class Job:
    seeds: list[int]
    labels: list[int] | None
    future: asyncio.Future
    arrived: float = field(default_factory=time.monotonic)


@dataclass
class Stats:
    """What the metrics and the live page show, updated by the worker."""

    batches: collections.Counter = field(default_factory=collections.Counter)  # images per call -> calls
    model_seconds: float = 0.0
    images: int = 0


class DynamicBatcher:
    def __init__(self, run: Run, max_batch: int, max_wait_s: float, max_queue_images: int, batching: bool = True):
        if max_batch < 1 or max_wait_s < 0 or max_queue_images < 1:
            raise ValueError("max_batch >= 1, max_wait_s >= 0 and max_queue_images >= 1")
        self.run, self.max_batch, self.max_wait_s = run, max_batch, max_wait_s
        self.max_queue_images, self.batching = max_queue_images, batching
        self.queue: collections.deque[Job] = collections.deque()
        self.queued_images = 0
        self.stats = Stats()
        self.draining = False
        self.on_batch: Callable[[int, float], None] | None = None  # (images, seconds) of each call
        self._arrived = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgedit-serve")
        self._worker: asyncio.Task | None = None
        self._last_seconds = 0.05  # the last call's seconds: how long an overloaded client should wait

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._work())

    async def submit(self, seeds: list[int], labels: list[int] | None) -> tuple[np.ndarray, int, float]:
        """(the images of `seeds` with `labels`, the images in the call that made them, its ms)."""
        if self.draining:
            raise Draining()
        if self.queued_images + len(seeds) > self.max_queue_images:
            queued_calls = max(1, self.queued_images // self.max_batch)
            raise Overloaded(max(1, round(queued_calls * self._last_seconds + 0.5)))
        job = Job(seeds, labels, asyncio.get_running_loop().create_future())
        self.queue.append(job)
        self.queued_images += len(seeds)
        self._idle.clear()
        self._arrived.set()
        return await job.future

    async def drain(self) -> None:
        """Take no new work, finish every queued request, then stop the worker."""
        self.draining = True
        await self._idle.wait()
        if self._worker is not None:
            self._worker.cancel()
        self._executor.shutdown(wait=True)

    def _take(self) -> list[Job]:
        first = self.queue.popleft()
        jobs, images = [first], len(first.seeds)
        while self.batching and self.queue and images + len(self.queue[0].seeds) <= self.max_batch:
            job = self.queue.popleft()
            jobs.append(job)
            images += len(job.seeds)
        self.queued_images -= images
        return jobs

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self.queue:
                self._idle.set()
                self._arrived.clear()
                await self._arrived.wait()
                continue
            first = self.queue[0]
            if self.batching and len(first.seeds) < self.max_batch:
                # Wait for company until the oldest request has waited max_wait_s, or the batch is full.
                while sum(len(j.seeds) for j in self.queue) < self.max_batch:
                    left = first.arrived + self.max_wait_s - time.monotonic()
                    if left <= 0:
                        break
                    self._arrived.clear()
                    try:
                        await asyncio.wait_for(self._arrived.wait(), left)
                    except asyncio.TimeoutError:
                        break
            jobs = self._take()
            seeds = [s for j in jobs for s in j.seeds]
            labelled = any(j.labels is not None for j in jobs)
            labels = [label for j in jobs for label in (j.labels or [None] * len(j.seeds))] if labelled else None
            started = time.perf_counter()
            try:
                images = await loop.run_in_executor(self._executor, self.run, seeds, labels)
            except Exception as err:  # the model failed on this batch: each of its requests hears why
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(err)
                continue
            seconds = time.perf_counter() - started
            self._last_seconds = seconds
            self.stats.batches[len(seeds)] += 1
            self.stats.model_seconds += seconds
            self.stats.images += len(seeds)
            if self.on_batch is not None:
                self.on_batch(len(seeds), seconds)
            first_row = 0
            for job in jobs:
                if not job.future.done():  # a client that went away leaves its future cancelled
                    job.future.set_result((images[first_row : first_row + len(job.seeds)], len(seeds), seconds * 1e3))
                first_row += len(job.seeds)
