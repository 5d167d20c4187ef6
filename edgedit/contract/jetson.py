"""Facts about the Jetson we run on: module, L4T release, power mode and clock pinning; and the record
of what tegrastats measured over a window. Torch-free.

Every probe tolerates absence (not a Jetson, a container without the host's files, no root)
and returns None for what it cannot read; nothing here ever changes the device's settings.
All file reads take a `root` so tests can point them at a fake filesystem.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from pydantic import Field

from edgedit.contract.schema import OpenRecord, Record

L4T_RELEASE_FILE = "etc/nv_tegra_release"
DEVICE_TREE_MODEL = "proc/device-tree/model"
NVPMODEL_STATUS = "var/lib/nvpmodel/status"  # written by nvpmodel: "pmode:0002"
NVPMODEL_CONF = "etc/nvpmodel.conf"  # "< POWER_MODEL ID=2 NAME=MAXN_SUPER >"
GPU_DEVFREQ_GLOB = "sys/class/devfreq/17000000.*"  # the Orin iGPU (17000000.gpu on r36, .ga10b on r35)
CPU0_FREQ = "sys/devices/system/cpu/cpu0/cpufreq"


def _read(root: Path, relative: str) -> str | None:
    try:
        return (root / relative).read_text(errors="replace")
    except OSError:
        return None


def device_model(root: Path = Path("/")) -> str | None:
    """e.g. 'NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super'."""
    text = (_read(root, DEVICE_TREE_MODEL) or "").strip("\x00 \n")
    return text or None


def l4t_release(root: Path = Path("/")) -> str | None:
    """From '# R36 (release), REVISION: 4.3, GCID: ...' -> '36.4.3'."""
    text = _read(root, L4T_RELEASE_FILE)
    match = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text or "")
    return f"{match.group(1)}.{match.group(2)}" if match else None


def is_jetson(root: Path = Path("/")) -> bool:
    model = device_model(root) or ""
    return "jetson" in model.lower() or l4t_release(root) is not None


def parse_nvpmodel_query(output: str) -> dict | None:
    """`nvpmodel -q` prints 'NV Power Mode: MAXN_SUPER' and then the mode id on its own line."""
    match = re.search(r"NV Power Mode:\s*(\S+)\s*\n\s*(\d+)", output)
    return {"name": match.group(1), "id": int(match.group(2))} if match else None


def nvpmodel_mode(root: Path = Path("/"), run_nvpmodel: bool = True) -> dict | None:
    """The active power mode {'name', 'id'}: from `nvpmodel -q`, else from nvpmodel's state files
    (what a container sees when the host's /var/lib/nvpmodel and /etc/nvpmodel.conf are mounted)."""
    if run_nvpmodel and shutil.which("nvpmodel"):
        try:
            done = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=10)
            mode = parse_nvpmodel_query(done.stdout)
            if mode:
                return mode
        except (OSError, subprocess.SubprocessError):
            pass
    status = re.search(r"pmode:(\d+)", _read(root, NVPMODEL_STATUS) or "")
    if not status:
        return None
    mode_id = int(status.group(1))
    conf = _read(root, NVPMODEL_CONF) or ""
    name = re.search(rf"^<\s*POWER_MODEL\s+ID={mode_id}\s+NAME=([^\s>]+)", conf, re.MULTILINE)
    return {"name": name.group(1) if name else None, "id": mode_id}


def _pinned(folder: Path, low: str, high: str) -> bool | None:
    try:
        return int((folder / low).read_text()) == int((folder / high).read_text())
    except (OSError, ValueError):
        return None


def jetson_clocks_enabled(root: Path = Path("/")) -> bool | None:
    """True when clocks are pinned at their maximum, as `jetson_clocks` leaves them (minimum
    frequency raised to the maximum for the GPU and CPU); None when unreadable."""
    gpus = sorted(root.glob(GPU_DEVFREQ_GLOB))
    gpu = _pinned(gpus[0], "min_freq", "max_freq") if gpus else None
    cpu = _pinned(root / CPU0_FREQ, "scaling_min_freq", "scaling_max_freq")
    known = [state for state in (gpu, cpu) if state is not None]
    return all(known) if known else None


class PowerMode(OpenRecord):
    name: str | None = Field(max_length=256)  # None: its id is not in nvpmodel.conf
    id: int = Field(ge=0)


class JetsonFacts(OpenRecord):
    """What `probe` found, as bench records and engine sidecars carry it; None where unreadable."""

    model: str | None = Field(max_length=256)
    l4t: str | None = Field(max_length=64)
    nvpmodel: PowerMode | None
    jetson_clocks: bool | None


def probe(root: Path = Path("/"), run_nvpmodel: bool = True) -> JetsonFacts | None:
    """Everything above, or None when this is not a Jetson."""
    if not is_jetson(root):
        return None
    return JetsonFacts(
        model=device_model(root),
        l4t=l4t_release(root),
        nvpmodel=PowerMode.model_validate(mode) if (mode := nvpmodel_mode(root, run_nvpmodel)) else None,
        jetson_clocks=jetson_clocks_enabled(root),
    )


class Stat(Record):
    mean: float
    peak: int | float  # an integer reading stays one


class TegrastatsSummary(OpenRecord):
    """A window of tegrastats samples (edgedit.bench.tegrastats summarises them; bench records and engine
    sidecars carry it): RAM, GPU and memory-controller load, power per rail (mW) and the energy on the
    module's total rail. A field is None where the lines did not carry it."""

    samples: int = Field(ge=0)
    bad_lines: int = Field(ge=0)  # lines that were not tegrastats reports
    period_s: float | None = Field(gt=0)
    duration_s: float | None = Field(ge=0)
    ram_used_mb: Stat | None
    ram_total_mb: int | None = Field(ge=0)
    swap_used_mb: Stat | None
    gr3d_pct: Stat | None
    emc_pct: Stat | None
    power_mw: dict[str, Stat | None]
    energy_rail: str | None  # the rail measuring the whole module (TOTAL_RAILS)
    energy_j: float | None = Field(ge=0)
