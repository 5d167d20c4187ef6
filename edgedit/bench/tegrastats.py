"""tegrastats: parse its lines, summarise a window, and sample it alongside a benchmark. Torch-free.

A line (Orin Nano, L4T r36) looks like
  07-14-2025 10:29:36 RAM 2147/7620MB (lfb 2x4MB) SWAP 1476/3810MB (cached 1MB) CPU [0%@729,off,...]
  EMC_FREQ 0%@2133 GR3D_FREQ 62%@612 cpu@47.687C ... VDD_IN 4556mW/4556mW VDD_CPU_GPU_CV 483mW/483mW ...
but fields come and go across releases and modules: no timestamp, `GR3D_FREQ 26%@[306]`, rails
such as `VDD_GPU_SOC` or `VIN_SYS_5V0` (r35 AGX), or `POM_5V_IN 2125/2125` without units (older
Jetsons). Fields are matched one by one; a missing field is "unavailable", never zero, and a line
without the RAM field is counted as malformed and skipped.
Rails are `instant/average` in mW; `VDD_IN` is the module's input power (NVIDIA L4T Developer Guide,
"tegrastats Utility"; Jetson Orin Nano power rails as in the Jetson Linux r36.4 documentation).
"""

from __future__ import annotations

import collections
import contextlib
import math
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from edgedit.contract.errors import EdgeditError
from edgedit.contract.fileio import regular_file
from edgedit.contract.jetson import Stat, TegrastatsSummary

# Numbers have at most 9 digits: a longer one is not a reading, and the line counts as malformed.
RAM = re.compile(r"\bRAM (\d{1,9})/(\d{1,9})MB\b")
SWAP = re.compile(r"\bSWAP (\d{1,9})/(\d{1,9})MB\b")
GR3D = re.compile(r"\bGR3D_FREQ (\d{1,3})%(?:@\[?(\d{1,9})[\],\d]*)?")
EMC = re.compile(r"\bEMC_FREQ (\d{1,3})%(?:@(\d{1,9}))?")
RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d{1,9})(?:mW)?/(\d{1,9})(?:mW)?(?=\s|$)")
TEMP = re.compile(r"\b([A-Za-z0-9_]+)@(-?\d{1,4}(?:\.\d{1,6})?)C\b")
STAMP = re.compile(r"^(\d\d-\d\d-\d{4} \d\d:\d\d:\d\d)")
LONG_NUMBER = re.compile(r"\d{10}")
# The rail that measures the whole module, by preference (Orin: VDD_IN; older Jetsons: POM_5V_IN).
TOTAL_RAILS = ("VDD_IN", "POM_5V_IN", "VIN_SYS_5V0")


@dataclass
class Sample:
    ram_used_mb: int
    ram_total_mb: int
    swap_used_mb: int | None = None
    gr3d_pct: int | None = None
    gr3d_mhz: int | None = None
    emc_pct: int | None = None
    power_mw: dict[str, int] = field(default_factory=dict)  # instantaneous, per rail
    temperature_c: dict[str, float] = field(default_factory=dict)
    timestamp: datetime | None = None
    host_time: float | None = None  # when a live sampler read the line (monotonic seconds)


def parse_line(line: str) -> Sample | None:
    """A Sample, or None for a line that is not a tegrastats report."""
    ram = RAM.search(line)
    if not ram or LONG_NUMBER.search(line):
        return None
    sample = Sample(int(ram.group(1)), int(ram.group(2)))
    if swap := SWAP.search(line):
        sample.swap_used_mb = int(swap.group(1))
    if gr3d := GR3D.search(line):
        sample.gr3d_pct = int(gr3d.group(1))
        sample.gr3d_mhz = int(gr3d.group(2)) if gr3d.group(2) else None
    if emc := EMC.search(line):
        sample.emc_pct = int(emc.group(1))
    sample.power_mw = {name: int(now) for name, now, _ in RAIL.findall(line) if name not in ("RAM", "SWAP")}
    sample.temperature_c = {name: float(t) for name, t in TEMP.findall(line)}
    if stamp := STAMP.search(line):
        with contextlib.suppress(ValueError):
            sample.timestamp = datetime.strptime(stamp.group(1), "%m-%d-%Y %H:%M:%S")
    return sample


def _stats(values: list[float]) -> Stat | None:
    return Stat(mean=sum(values) / len(values), peak=max(values)) if values else None


def sample_period_s(samples: list[Sample], interval_ms: float | None) -> float | None:
    """Seconds between samples: the given interval, else from host times or timestamps."""
    if interval_ms:
        return interval_ms / 1000
    hosts = [s.host_time for s in samples if s.host_time is not None]
    if len(hosts) >= 2:
        return (hosts[-1] - hosts[0]) / (len(hosts) - 1)
    stamps = [s.timestamp for s in samples if s.timestamp is not None]
    if len(stamps) >= 2 and stamps[-1] > stamps[0]:
        return (stamps[-1] - stamps[0]).total_seconds() / (len(stamps) - 1)
    return None


def summarize(lines: Iterable[str] | list[Sample], interval_ms: float | None = None) -> TegrastatsSummary:
    """Summary of a window of tegrastats output (lines, or samples from a live sampler)."""
    samples: list[Sample] = []
    bad = 0
    for item in lines:
        if isinstance(item, Sample):
            samples.append(item)
            continue
        if not item.strip():
            continue
        parsed = parse_line(item)
        if parsed is None:
            bad += 1
        else:
            samples.append(parsed)
    rails = sorted({name for s in samples for name in s.power_mw})
    power = {rail: _stats([s.power_mw[rail] for s in samples if rail in s.power_mw]) for rail in rails}
    period = sample_period_s(samples, interval_ms)
    total = next((r for r in TOTAL_RAILS if r in power), None)
    energy = None
    if total and period:  # each sample stands for one period of power
        energy = sum(s.power_mw[total] for s in samples if total in s.power_mw) / 1000 * period
    return TegrastatsSummary(
        samples=len(samples),
        bad_lines=bad,
        period_s=period,
        duration_s=period * len(samples) if period else None,
        ram_used_mb=_stats([s.ram_used_mb for s in samples]),
        ram_total_mb=samples[0].ram_total_mb if samples else None,
        swap_used_mb=_stats([s.swap_used_mb for s in samples if s.swap_used_mb is not None]),
        gr3d_pct=_stats([s.gr3d_pct for s in samples if s.gr3d_pct is not None]),
        emc_pct=_stats([s.emc_pct for s in samples if s.emc_pct is not None]),
        power_mw=power,
        energy_rail=total,
        energy_j=energy,
    )


class TegrastatsSampler:
    """Runs `tegrastats --interval MS` in the background and keeps its samples with host times.

    Use as a context manager around the measured work; `summary()` covers the samples taken
    inside the window. `available()` is False off a Jetson (or without tegrastats in a container).
    """

    def __init__(self, interval_ms: int = 100, executable: str = "tegrastats", keep: int | None = None):
        """`keep`: only the latest samples (a server that runs for weeks); all of them by default."""
        self.interval_ms = interval_ms
        self.executable = shutil.which(executable) or (executable if "/" in executable else None)
        self.samples: collections.deque[Sample] = collections.deque(maxlen=keep)
        self.bad_lines = 0
        self._process: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None

    def available(self) -> bool:
        return self.executable is not None

    def __enter__(self) -> TegrastatsSampler:
        if not self.available():
            return self
        self._process = subprocess.Popen(
            [self.executable, "--interval", str(self.interval_ms)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def wait(self, count: int = 1, timeout_s: float = 5.0) -> bool:
        """Until `count` samples have arrived (tegrastats prints its first line after one interval)."""
        deadline = time.monotonic() + timeout_s
        while self.available() and len(self.samples) < count and time.monotonic() < deadline:
            time.sleep(min(0.01, self.interval_ms / 1000))
        return len(self.samples) >= count

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            sample = parse_line(line)
            if sample is None:
                self.bad_lines += 1 if line.strip() else 0
                continue
            sample.host_time = time.monotonic()
            self.samples.append(sample)

    def __exit__(self, *exc) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
            if self._reader is not None:
                self._reader.join(timeout=5)

    def summary(self) -> TegrastatsSummary | None:
        if not self.available():
            return None
        return summarize(list(self.samples)).model_copy(update={"bad_lines": self.bad_lines})


def summarize_log(path: str | os.PathLike, interval_ms: float | None = None) -> TegrastatsSummary:
    """`edgedit tegrastats`: a log file's summary; refuses a missing file or one without tegrastats lines."""
    path = regular_file(path)
    if interval_ms is not None and not (math.isfinite(interval_ms) and 0 < interval_ms <= 3_600_000):
        raise EdgeditError(f"`interval_ms` must be a number of milliseconds in (0, 3600000] (got {interval_ms})")
    with open(path, errors="replace") as lines:  # streamed: a day's log is hundreds of MB
        summary = summarize(lines, interval_ms)
    if not summary.samples:
        raise EdgeditError(f"{path}: no tegrastats lines found ({summary.bad_lines} other lines)")
    return summary
