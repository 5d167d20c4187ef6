"""/metrics in Prometheus' text format (prometheus_client), with the device's RAM and power.

On a Jetson the device numbers come from jtop (jetson-stats) when its service's socket is there
(/run/jtop.sock, mounted into the container by jetson/run.sh), else from a `tegrastats` process
of which only the latest line is kept; elsewhere those gauges are absent.
"""

from __future__ import annotations

import os
import threading
from typing import Any

JTOP_SOCKET = "/run/jtop.sock"


class DeviceStats:
    """The latest RAM (MB) and power per rail (mW) of the board, read in the background."""

    def __init__(self, interval_ms: int = 500):
        self.interval_ms = interval_ms
        self.source: str | None = None
        self._jtop: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._tegrastats = None

    @property
    def latest(self) -> dict[str, Any] | None:
        if self._tegrastats is not None:
            samples = self._tegrastats.samples
            s = samples[-1] if samples else None
            return s and {"ram_used_mb": s.ram_used_mb, "ram_total_mb": s.ram_total_mb, "power_mw": dict(s.power_mw)}
        return self._jtop

    def start(self) -> None:
        if os.path.exists(JTOP_SOCKET):
            try:
                import jtop  # noqa: F401  (jetson-stats: only on a Jetson)

                self.source = "jtop"
                self._thread = threading.Thread(target=self._read_jtop, daemon=True)
                self._thread.start()
                return
            except ImportError:
                pass
        from edgedit.bench.tegrastats import TegrastatsSampler

        sampler = TegrastatsSampler(self.interval_ms, keep=1)  # only the latest: a server runs for weeks
        if sampler.available():
            self.source, self._tegrastats = "tegrastats", sampler.__enter__()

    def stop(self) -> None:
        self._stop.set()
        if self._tegrastats is not None:
            self._tegrastats.__exit__(None, None, None)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _read_jtop(self) -> None:
        from jtop import jtop

        with jtop(interval=self.interval_ms / 1000) as jetson:
            while jetson.ok() and not self._stop.is_set():
                ram = jetson.memory["RAM"]  # KB
                rails = {name: rail["power"] for name, rail in jetson.power["rail"].items()}
                rails["total"] = jetson.power["tot"]["power"]
                self._jtop = {"ram_used_mb": ram["used"] / 1024, "ram_total_mb": ram["tot"] / 1024, "power_mw": rails}


BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """The service's counters in their own registry (one per app: tests run several)."""

    def __init__(self, device: DeviceStats | None = None):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

        disable_created_metrics()  # the *_created series: noise for a dashboard
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("edgedit_requests", "Requests to /v1/generate by HTTP status", ["code"], registry=r)
        self.images = Counter("edgedit_images", "Images generated", registry=r)
        self.queue = Gauge("edgedit_queue_images", "Images waiting for a batch", registry=r)
        self.batch = Histogram("edgedit_batch_images", "Images per network call", buckets=BATCH_BUCKETS, registry=r)
        self.model = Histogram("edgedit_model_seconds", "Seconds per network call", buckets=LATENCY_BUCKETS, registry=r)
        self.latency = Histogram(
            "edgedit_request_seconds",
            "Seconds per request, from arrival to response",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.device = device or DeviceStats()
        self.ram = Gauge("edgedit_device_ram_used_megabytes", "Device RAM in use (shared CPU/GPU)", registry=r)
        self.power = Gauge("edgedit_device_power_milliwatts", "Device power per rail", ["rail"], registry=r)

    def on_batch(self, images: int, seconds: float) -> None:
        self.batch.observe(images)
        self.model.observe(seconds)

    def start(self) -> None:
        self.device.start()

    def stop(self) -> None:
        self.device.stop()

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        latest = self.device.latest
        if latest is not None:
            self.ram.set(latest["ram_used_mb"])
            for rail, mw in latest["power_mw"].items():
                self.power.labels(rail=rail).set(mw)
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
