"""`edgedit serve`: the generator behind an HTTP API, with dynamic batching and a live page."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

import typer

from edgedit.cli.common import command, stderr
from edgedit.contract.deps import require


@command("serve")
def serve_command(
    model: Annotated[Path, typer.Argument(help="An .onnx from `edgedit export`/`quantize`, or a .plan engine.")],
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on; anything but loopback must be asked for.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8000,
    max_batch: Annotated[
        int | None,
        typer.Option("--max-batch", min=1, help="Largest network call (default: the model's or engine's largest)."),
    ] = None,
    max_wait_ms: Annotated[
        float | None,
        typer.Option("--max-wait-ms", min=0.0, max=1000.0, help="How long a request may wait for company."),
    ] = None,
    max_queue: Annotated[
        int, typer.Option("--max-queue", min=1, max=1_000_000, help="Images waiting at most; beyond: 503.")
    ] = 256,
    max_n: Annotated[int, typer.Option("--max-n", min=1, max=4096, help="Images per request at most.")] = 64,
    batching: Annotated[
        bool, typer.Option("--batching/--no-batching", help="Gather concurrent requests into one call.")
    ] = True,
    backend: Annotated[str, typer.Option("--backend", help="auto, onnxruntime or tensorrt.")] = "auto",
    provider: Annotated[str, typer.Option("--provider", help="ONNX Runtime provider: auto, cpu, cuda.")] = "auto",
) -> None:
    """Serve MODEL over HTTP: POST /v1/generate, GET /healthz, /metrics (Prometheus), / (a live page).

    Concurrent requests are batched up to the largest batch the model takes; a full queue answers 503
    with Retry-After. SIGTERM (or Ctrl-C) stops taking requests, finishes those in flight and exits 0.
    """
    require("starlette", extra="serve")
    require("uvicorn", extra="serve")
    from edgedit.serve.app import Limits
    from edgedit.serve.service import DEFAULT_MAX_WAIT_MS, ServeOptions, serve

    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        stderr.print(f"  listening on {host}: reachable from other machines (no authentication)", markup=False)
    options = ServeOptions(
        backend=backend,
        provider=provider,
        max_batch=max_batch,
        max_wait_ms=DEFAULT_MAX_WAIT_MS if max_wait_ms is None else max_wait_ms,
        max_queue_images=max_queue,
        batching=batching,
        limits=Limits(max_n=max_n),
    )
    serve(model, host, port, options, say=lambda text: stderr.print(text, markup=False, highlight=False))
