"""`edgedit build-engine`: an exported ONNX to a TensorRT 10.3 engine, on the device. Torch-free.

Precision is decided by the ONNX file where possible: an FP16-typed or a Q/DQ INT8 file builds as
a *strongly typed* network (no precision flags: the path TensorRT 11 keeps; TensorRT Developer
Guide, "Strongly Typed Networks" and "Explicit Quantization"). The weakly typed builder flags
remain as the TensorRT 10 comparison: `fp16` on an FP32 file sets the FP16 flag, and `best` sets
FP16 + INT8 on a Q/DQ file (INT8 where the Q/DQ say, FP16 elsewhere). An FP32 file for `int8` /
`best` is quantized first by `edgedit.pipeline.build`, one level up, as `edgedit quantize` does.

  precision | ONNX fp32                       | ONNX fp16      | ONNX int8 (Q/DQ)
  fp32      | strongly typed                  | refused        | refused
  fp16      | weakly typed, FP16 flag         | strongly typed | refused
  int8      | (quantized first by the pipeline)| refused       | strongly typed
  best      | (quantized first by the pipeline)| refused       | weakly typed, FP16+INT8 flags

Builds go through Polygraphy's Python API (or JetPack's trtexec with --trtexec), capped by a
workspace limit because the Orin Nano's 8 GB are shared with the CPU and builds are where users
run out of memory. Engine and sidecar are written atomically.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgedit.contract import artefacts, device
from edgedit.contract.deps import require
from edgedit.contract.errors import CheckFailed, EdgeditError
from edgedit.contract.fileio import sha256_file
from edgedit.contract.sidecar import SidecarRecord, device_facts, write_sidecar
from edgedit.contract.spec import ModelMeta, read_model
from edgedit.contract.staging import atomic_output

PRECISIONS = ("fp32", "fp16", "int8", "best")
MAX_OPSET = 20  # TensorRT 10.3's ONNX parser
TRTEXEC_CANDIDATES = ("trtexec", "/usr/src/tensorrt/bin/trtexec")
NOT_PORTABLE = (
    "engines are built on the target device (a Jetson with JetPack 6.1+, or in the edgedit L4T "
    "container) and are not portable between GPUs or TensorRT versions"
)
TENSORRT_HINT = f"TensorRT is missing here: {NOT_PORTABLE}; TensorRT comes with JetPack (python3-libnvinfer)"


@dataclass(frozen=True)
class BuildSettings:
    precision: str
    strongly_typed: bool
    fp16_flag: bool
    int8_flag: bool
    workspace_mb: int
    opt_level: int
    timing_cache: str | None
    shapes: dict[str, dict[str, list[int]]] = field(default_factory=dict)  # input -> min/opt/max
    dynamic: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


MIN_WORKSPACE_MB = 16
MAX_WORKSPACE_MB = 64 << 10  # Jetson AGX Orin 64GB, the most memory of any device TensorRT 10.3 on JetPack 6 runs on


def _check_workspace_fits(workspace_mb: int, gpu: dict) -> None:
    """The workspace within the building GPU's memory: its own, or on a Jetson's integrated GPU what
    the shared memory still has available (the build runs beside everything else on the board)."""
    limit = device.available_memory_bytes() if gpu["integrated"] else gpu["memory_bytes"]
    if limit is not None and workspace_mb << 20 > limit:
        raise EdgeditError(
            f"`workspace_mb` {workspace_mb} is more than the {limit >> 20} MB {gpu['name']} can give "
            f"({'available shared memory' if gpu['integrated'] else 'its memory'}); ask for less"
        )


def settings_for(
    meta: ModelMeta,
    precision: str,
    workspace_mb: int = 1024,
    opt_level: int = 3,
    timing_cache: str | os.PathLike | None = None,
) -> BuildSettings:
    """The builder settings for `precision` on an ONNX of precision `meta.precision` (table above)."""
    if precision not in PRECISIONS:
        raise EdgeditError(f"`precision` must be one of {', '.join(PRECISIONS)} (got {precision!r})")
    if not 0 <= opt_level <= 5:
        raise EdgeditError(f"`opt_level` must be 0-5 (TensorRT's builder optimization level), got {opt_level}")
    if not MIN_WORKSPACE_MB <= workspace_mb <= MAX_WORKSPACE_MB:
        raise EdgeditError(
            f"`workspace_mb` {workspace_mb} is outside {MIN_WORKSPACE_MB}..{MAX_WORKSPACE_MB} "
            "(16 MB builds nothing; the largest Jetson Orin has 64 GB)"
        )
    source = meta.precision
    allowed = {"fp32": {"fp32"}, "fp16": {"fp32", "fp16"}, "int8": {"int8"}, "best": {"int8"}}[precision]
    if source not in allowed:
        fix = {
            "fp16": "export an FP32 or FP16 ONNX",
            "fp32": "export an FP32 ONNX",
            "int8": "build int8 from the FP32 export (it is quantized first) or from its .int8.onnx",
            "best": "build best from the FP32 export or its .int8.onnx",
        }[precision]
        raise EdgeditError(f"a {source} ONNX cannot build a {precision} engine: {fix}")
    strongly_typed = precision in ("fp32", "int8") or (precision == "fp16" and source == "fp16")
    shapes = {
        s.name: {
            "min": list(s.concrete(meta.batch["min"])),
            "opt": list(s.concrete(meta.batch["opt"])),
            "max": list(s.concrete(meta.batch["max"])),
        }
        for s in meta.inputs
    }
    return BuildSettings(
        precision,
        strongly_typed,
        fp16_flag=not strongly_typed,
        int8_flag=precision == "best",
        workspace_mb=workspace_mb,
        opt_level=opt_level,
        timing_cache=str(timing_cache) if timing_cache else None,
        shapes=shapes,
        dynamic=meta.dynamic_batch,
    )


def trtexec_command(
    onnx: str | os.PathLike, plan: str | os.PathLike, settings: BuildSettings, executable: str = "trtexec"
) -> list[str]:
    """The equivalent TensorRT 10.3 trtexec command line."""
    command = [executable, f"--onnx={onnx}", f"--saveEngine={plan}"]
    if settings.strongly_typed:
        command.append("--stronglyTyped")  # must not be combined with precision flags
    else:
        command += ["--fp16"] + (["--int8", "--precisionConstraints=prefer"] if settings.int8_flag else [])
    if settings.dynamic:
        for key, flag in (("min", "--minShapes"), ("opt", "--optShapes"), ("max", "--maxShapes")):
            command.append(
                f"{flag}=" + ",".join(f"{name}:{'x'.join(map(str, s[key]))}" for name, s in settings.shapes.items())
            )
    command += [
        f"--memPoolSize=workspace:{settings.workspace_mb}",
        f"--builderOptimizationLevel={settings.opt_level}",
        "--profilingVerbosity=detailed",
    ]
    if settings.timing_cache:
        command.append(f"--timingCacheFile={settings.timing_cache}")
    return command


def engine_bytes_polygraphy(onnx: Path, settings: BuildSettings, trt) -> bytes:
    """Build with Polygraphy's Python API (polygraphy 0.49.x, the TensorRT 10 line). Checked against
    the real Polygraphy over a fake TensorRT (tests/engines/test_build.py)."""
    poly = require("polygraphy.backend.trt", extra="tensorrt")
    exception = require("polygraphy.exception", extra="tensorrt")
    profile = poly.Profile()
    for name, s in settings.shapes.items():
        profile.add(name, min=s["min"], opt=s["opt"], max=s["max"])
    network = poly.NetworkFromOnnxPath(str(onnx), strongly_typed=settings.strongly_typed)
    config = poly.CreateConfig(
        tf32=True,  # TensorRT's and trtexec's default; Polygraphy clears it unless asked
        fp16=settings.fp16_flag or None,
        int8=settings.int8_flag or None,
        precision_constraints="prefer" if settings.int8_flag else None,  # as demoDiffusion's 10.3 INT8 build
        profiles=[profile],
        memory_pool_limits={trt.MemoryPoolType.WORKSPACE: settings.workspace_mb << 20},
        builder_optimization_level=settings.opt_level,
        load_timing_cache=settings.timing_cache,
        profiling_verbosity=trt.ProfilingVerbosity.DETAILED,
    )
    try:  # Polygraphy raises on a parse or build failure (its G_LOGGER.critical)
        serialized = poly.engine_bytes_from_network(network, config=config, save_timing_cache=settings.timing_cache)
    except exception.PolygraphyException as err:
        raise CheckFailed(f"TensorRT could not build {onnx.name}: {str(err).strip().splitlines()[-1]}") from None
    return bytes(serialized)


def find_trtexec() -> str:
    for candidate in TRTEXEC_CANDIDATES:
        found = shutil.which(candidate) or (candidate if os.access(candidate, os.X_OK) else None)
        if found:
            return found
    raise EdgeditError(
        "`use_trtexec`: no trtexec binary on PATH or at /usr/src/tensorrt/bin/trtexec (it comes with "
        "JetPack's TensorRT); build without it, through the Python API"
    )


@dataclass(frozen=True, kw_only=True)
class BuildOptions:
    precision: str = "fp16"
    workspace_mb: int = 1024
    opt_level: int = 3
    timing_cache: Path | None = None
    use_trtexec: bool = False


@dataclass
class BuildReport:
    plan: Path | None  # None for a dry run
    onnx: Path
    settings: BuildSettings
    command: list[str]
    quantized_from: Path | None = None
    sidecar: SidecarRecord | None = None  # what the build wrote beside the engine


def plan_engine(
    onnx: Path, output: Path, options: BuildOptions, meta: ModelMeta, opsets: dict[str, int]
) -> BuildReport:
    """Check the model and the options and work out the build, without TensorRT (a dry run). `meta` and
    `opsets` describe `onnx` as the build will find it (a pipeline may make the file first)."""
    if opsets.get("ai.onnx", 0) > MAX_OPSET:
        raise EdgeditError(
            f"{onnx}: opset {opsets['ai.onnx']} is above {MAX_OPSET}, the newest TensorRT 10.3 parses; "
            "re-export with opset 17..20"
        )
    settings = settings_for(meta, options.precision, options.workspace_mb, options.opt_level, options.timing_cache)
    return BuildReport(None, onnx, settings, trtexec_command(onnx, output, settings))


def build_engine(
    onnx: str | os.PathLike,
    output: str | os.PathLike,
    options: BuildOptions,
    monitor: contextlib.AbstractContextManager | None = None,
    quantized_from: Path | None = None,
) -> BuildReport:
    """Build the engine and its sidecar (atomically, both or neither). `monitor` is entered around
    the build and its `summary()` recorded (tegrastats: shared RAM and power, on a Jetson)."""
    onnx, output = Path(onnx), Path(output)
    meta, graph = read_model(onnx)  # the one read of the file the builder parses
    report = plan_engine(onnx, output, options, meta, graph.opsets)
    settings = report.settings
    trt = require("tensorrt", hint=TENSORRT_HINT)
    gpus = device.cuda_devices()["devices"]
    if not gpus:
        raise EdgeditError(f"no CUDA device here: {NOT_PORTABLE}")
    _check_workspace_fits(settings.workspace_mb, gpus[0])  # TensorRT builds on the current device, 0
    metadata = graph.metadata
    start, monitor = time.perf_counter(), monitor or contextlib.nullcontext()
    with monitor, atomic_output(output, artefacts.sidecar(output)) as tmp:
        if options.use_trtexec:
            executable = find_trtexec()
            done = subprocess.run(trtexec_command(onnx, tmp, settings, executable), capture_output=True, text=True)
            if done.returncode != 0:
                tail = " | ".join(done.stdout.strip().splitlines()[-3:])
                raise CheckFailed(f"trtexec failed with exit code {done.returncode}: {tail}")
        else:
            tmp.write_bytes(engine_bytes_polygraphy(onnx, settings, trt))
        seconds = time.perf_counter() - start
        rss = max(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        )
        record = {
            "precision": options.precision,
            "strongly_typed": settings.strongly_typed,
            "builder": {**settings.to_dict(), "tool": "trtexec" if options.use_trtexec else "polygraphy"},
            "trtexec_equivalent": " ".join(report.command),
            "device": device_facts(trt.__version__),
            "onnx": {
                "file": onnx.name,
                "sha256": sha256_file(onnx),
                "metadata": metadata,
                "quantized_from": quantized_from.name if quantized_from else None,
            },
            "io": {"inputs": [s.to_dict() for s in meta.inputs], "outputs": [s.to_dict() for s in meta.outputs]},
            "build_seconds": seconds,
            "peak_rss_mb": rss / 1024,  # ru_maxrss is in KiB on Linux
            "tegrastats": _summary_of(monitor),
            "plan_bytes": tmp.stat().st_size,
            "plan_sha256": sha256_file(tmp),
        }
        sidecar = write_sidecar(tmp.with_name(artefacts.sidecar(output).name), record)
    return BuildReport(output, onnx, settings, report.command, quantized_from, sidecar)


def _summary_of(monitor) -> dict | None:
    """The monitor's summary of the build (a TegrastatsSampler's), as the sidecar records it."""
    summary = monitor.summary() if hasattr(monitor, "summary") else None
    return summary.model_dump() if summary is not None else None
