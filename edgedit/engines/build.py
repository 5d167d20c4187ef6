"""`edgedit build-engine`: an exported ONNX to a TensorRT 10.3 engine, on the device. Torch-free.

Precision is decided by the ONNX file where possible (deploy-facts 3.1, 8.1): an FP16-typed or a
Q/DQ INT8 file builds as a *strongly typed* network (no precision flags: the path TensorRT 11
keeps). The weakly typed builder flags remain as the TensorRT 10 comparison: `fp16` on an FP32
file sets the FP16 flag, and `best` sets FP16 + INT8 on a Q/DQ file (INT8 where the Q/DQ say,
FP16 elsewhere). `int8` / `best` on an FP32 file quantize it first, as `edgedit quantize` does.

  precision | ONNX fp32                       | ONNX fp16      | ONNX int8 (Q/DQ)
  fp32      | strongly typed                  | refused        | refused
  fp16      | weakly typed, FP16 flag         | strongly typed | refused
  int8      | quantize, then strongly typed   | refused        | strongly typed
  best      | quantize, then FP16+INT8 flags  | refused        | weakly typed, FP16+INT8 flags

Builds go through Polygraphy's Python API (or JetPack's trtexec with --trtexec), capped by a
workspace limit because the Orin Nano's 8 GB are shared with the CPU and builds are where users
run out of memory. Engine and sidecar are written atomically.
"""

from __future__ import annotations

import importlib.util
import os
import resource
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgedit.bench.tegrastats import TegrastatsSampler
from edgedit.deps import require
from edgedit.engines.sidecar import device_facts, sidecar_path, write_sidecar
from edgedit.errors import CheckFailed, EdgeditError
from edgedit.fileio import atomic_output, sha256_file
from edgedit.runtime.onnx_metadata import read_onnx_header
from edgedit.runtime.spec import ModelMeta

PRECISIONS = ("fp32", "fp16", "int8", "best")
MAX_OPSET = 20  # TensorRT 10.3's ONNX parser
TRTEXEC_CANDIDATES = ("trtexec", "/usr/src/tensorrt/bin/trtexec")
NOT_PORTABLE = ("engines are built on the target device (a Jetson with JetPack 6.1+, or in the edgedit L4T "
                "container) and are not portable between GPUs or TensorRT versions")
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


def settings_for(meta: ModelMeta, precision: str, workspace_mb: int = 1024, opt_level: int = 3,
                 timing_cache: str | os.PathLike | None = None) -> BuildSettings:
    """The builder settings for `precision` on an ONNX of precision `meta.precision` (table above)."""
    if precision not in PRECISIONS:
        raise EdgeditError(f"--precision must be one of {', '.join(PRECISIONS)} (got {precision!r})")
    if not 0 <= opt_level <= 5:
        raise EdgeditError(f"--opt-level must be 0-5 (TensorRT's builder optimization level), got {opt_level}")
    if workspace_mb < 16:
        raise EdgeditError(f"--workspace-mb {workspace_mb} is too small to build anything (at least 16)")
    source = meta.precision
    allowed = {"fp32": {"fp32"}, "fp16": {"fp32", "fp16"}, "int8": {"int8"}, "best": {"int8"}}[precision]
    if source not in allowed:
        fix = {"fp16": "export an FP32 or FP16 ONNX", "fp32": "export with --precision fp32",
               "int8": "build int8 from the FP32 export (it is quantized first) or from its .int8.onnx",
               "best": "build best from the FP32 export or its .int8.onnx"}[precision]
        raise EdgeditError(f"a {source} ONNX cannot build a {precision} engine: {fix}")
    strongly_typed = precision in ("fp32", "int8") or (precision == "fp16" and source == "fp16")
    shapes = {s.name: {"min": list(s.concrete(meta.batch["min"])), "opt": list(s.concrete(meta.batch["opt"])),
                       "max": list(s.concrete(meta.batch["max"]))} for s in meta.inputs}
    return BuildSettings(precision, strongly_typed, fp16_flag=not strongly_typed, int8_flag=precision == "best",
                         workspace_mb=workspace_mb, opt_level=opt_level,
                         timing_cache=str(timing_cache) if timing_cache else None, shapes=shapes,
                         dynamic=meta.dynamic_batch)


def trtexec_command(onnx: str | os.PathLike, plan: str | os.PathLike, settings: BuildSettings,
                    executable: str = "trtexec") -> list[str]:
    """The equivalent TensorRT 10.3 trtexec command line."""
    command = [executable, f"--onnx={onnx}", f"--saveEngine={plan}"]
    if settings.strongly_typed:
        command.append("--stronglyTyped")  # must not be combined with precision flags
    else:
        command += ["--fp16"] + (["--int8", "--precisionConstraints=prefer"] if settings.int8_flag else [])
    if settings.dynamic:
        for key, flag in (("min", "--minShapes"), ("opt", "--optShapes"), ("max", "--maxShapes")):
            command.append(f"{flag}=" + ",".join(f"{name}:{'x'.join(map(str, s[key]))}" for name, s in settings.shapes.items()))
    command += [f"--memPoolSize=workspace:{settings.workspace_mb}", f"--builderOptimizationLevel={settings.opt_level}",
                "--profilingVerbosity=detailed"]
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
    raise EdgeditError("--trtexec: no trtexec binary on PATH or at /usr/src/tensorrt/bin/trtexec (it comes with "
                       "JetPack's TensorRT); drop --trtexec to build with the Python API")


@dataclass
class BuildReport:
    plan: Path | None
    onnx: Path
    settings: BuildSettings
    command: list[str]
    quantized_from: Path | None = None
    sidecar: dict[str, Any] | None = None


def quantize_first(onnx: Path, meta: ModelMeta, output: Path, calib: Path | None, calib_samples: int) -> Path:
    """INT8 from an FP32 export in one command: calibrate and quantize as `edgedit quantize` does."""
    missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise EdgeditError(f"{onnx}: int8 from an FP32 ONNX needs calibration and quantization, which need "
                           f"{' and '.join(missing)} here; install them, or run `edgedit quantize` on the "
                           "workstation and build its .int8.onnx")
    from edgedit.export.calibration import CALIBRATION_SEED, HELDOUT_SEED, load_calibration, record_inputs
    from edgedit.export.quantize import quantize_onnx
    from edgedit.runtime.backends import OnnxRuntimeBackend

    fp32 = OnnxRuntimeBackend(onnx, provider="cpu")
    calibration = load_calibration(calib, meta) if calib else record_inputs(fp32, calib_samples, CALIBRATION_SEED)
    heldout = record_inputs(fp32, max(4, calib_samples // 4), HELDOUT_SEED)
    return quantize_onnx(onnx, output, calibration, heldout).path


def build_engine(onnx: str | os.PathLike, output: str | os.PathLike, precision: str = "fp16",
                 calib: str | os.PathLike | None = None, workspace_mb: int = 1024, opt_level: int = 3,
                 timing_cache: str | os.PathLike | None = None, use_trtexec: bool = False, dry_run: bool = False,
                 calib_samples: int = 64) -> BuildReport:
    onnx, output = Path(onnx), Path(output)
    metadata, opsets = read_onnx_header(onnx)
    meta = ModelMeta.from_metadata(metadata, str(onnx))
    if opsets.get("ai.onnx", 0) > MAX_OPSET:
        raise EdgeditError(f"{onnx}: opset {opsets['ai.onnx']} is above {MAX_OPSET}, the newest TensorRT 10.3 parses; "
                           "re-export with --opset 17..20")
    if calib is not None and (precision not in ("int8", "best") or meta.precision != "fp32"):
        raise EdgeditError("--calib is for int8/best engines built from an FP32 ONNX (a Q/DQ ONNX is already calibrated)")
    quantized_from = None
    if precision in ("int8", "best") and meta.precision == "fp32":
        q_path = output.with_name(onnx.name.removesuffix(".onnx") + ".int8.onnx")  # next to the engine
        if not dry_run:
            quantized_from, onnx = onnx, quantize_first(onnx, meta, q_path, Path(calib) if calib else None, calib_samples)
            meta = ModelMeta.from_metadata(read_onnx_header(onnx)[0], str(onnx))
        else:
            quantized_from, onnx = onnx, q_path
            meta.precision = "int8"
    settings = settings_for(meta, precision, workspace_mb, opt_level, timing_cache)
    command = trtexec_command(onnx, output, settings)
    if dry_run:
        return BuildReport(None, onnx, settings, command, quantized_from)

    trt = require("tensorrt", hint=TENSORRT_HINT)
    from edgedit.doctor import cuda_devices

    if not cuda_devices()["devices"]:
        raise EdgeditError(f"no CUDA device here: {NOT_PORTABLE}")
    start, sampler = time.perf_counter(), TegrastatsSampler(interval_ms=100)
    with sampler, atomic_output(output, sidecar_path(output)) as tmp:
        if use_trtexec:
            executable = find_trtexec()
            done = subprocess.run(trtexec_command(onnx, tmp, settings, executable), capture_output=True, text=True)
            if done.returncode != 0:
                tail = " | ".join(done.stdout.strip().splitlines()[-3:])
                raise CheckFailed(f"trtexec failed with exit code {done.returncode}: {tail}")
        else:
            tmp.write_bytes(engine_bytes_polygraphy(onnx, settings, trt))
        seconds = time.perf_counter() - start
        rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
        record = {
            "precision": precision,
            "strongly_typed": settings.strongly_typed,
            "builder": {**settings.to_dict(), "tool": "trtexec" if use_trtexec else "polygraphy"},
            "trtexec_equivalent": " ".join(command),
            "device": device_facts(trt.__version__),
            "onnx": {"file": onnx.name, "sha256": sha256_file(onnx), "metadata": metadata if quantized_from is None
                     else read_onnx_header(onnx)[0], "quantized_from": quantized_from.name if quantized_from else None},
            "io": {"inputs": [s.to_dict() for s in meta.inputs], "outputs": [s.to_dict() for s in meta.outputs]},
            "build_seconds": seconds,
            "peak_rss_mb": rss / 1024,  # ru_maxrss is in KiB on Linux
            "tegrastats": sampler.summary(),  # shared RAM and power during the build, on a Jetson
            "plan_bytes": tmp.stat().st_size,
        }
        write_sidecar(tmp.with_name(sidecar_path(output).name), record)
    return BuildReport(output, onnx, settings, command, quantized_from, record)
