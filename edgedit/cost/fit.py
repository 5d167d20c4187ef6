"""Calibration of the device latency model: measurements, the fit, its errors and the estimates it gives.

A calibration point is a measured TensorRT latency of a known network on a known Jetson mode. The
shipped points (data/public-measurements.json) are public measurements, each with its source;
`edgedit models --calibrate` adds the user's own `edgedit bench` records from a Jetson. The fit
minimises the squared log ratio predicted / measured over the 'fit' points (scipy's
least_squares), and its quality is reported per point and leave-one-out: each point predicted by a
fit without it. An estimate is a point and a range: the point times the 10th and 90th percentile
of the leave-one-out ratios measured / predicted.

Which calibration is in force: the shipped data/fit.json, or a file the user names
(`edgedit --fit FILE ...`, a fit written by `edgedit models --calibrate ... --calibration-out FILE`;
`using_fit` in Python). Nothing is read from the home folder or the environment.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from edgedit.contract.config import DiTConfig
from edgedit.contract.errors import EdgeditError
from edgedit.contract.hardware import DEVICES, POWER_MODES, DeviceSpec
from edgedit.contract.quantization import PrecisionPlan
from edgedit.contract.schema import Record, load_json, loads, parse
from edgedit.cost import kernels as K
from edgedit.cost.latency import (
    ESTIMATE_PLAN,
    PRECISIONS,
    Constants,
    Workload,
    int8_plan,
    network_ms,
    unfuses_attention,
)

POINTS_FORMAT = "edgedit.latency-points/1"
FIT_FORMAT = "edgedit.latency-fit/1"
# CPU enqueue cost per kernel without a CUDA graph. Not identifiable from the public points (none
# is launch-bound), so taken from a public trtexec log on an Orin Nano (TensorRT 8.5, original
# clocks): YOLOX-S "Enqueue Time ... median = 1.19873 ms" for its ~90 kernels (83 convolutions,
# pooling, upsampling, decoding), i.e. ~13 us per kernel
# (https://github.com/Idein/aicast_jetson_benchmark/blob/main/jetson/README.md). A device run with
# and without --cuda-graph refits it.
LAUNCH_US = 13.0
FITTED = ("tensor_efficiency", "conv_efficiency", "int8_efficiency", "bandwidth_efficiency", "kernel_floor_us")
BOUNDS = {
    "tensor_efficiency": (0.02, 1.0),
    "conv_efficiency": (0.02, 1.0),
    "int8_efficiency": (0.02, 1.0),
    "bandwidth_efficiency": (0.1, 1.0),
    "kernel_floor_us": (0.1, 200.0),
    "launch_us": (0.5, 200.0),
}
RANGE_PERCENTILES = (10, 90)


#################################################################################
#                            Networks and points                                #
#################################################################################


class DiTNetwork(Record):
    family: Literal["dit"]
    config: dict[str, Any]


class ViTNetwork(Record):
    family: Literal["vit"]
    depth: int = Field(ge=1, le=512)
    width: int = Field(ge=1, le=65536)
    heads: int = Field(ge=1, le=1024)
    mlp_hidden: int = Field(ge=1, le=1 << 20)
    patch: int = Field(ge=1, le=1024)
    image: int | None = Field(default=None, ge=1, le=16384)
    tokens: int | None = Field(default=None, ge=1, le=1 << 20)  # when the patch grid is not square
    cls_token: bool = True
    head_outputs: int = Field(default=0, ge=0, le=1 << 20)
    rope: bool = False
    temporal_patch: int = Field(default=1, ge=1, le=16)
    merger: dict[str, int] | None = None  # a vision tower's patch-merger MLP(s): tokens, in, hidden, out, count


class ResNetNetwork(Record):
    family: Literal["resnet"]
    depth: Literal[18, 34, 50, 101]
    image: int = Field(default=224, ge=32, le=4096)
    classes: int = Field(default=1000, ge=1, le=100000)


class YoloV8Network(Record):
    family: Literal["yolov8"]
    scale: Literal["n", "s", "m", "l", "x"]
    image: int = Field(default=640, ge=32, le=4096)
    classes: int = Field(default=80, ge=1, le=10000)


class GemmNetwork(Record):
    family: Literal["gemm"]
    m: int = Field(ge=1, le=1 << 16)
    n: int = Field(ge=1, le=1 << 16)
    k: int = Field(ge=1, le=1 << 16)


Network = Annotated[
    DiTNetwork | ViTNetwork | ResNetNetwork | YoloV8Network | GemmNetwork, Field(discriminator="family")
]


class Point(Record):
    id: str = Field(min_length=1)
    use: Literal["fit", "check"]
    network: Network
    device: str
    precision: Literal["fp32", "fp16", "int8", "int8-fp32", "best"]
    batch: int = Field(ge=1, le=4096)
    cuda_graph: bool
    timing: Literal["gpu", "framework"]
    measured_ms: float = Field(gt=0, lt=1e6)
    source: str = Field(min_length=1)
    int8_layers: Literal["recipe", "all"] = "recipe"
    power_mode: str = ""
    jetpack: str = ""
    tensorrt: str = ""
    quote: str = ""
    note: str = ""

    def spec(self) -> DeviceSpec:
        return POWER_MODES[self.device]


class PointsFile(Record):
    format: Literal["edgedit.latency-points/1"]
    description: str = ""
    points: list[Point]


def network_kernels(network: Any, batch: int = 1) -> list[K.Kernel]:
    """The kernels of a point's network, at `batch`."""
    if network.family == "dit":
        return K.dit_kernels(DiTConfig.from_dict(network.config), batch)
    if network.family == "vit":
        n = network
        cls = 1 if n.cls_token else 0
        tokens = n.tokens if n.tokens is not None else (n.image // n.patch) ** 2 + cls
        shape = K.TransformerShape(n.depth, n.width, n.heads, n.mlp_hidden, tokens, rope=n.rope)
        kernels = K.vit_kernels(
            shape,
            n.patch,
            tokens - cls,
            in_channels=3,
            cls_token=n.cls_token,
            head_outputs=n.head_outputs,
            batch=batch,
            temporal_patch=n.temporal_patch,
        )
        if n.merger:
            m = n.merger
            kernels += [
                K.memory("merger.norm", batch * tokens * n.width, batch * tokens * n.width, count=m["count"]),
                K.gemm("merger.fc1 + GELU", batch * m["tokens"], m["hidden"], m["in"], count=m["count"]),
                K.gemm("merger.fc2", batch * m["tokens"], m["out"], m["hidden"], count=m["count"]),
            ]
        return kernels
    if network.family == "resnet":
        return K.resnet_kernels(network.depth, network.image, network.classes, batch)
    if network.family == "yolov8":
        return K.yolov8_kernels(network.scale, network.image, network.classes, batch)
    return [K.gemm("gemm", network.m * batch, network.n, network.k, bias=False)]


class Timed:
    """A point with its workload built once: predictions under any constants are then cheap."""

    def __init__(self, point: Point):
        self.point = point
        kernels = network_kernels(point.network, point.batch)
        self.workload = Workload(kernels, point.spec(), point.precision, point.int8_layers)
        # Framework timers also include copying the FP32 input and output between host and device.
        io_bytes = 4 * (kernels[0].reads + kernels[-1].writes)
        self.io_ms = io_bytes / point.spec().bandwidth_bytes_per_s * 1e3 if point.timing == "framework" else 0.0

    def predict(self, c: Constants) -> float:
        return self.workload.ms(c, self.point.cuda_graph) + self.io_ms


def predict(point: Point, c: Constants) -> float:
    """The model's time for `point`, in the point's timing convention."""
    return Timed(point).predict(c)


def load_points(path: str | os.PathLike | None = None) -> list[Point]:
    """The shipped public points, or a points file."""
    where = "edgedit/cost/data/public-measurements.json" if path is None else str(path)
    data = (
        loads(
            resources.files("edgedit.cost").joinpath("data/public-measurements.json").read_text(),
            where,
            "latency points file",
        )
        if path is None
        else load_json(path, "latency points file")
    )
    points = parse(PointsFile, data, where, "latency points file").points
    for p in points:
        if p.device not in POWER_MODES:
            raise EdgeditError(f"{where}: point {p.id}: unknown device {p.device!r}; known: {', '.join(POWER_MODES)}")
    return points


#################################################################################
#                                    The fit                                    #
#################################################################################


START = {
    "tensor_efficiency": 0.3,
    "conv_efficiency": 0.3,
    "int8_efficiency": 0.6,
    "bandwidth_efficiency": 0.6,
    "kernel_floor_us": 5.0,
    "launch_us": LAUNCH_US,
}  # where the fit starts; the values of unfitted constants


def _constants(values, launch_us: float, fitted: tuple[str, ...]) -> Constants:
    fields = {**START, "launch_us": launch_us, **dict(zip(fitted, (float(v) for v in values)))}
    return Constants(**fields)


def fit_constants(
    points: list[Point] | list[Timed], launch_us: float = LAUNCH_US, fitted: tuple[str, ...] = FITTED
) -> Constants:
    """Least squares on log(predicted / measured) over `points` (scipy; workstation side)."""
    from edgedit.contract.deps import require

    optimize = require("scipy.optimize", extra="train")
    import numpy as np

    timed = [p if isinstance(p, Timed) else Timed(p) for p in points]
    if len(timed) < len(fitted):
        raise EdgeditError(f"the latency fit needs at least {len(fitted)} points, got {len(timed)}")
    x0 = np.log([{**START, "launch_us": launch_us}[f] for f in fitted])
    lo, hi = np.log([BOUNDS[f][0] for f in fitted]), np.log([BOUNDS[f][1] for f in fitted])
    measured = np.log([t.point.measured_ms for t in timed])

    def residuals(logs):
        c = _constants(np.exp(logs), launch_us, fitted)
        return np.log([t.predict(c) for t in timed]) - measured

    result = optimize.least_squares(residuals, np.clip(x0, lo, hi), bounds=(lo, hi))
    return _constants(np.exp(result.x), launch_us, fitted)


class FitRow(Record):
    """One point as the fit predicts it: measured against predicted, and for a 'fit' point its
    prediction by the fit made without it (leave-one-out)."""

    id: str
    use: Literal["fit", "check"]
    device: str
    precision: str
    timing: Literal["gpu", "framework"]
    tensorrt: str
    source: str
    measured_ms: float = Field(gt=0)
    predicted_ms: float = Field(gt=0)
    ratio: float = Field(gt=0)  # measured / predicted
    loo_predicted_ms: float | None = Field(default=None, gt=0)
    loo_ratio: float | None = Field(default=None, gt=0)


@dataclass
class Fit:
    constants: Constants
    rows: list[FitRow]  # per point
    range_ratios: tuple[float, float]  # measured / predicted at RANGE_PERCENTILES of the leave-one-out ratios
    public_points: int
    device_points: int
    fitted: tuple[str, ...]

    @property
    def label(self) -> str:
        device = f" + {self.device_points} device" if self.device_points else ""
        return f"estimate (calibrated on {self.public_points} public{device} measurements)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FIT_FORMAT,
            "constants": self.constants.to_dict(),
            "fitted": list(self.fitted),
            "range_ratios": list(self.range_ratios),
            "range_percentiles": list(RANGE_PERCENTILES),
            "public_points": self.public_points,
            "device_points": self.device_points,
            "label": self.label,
            "rows": [r.model_dump(exclude_none=True) for r in self.rows],
        }


def calibrate(points: list[Point], launch_us: float = LAUNCH_US, fitted: tuple[str, ...] = FITTED) -> Fit:
    """Fit on the 'fit' points, then leave each one out in turn; 'check' points are predicted only."""
    import numpy as np

    timed = [Timed(p) for p in points]
    train = [t for t in timed if t.point.use == "fit"]
    constants = fit_constants(train, launch_us, fitted)
    rows = []
    for t in timed:
        p, predicted, loo_predicted = t.point, t.predict(constants), None
        if p.use == "fit" and len(train) > len(fitted):
            loo_predicted = t.predict(fit_constants([q for q in train if q is not t], launch_us, fitted))
        rows.append(
            FitRow(
                id=p.id,
                use=p.use,
                device=p.device,
                precision=p.precision,
                timing=p.timing,
                tensorrt=p.tensorrt,
                source=p.source,
                measured_ms=p.measured_ms,
                predicted_ms=predicted,
                ratio=p.measured_ms / predicted,
                loo_predicted_ms=loo_predicted,
                loo_ratio=p.measured_ms / loo_predicted if loo_predicted is not None else None,
            )
        )
    loo = [r.loo_ratio for r in rows if r.loo_ratio is not None]
    ratios = loo or [r.ratio for r in rows if r.use == "fit"]
    low, high = (float(v) for v in np.percentile(ratios, RANGE_PERCENTILES))
    device = sum(1 for t in train if t.point.id.startswith("device:"))
    return Fit(constants, rows, (low, high), len(train) - device, device, tuple(fitted))


def loo_error(fit: Fit) -> dict[str, float]:
    """Leave-one-out error summary: median and max |log ratio| as a factor, and the RMS of log ratios."""
    logs = [abs(math.log(r.loo_ratio)) for r in fit.rows if r.loo_ratio is not None]
    if not logs:
        return {}
    logs.sort()
    return {
        "points": len(logs),
        "median_factor": math.exp(logs[len(logs) // 2]),
        "max_factor": math.exp(logs[-1]),
        "rms_log": math.sqrt(sum(v * v for v in logs) / len(logs)),
    }


def fit_table(fit: Fit) -> str:
    """Markdown: per point its source, device, precision, measured, predicted, ratio and leave-one-out ratio."""
    lines = [
        "| point | use | device | precision | TensorRT | timing | measured ms | predicted ms | ratio | LOO ratio |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in fit.rows:
        loo = f"{r.loo_ratio:.2f}" if r.loo_ratio is not None else "-"
        lines.append(
            f"| {r.id} | {r.use} | {r.device} | {r.precision} | {r.tensorrt or '-'} | "
            f"{r.timing} | {r.measured_ms:.3f} | {r.predicted_ms:.3f} | {r.ratio:.2f} | {loo} |"
        )
    sources = sorted({r.source.split(" ")[0] for r in fit.rows})
    return "\n".join([*lines, "", "Sources: " + "; ".join(sources) + "."])


def save_fit(fit: Fit, path: str | os.PathLike) -> Path:
    from edgedit.contract.staging import write_text_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(fit.to_dict(), indent=1) + "\n")
    _ACTIVE.clear()
    return path


#################################################################################
#                              Estimates in force                               #
#################################################################################


class FitFile(Record):
    format: Literal["edgedit.latency-fit/1"]
    constants: dict[str, float]
    fitted: list[str]
    range_ratios: list[float] = Field(min_length=2, max_length=2)
    range_percentiles: list[int]
    public_points: int = Field(ge=0)
    device_points: int = Field(ge=0)
    label: str
    rows: list[FitRow]


def load_fit(path: str | os.PathLike | None = None) -> Fit:
    where = str(path) if path else "edgedit/cost/data/fit.json"
    fix = "rewrite it with `edgedit models --calibrate`"
    data = (
        load_json(path, "latency calibration", fix)
        if path
        else loads(resources.files("edgedit.cost").joinpath("data/fit.json").read_text(), where, "latency calibration")
    )
    record = parse(FitFile, data, where, "latency calibration", fix)
    try:
        constants = Constants(**record.constants)
    except TypeError as err:
        raise EdgeditError(f"{where}: constants {sorted(record.constants)} are not the model's ({err})") from None
    low, high = record.range_ratios
    if not 0 < low <= high:
        raise EdgeditError(f"{where}: range_ratios {record.range_ratios} is not a [low, high] pair of ratios")
    return Fit(constants, record.rows, (low, high), record.public_points, record.device_points, tuple(record.fitted))


_ACTIVE: dict[str, Fit] = {}
_FIT_FILE: contextvars.ContextVar[Path | None] = contextvars.ContextVar("edgedit_latency_fit", default=None)


@contextlib.contextmanager
def using_fit(path: str | os.PathLike | None) -> Iterator[None]:
    """Estimates inside the block come from the fit in `path` (None: the shipped one)."""
    token = _FIT_FILE.set(Path(path) if path is not None else None)
    try:
        yield
    finally:
        _FIT_FILE.reset(token)


def active_fit() -> Fit:
    """The calibration in force (see the module docstring), loaded once per process and path."""
    path = _FIT_FILE.get()
    key = str(path)
    if key not in _ACTIVE:
        _ACTIVE[key] = load_fit(path)
    return _ACTIVE[key]


class Estimate(Record):
    """The estimated GPU time of one network call in ms: the point, its range, and the fit it came from."""

    ms: float = Field(ge=0)
    low_ms: float = Field(ge=0)
    high_ms: float = Field(ge=0)
    label: str


def estimate(
    cfg: DiTConfig,
    device: str | DeviceSpec,
    precision: str,
    batch: int = 1,
    cuda_graph: bool = False,
    fit: Fit | None = None,
    plan: PrecisionPlan | None = None,
) -> Estimate:
    """The estimated GPU time of one network call (point, range, fit label); `plan`: a
    quantized file's precision plan (default: the recipe's INT8 classes, no FP32 island)."""
    fit = fit or active_fit()
    spec = device if isinstance(device, DeviceSpec) else POWER_MODES.get(device)
    if spec is None:
        raise EdgeditError(f"unknown device '{device}'; known: {', '.join(POWER_MODES)}")
    if precision not in PRECISIONS:
        raise EdgeditError(f"precision must be one of {', '.join(PRECISIONS)} (got {precision!r})")
    plan = plan or ESTIMATE_PLAN
    kernels = K.dit_kernels(cfg, batch, unfused_attention=unfuses_attention(precision, plan))
    ms = network_ms(kernels, spec, precision, fit.constants, cuda_graph, plan=plan)
    low, high = fit.range_ratios
    return Estimate(ms=ms, low_ms=ms * low, high_ms=ms * high, label=fit.label)


def estimates(cfg: DiTConfig, fit: Fit | None = None, plan: PrecisionPlan | None = None) -> dict[str, Estimate]:
    """Every shown target x precision x launch mode, keyed 'orin_nano_fp16' / '..._graph'."""
    fit = fit or active_fit()
    out = {}
    for key, spec in DEVICES.items():
        for precision in ("fp16", "int8"):
            for graph in (False, True):
                name = f"{key.replace('-', '_')}_{precision}" + ("_graph" if graph else "")
                out[name] = estimate(
                    cfg,
                    spec,
                    precision,
                    cuda_graph=graph,
                    fit=fit,
                    plan=int8_plan(plan) if precision == "int8" else plan,
                )
    return out
