"""The model behind the service, and the server's life: load (a model that fails stops startup with
one line), serve on 127.0.0.1 unless told otherwise, drain on SIGTERM and exit 0."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field

import numpy as np

from edgedit.serve.app import Limits, create_app
from edgedit.serve.batcher import DynamicBatcher
from edgedit.serve.telemetry import Metrics

# How long a request may wait for company, from benchmarks/serve_load.py on the shipped student
# (docs/serve.md): 0 ms served the most images at 8 clients, with the lowest p50 and p99 (1093 img/s
# against 984, 915 and 637 at 1, 2 and 5 ms). Batching still happens: requests that arrive while a
# call runs share the next one; a wait only delays a request that has no one to wait for.
DEFAULT_MAX_WAIT_MS = 0.0


@dataclass(frozen=True, kw_only=True)
class ServeOptions:
    backend: str = "auto"
    provider: str = "auto"
    max_batch: int | None = None  # default: the largest batch the model or engine profile takes
    max_wait_ms: float = DEFAULT_MAX_WAIT_MS
    max_queue_images: int = 256
    batching: bool = True
    limits: Limits = field(default_factory=Limits)


class Service:
    """A loaded model and the one function the batcher calls: seeds (+ labels) -> images."""

    def __init__(self, model: str | os.PathLike, options: ServeOptions):
        from edgedit.runtime.backends import RunOptions, load_backend
        from edgedit.runtime.samplers import check_request

        self.backend = load_backend(str(model), options.backend, RunOptions(provider=options.provider))
        meta = self.backend.meta
        self.name, self.title = os.path.basename(str(model)), self.backend.title
        self.num_classes = meta.config.num_classes if meta.config.class_conditional else 0
        largest = meta.batch["max"]
        self.max_batch = min(options.max_batch or largest, largest)
        self._shape = meta.inputs[0].concrete(1)[1:]
        check_request(range(options.limits.max_n), self.max_batch, None, self._shape)  # memory for the largest

    def default_labels(self, seeds: list[int]) -> list[int] | None:
        from edgedit.runtime.samplers import default_labels

        return default_labels(seeds, self.num_classes).tolist() if self.num_classes else None

    def run(self, seeds: list[int], labels: list[int | None] | None) -> np.ndarray:
        """The images of `seeds`, as `edgedit sample --batch len(seeds)` makes them (a request without a
        class gets seed % classes, as there)."""
        from edgedit.runtime.samplers import generate

        if labels is not None:
            defaults = self.default_labels(seeds)
            labels = [d if label is None else label for label, d in zip(labels, defaults, strict=True)]
        elif self.num_classes:
            labels = self.default_labels(seeds)
        return generate(self.backend, seeds, labels, batch=min(len(seeds), self.max_batch))


def make_app(model: str | os.PathLike, options: ServeOptions):
    service = Service(model, options)
    batcher = DynamicBatcher(
        service.run, service.max_batch, options.max_wait_ms / 1000, options.max_queue_images, options.batching
    )
    metrics = Metrics()
    batcher.on_batch = metrics.on_batch
    return create_app(service, batcher, options.limits, metrics), service


def serve(model: str | os.PathLike, host: str, port: int, options: ServeOptions, say=print) -> None:
    """Load the model (errors stop here, before any socket), then serve until SIGTERM or Ctrl-C:
    uvicorn stops accepting, in-flight requests finish, the queue drains, exit 0."""
    import uvicorn

    app, service = make_app(model, options)
    say(
        f"serving {service.name} ({service.title}, batches up to {service.max_batch}"
        + (
            ", no batching"
            if not options.batching
            else f", waiting up to {options.max_wait_ms:g} ms for company"
            if options.max_wait_ms
            else ", batching what arrives while a call runs"
        )
        + ")"
        f" on http://{host}:{port}/"
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        # connections beyond this get 503 from uvicorn itself: memory stays bounded under a flood
        limit_concurrency=4 * options.max_queue_images,
        timeout_graceful_shutdown=30,
        timeout_keep_alive=5,
    )
    # uvicorn drains on SIGTERM, then raises the signal again so that the process ends by it (status
    # 143); the handler it then finds is this one: the drain was the answer, the exit status is 0.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        uvicorn.Server(config).run()
    finally:
        signal.signal(signal.SIGTERM, previous)
