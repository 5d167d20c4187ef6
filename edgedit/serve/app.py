"""The HTTP service: a Starlette app (ASGI, served by uvicorn) around one loaded model.

    POST /v1/generate   {"seed": 7} | {"seed": 7, "n": 4} | {"seeds": [1, 5, 9]}, optional "class"
                        (conditional models; default seed % classes, as `edgedit sample`) and
                        "format": "png" (default) | "npy".
                        One PNG image: image/png. Several PNGs: application/json
                        {"format": "png", "seeds": [...], "classes": [...] | null, "images": [base64 PNG, ...]}.
                        "npy": one .npy of float32 (n, C, H, W) in [-1, 1], for any n.
                        Headers: X-Edgedit-Seeds (comma list), X-Edgedit-Batch (images in the network
                        call that made them), X-Edgedit-Model-Ms (that call's milliseconds),
                        X-Edgedit-Server-Ms (from the request's arrival to its response built).
    GET  /healthz       200 {"status": "ok", ...} while serving; 503 while draining.
    GET  /metrics       Prometheus text: requests by code, images, queue depth, batch-size and
                        latency histograms, model seconds, device RAM and power (jtop or tegrastats).
    GET  /v1/stats      the live page's numbers (JSON): images/s, p50/p99, batch sizes in use.
    GET  /              the live page (plain HTML and JavaScript shipped in the package).

A bad request is a 400 with one line; a full queue a 503 with Retry-After. Starlette is the ASGI
toolkit FastAPI is built on: routing, requests and responses are all this service needs, without
FastAPI's dependency-injection and OpenAPI layers (or their import time on a Jetson).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import io
import json
import time
from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edgedit.serve.batcher import Draining, DynamicBatcher, Overloaded

MAX_SEED = 2**63 - 1  # seeds are int64, as `edgedit sample --npz` stores them


@dataclass(frozen=True)
class Limits:
    max_n: int = 64  # images per request
    max_body_bytes: int = 16 << 10  # a request is a few numbers
    body_timeout_s: float = 5.0  # a client that does not finish its body in this long is dropped


class GenerateRequest(BaseModel):
    """The body of POST /v1/generate."""

    model_config = ConfigDict(extra="forbid", strict=True)  # "7" is not a seed: JSON says what it means

    seed: Annotated[int, Field(ge=0, le=MAX_SEED)] | None = None
    seeds: Annotated[list[Annotated[int, Field(ge=0, le=MAX_SEED)]], Field(min_length=1)] | None = None
    n: Annotated[int, Field(ge=1)] | None = None
    class_label: int | None = Field(default=None, ge=0, alias="class")
    format: Literal["png", "npy"] = "png"

    @model_validator(mode="after")
    def _one_way_of_naming_seeds(self) -> GenerateRequest:
        if (self.seed is None) == (self.seeds is None):
            raise ValueError("give either 'seed' (with an optional 'n') or 'seeds'")
        if self.seeds is not None and self.n is not None:
            raise ValueError("'n' goes with 'seed'; 'seeds' lists every seed")
        if self.seed is not None and self.seed + (self.n or 1) - 1 > MAX_SEED:
            raise ValueError(f"seeds end beyond {MAX_SEED}")
        return self

    def seed_list(self) -> list[int]:
        return self.seeds if self.seeds is not None else list(range(self.seed, self.seed + (self.n or 1)))


class BadRequest(Exception):
    """One line for the client, sent as a 400."""


def parse_request(body: bytes, limits: Limits, num_classes: int) -> GenerateRequest:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadRequest(f"the body is not JSON ({err.__class__.__name__}: {str(err)[:80]})") from None
    try:
        request = GenerateRequest.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise BadRequest(f"{where}: {first['msg']}") from None
    count = len(request.seed_list())
    if count > limits.max_n:
        raise BadRequest(f"{count} images asked for; this server makes at most {limits.max_n} per request")
    if request.class_label is not None:
        if num_classes == 0:
            raise BadRequest("class: this model is unconditional; leave 'class' out")
        if request.class_label >= num_classes:
            raise BadRequest(f"class: {request.class_label} is outside this model's classes 0..{num_classes - 1}")
    return request


def image_png(image: np.ndarray) -> bytes:
    """One (C, H, W) image in [-1, 1] as an 8-bit PNG, converted as `edgedit sample` converts."""
    from edgedit.runtime.images import png_bytes, to_uint8

    return png_bytes(to_uint8(image[None])[0])


def npy_bytes(images: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(images, np.float32), allow_pickle=False)
    return buffer.getvalue()


class Recent:
    """The last `size` request latencies and completion times: the live page's p50/p99 and rate."""

    def __init__(self, size: int = 2000):
        self.done: collections.deque[tuple[float, float, int]] = collections.deque(maxlen=size)  # (t, s, images)

    def add(self, seconds: float, images: int) -> None:
        self.done.append((time.monotonic(), seconds, images))

    def summary(self, window_s: float = 10.0) -> dict[str, Any]:
        now = time.monotonic()
        recent = [(t, s, n) for t, s, n in self.done if now - t <= window_s]
        latencies = np.array([s for _, s, _ in recent]) * 1e3
        span = (now - recent[0][0]) if len(recent) > 1 else window_s
        return {
            "window_s": window_s,
            "requests": len(recent),
            "images_per_s": sum(n for *_, n in recent) / max(span, 1e-3) if recent else 0.0,
            "p50_ms": float(np.percentile(latencies, 50)) if len(latencies) else None,
            "p99_ms": float(np.percentile(latencies, 99)) if len(latencies) else None,
        }


def create_app(service: Any, batcher: DynamicBatcher, limits: Limits, metrics: Any) -> Any:
    """The Starlette app. `service` describes the model (name, title, num_classes, max_batch);
    `metrics` (serve.telemetry.Metrics) counts and renders /metrics."""
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    recent = Recent()
    page = resources.files("edgedit.serve").joinpath("page.html").read_text()

    def refuse(status: int, message: str, **headers: str) -> Response:
        metrics.requests.labels(code=str(status)).inc()
        return PlainTextResponse(message + "\n", status_code=status, headers=headers)

    async def generate(request) -> Response:
        started = time.perf_counter()
        if request.headers.get("content-type", "application/json").split(";")[0].strip() != "application/json":
            return refuse(415, "the body must be JSON (Content-Type: application/json)")
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limits.max_body_bytes):
            return refuse(413, f"the body is over {limits.max_body_bytes} bytes; a request is a few numbers")
        try:
            body = await asyncio.wait_for(_read_body(request, limits.max_body_bytes), limits.body_timeout_s)
        except asyncio.TimeoutError:
            return refuse(408, f"the body did not arrive within {limits.body_timeout_s:g} s")
        except BadRequest as err:
            return refuse(413, str(err))
        try:
            req = parse_request(body, limits, service.num_classes)
        except BadRequest as err:
            return refuse(400, str(err))
        seeds = req.seed_list()
        labels = [req.class_label] * len(seeds) if req.class_label is not None else None
        try:
            images, batch_images, model_ms = await batcher.submit(seeds, labels)
        except Overloaded as err:
            return refuse(503, str(err), **{"Retry-After": str(err.retry_after_s)})
        except Draining:
            return refuse(503, "shutting down; retry on another instance", **{"Retry-After": "1"})
        except Exception as err:  # the model failed: the server stays up, this request hears why
            return refuse(500, f"the model failed on this batch: {type(err).__name__}: {str(err)[:200]}")
        headers = {
            "X-Edgedit-Seeds": ",".join(map(str, seeds)),
            "X-Edgedit-Batch": str(batch_images),
            "X-Edgedit-Model-Ms": f"{model_ms:.3f}",
        }
        if req.format == "npy":
            response = Response(npy_bytes(images), media_type="application/x-npy", headers=headers)
        elif len(seeds) == 1:
            response = Response(image_png(images[0]), media_type="image/png", headers=headers)
        else:
            classes = labels if labels is not None else service.default_labels(seeds)
            container = {
                "format": "png",
                "seeds": seeds,
                "classes": classes,
                "images": [base64.b64encode(image_png(image)).decode() for image in images],
            }
            response = JSONResponse(container, headers=headers)
        seconds = time.perf_counter() - started
        response.headers["X-Edgedit-Server-Ms"] = f"{seconds * 1e3:.3f}"  # arrival to response built
        recent.add(seconds, len(seeds))
        metrics.requests.labels(code="200").inc()
        metrics.images.inc(len(seeds))
        metrics.latency.observe(seconds)
        return response

    async def healthz(request) -> Response:
        status = 503 if batcher.draining else 200
        body = {"status": "draining" if batcher.draining else "ok", "model": service.name, "backend": service.title}
        return JSONResponse(body, status_code=status)

    async def stats(request) -> Response:
        return JSONResponse(
            {
                **recent.summary(),
                "batches": {str(k): v for k, v in sorted(batcher.stats.batches.items())},
                "queue_images": batcher.queued_images,
                "max_batch": batcher.max_batch,
                "batching": batcher.batching,
                "model": service.name,
                "backend": service.title,
                "num_classes": service.num_classes,
            }
        )

    async def prometheus(request) -> Response:
        metrics.queue.set(batcher.queued_images)
        text, media_type = metrics.render()
        return Response(text, media_type=media_type)

    async def index(request) -> Response:
        return HTMLResponse(page)

    @asynccontextmanager
    async def lifespan(app):
        batcher.start()
        metrics.start()
        try:
            yield
        finally:  # SIGTERM: uvicorn has stopped taking connections and finished its requests
            await batcher.drain()
            metrics.stop()

    routes = [
        Route("/v1/generate", generate, methods=["POST"]),
        Route("/v1/stats", stats, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
        Route("/", index, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


async def _read_body(request, limit: int) -> bytes:
    """The body, refused as soon as it grows past `limit` (a missing or false Content-Length too)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(f"the body is over {limit} bytes; a request is a few numbers")
        chunks.append(chunk)
    return b"".join(chunks)
