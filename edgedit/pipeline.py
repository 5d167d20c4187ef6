"""Jobs composed of several packages: the one place where calibration, quantization and engine
building meet. The CLI and the demo call these, so every policy here exists once.

- `quantize_with_calibration`: calibration inputs (a file, or recorded from real sampling) ->
  held-out inputs (always recorded, from seeds no calibration uses) -> Q/DQ INT8 ONNX, measured.
- `plan_build` / `build`: an engine from an exported ONNX, planned from one read of the file (a dry
  run prints the plan); `int8` / `best` from an FP32 file quantize it first (next to the engine, with
  the same calibration policy), and the build is watched by tegrastats.
- `sample`: images from any model, as a PNG grid and optionally the raw arrays.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgedit.contract import artefacts
from edgedit.contract.errors import EdgeditError
from edgedit.contract.fileio import Output, same_file
from edgedit.contract.spec import ModelMeta, read_model
from edgedit.engines.build import BuildOptions, BuildReport, build_engine, plan_engine

if TYPE_CHECKING:
    from edgedit.export.quantize import QuantizeOptions

CALIBRATION_SAMPLES = 64  # noise seeds (a denoiser records every step of their sampling)
HELDOUT_SAMPLES = 16


def quantize_with_calibration(
    onnx: str | os.PathLike,
    output: str | os.PathLike | None = None,
    options=None,
    *,
    calib: str | os.PathLike | None = None,
    calib_samples: int = CALIBRATION_SAMPLES,
    heldout_samples: int = HELDOUT_SAMPLES,
    steps: int | None = None,
    say=lambda message: None,
):
    """INT8 Q/DQ ONNX from an FP32 export (`edgedit quantize`); returns the QuantizeReport."""
    from edgedit.export.calib_data import CALIBRATION_SEED, HELDOUT_SEED, load_calibration, record_inputs
    from edgedit.export.quantize import QuantizeOptions, quantize_onnx
    from edgedit.runtime.onnxruntime import OnnxRuntimeBackend

    onnx = Path(onnx)
    if onnx.suffix != artefacts.ONNX:
        raise EdgeditError(f"{onnx}: expected an .onnx file from `edgedit export`")
    output = Path(output) if output else artefacts.int8_onnx(onnx)
    if same_file(output, onnx):
        raise EdgeditError(f"{output}: is the input model; write the INT8 model elsewhere (`output` NAME.int8.onnx)")
    if calib_samples < 1 or heldout_samples < 1:
        raise EdgeditError("`calib_samples` and `heldout_samples` must be at least 1")
    fp32 = OnnxRuntimeBackend(onnx, provider="cpu")
    calibration = (
        load_calibration(calib, fp32.meta)
        if calib
        else record_inputs(fp32, calib_samples, CALIBRATION_SEED, steps, field="calib_samples")
    )
    heldout = record_inputs(fp32, heldout_samples, HELDOUT_SEED, steps, field="heldout_samples")
    return quantize_onnx(onnx, output, calibration, heldout, options or QuantizeOptions(), say)


def choose_precision(meta: ModelMeta, device: str = "orin-nano") -> tuple[str, str]:
    """(precision, why) for `build-engine --precision auto`: of the precisions this file can build that
    meet the quality budget (an FP16 export's parity check, the INT8 file's PSNR budget; an FP32 file can
    be quantized, which enforces the budget), the faster one by the device estimate; INT8 only when it
    is estimated at least INT8_PAYS faster than FP16."""
    from edgedit.cost.fit import estimate
    from edgedit.cost.latency import int8_plan
    from edgedit.cost.summary import INT8_PAYS

    plan = meta.precision_plan
    fp16, int8 = (
        estimate(meta.config, device, p, plan=int8_plan(plan) if p == "int8" else plan).ms for p in ("fp16", "int8")
    )
    numbers = f"estimated on an {device.replace('-', ' ').title()}: INT8 {int8:.2f} ms, FP16 {fp16:.2f} ms per call"
    if meta.precision == "fp16":
        return "fp16", f"an FP16 export builds FP16 ({numbers})"
    pays = fp16 >= INT8_PAYS * int8
    if meta.precision == "int8":
        return "int8", (
            f"a Q/DQ file builds INT8 ({numbers}"
            + ("" if pays else "; INT8 does not pay here: build FP16 from the FP32 export instead")
            + ")"
        )
    if pays:
        return "int8", f"INT8 pays ({numbers}); the FP32 file is quantized first"
    return "fp16", f"INT8 does not pay ({numbers}, less than {INT8_PAYS:.2f}x)"


@dataclass(frozen=True)
class BuildPlan:
    """A build worked out from one read of the ONNX: the precision (`auto` resolved, and why), whether
    an FP32 file is quantized first, the file the builder will parse, the builder settings and the
    equivalent trtexec command, and every file the build writes. Making it writes and changes nothing
    (a dry run is the plan printed); `build` carries it out."""

    onnx: Path  # the file named
    output: Path  # the engine
    options: BuildOptions  # precision resolved: never "auto"
    meta: ModelMeta  # the named file's model (a private copy)
    engine: BuildReport  # the builder's settings and command, for the file it will parse
    why: str | None = None  # how `auto` chose, or the cost model's word on INT8
    calib: Path | None = None  # calibration inputs for quantizing first
    quantize: QuantizeOptions | None = None  # how an FP32 file is quantized first (None: it is not)

    @property
    def quantize_first(self) -> bool:
        return self.options.precision in ("int8", "best") and self.meta.precision == "fp32"

    @property
    def source(self) -> Path:
        """The file the builder parses: the named ONNX, or the INT8 form quantized first beside the engine."""
        return self.engine.onnx

    @property
    def outputs(self) -> list[Output]:
        """What the build writes, for check_outputs: the engine with its sidecar, the INT8 ONNX quantized
        first, and the timing cache (read and rewritten: never a file of another kind)."""
        written = (artefacts.sidecar(self.output), *([self.source] if self.quantize_first else []))
        return [
            Output("`output`", self.output, "engine", written),
            Output("`timing_cache`", self.options.timing_cache, "timing-cache"),
        ]


def plan_build(
    onnx: str | os.PathLike,
    output: str | os.PathLike | None = None,
    options: BuildOptions | None = None,
    *,
    calib: str | os.PathLike | None = None,
    min_psnr: float | None = None,
    force: bool = False,
    device: str = "orin-nano",
) -> BuildPlan:
    """The build of `onnx` with `options` (precision `auto`: the faster by the device estimate), into
    `output` (default: engines/NAME.PRECISION.plan). When an FP32 file is quantized first (int8/best):
    `calib` its calibration inputs, `min_psnr` its quality budget (default MIN_PSNR_DB) and `force`
    writing it even below the budget, as `edgedit quantize` does."""
    from edgedit.cost.summary import int8_advice
    from edgedit.export.quantize import QuantizeOptions

    onnx, options = Path(onnx), options or BuildOptions()
    meta, graph = read_model(onnx)
    why = None
    if options.precision == "auto":
        precision, reason = choose_precision(meta, device)
        options, why = dataclasses.replace(options, precision=precision), f"auto precision: {precision}: {reason}"
    elif options.precision == "int8":
        why = int8_advice(meta.config, meta.precision_plan)
    output = Path(output) if output is not None else artefacts.default_engine(onnx, options.precision)
    quantize_first = options.precision in ("int8", "best") and meta.precision == "fp32"
    for name, given in (("calib", calib is not None), ("min_psnr", min_psnr is not None)):
        if given and not quantize_first:
            raise EdgeditError(
                f"`{name}` is for int8/best engines built from an FP32 ONNX, which are quantized first "
                f"(this {meta.precision} file builds {options.precision} as it is)"
            )
    quantize = None
    if quantize_first:
        quantize = QuantizeOptions(force=force, **({"min_psnr": min_psnr} if min_psnr is not None else {}))
        quantize.check()
    source = artefacts.int8_onnx(onnx, output.parent) if quantize_first else onnx
    parsed = dataclasses.replace(meta, precision="int8") if quantize_first else meta  # as the builder will find it
    engine = plan_engine(source, output, options, parsed, graph.opsets)
    engine.quantized_from = onnx if quantize_first else None
    return BuildPlan(onnx, output, options, meta, engine, why, Path(calib) if calib is not None else None, quantize)


def build(plan: BuildPlan, *, calib_samples: int = CALIBRATION_SAMPLES, tegrastats: bool = True) -> BuildReport:
    """Carry out a plan: quantize an FP32 file first for int8 / best, then build the engine (+ sidecar)."""
    if plan.quantize_first:
        missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
        if missing:
            raise EdgeditError(
                f"{plan.onnx}: {plan.options.precision} from an FP32 ONNX needs calibration and quantization, "
                f"which need {' and '.join(missing)} here; install them, or run `edgedit quantize` on "
                "the workstation and build its .int8.onnx"
            )
        quantize_with_calibration(plan.onnx, plan.source, plan.quantize, calib=plan.calib, calib_samples=calib_samples)
    monitor = None
    if tegrastats:
        from edgedit.bench.tegrastats import TegrastatsSampler

        monitor = TegrastatsSampler(interval_ms=100)
    return build_engine(
        plan.source, plan.output, plan.options, monitor, quantized_from=plan.onnx if plan.quantize_first else None
    )


@dataclass(frozen=True, kw_only=True)
class SampleOptions:
    n: int = 16
    batch: int = 8
    seed: int = 0  # image k uses seed + k
    steps: int | None = None  # EDM steps (default: the model's)
    sampler: str | None = None
    class_label: int | None = None  # every image's class (default: seed % classes)
    backend: str = "auto"
    provider: str = "auto"


def sample(model: str, output: str | os.PathLike, options: SampleOptions, npz: str | os.PathLike | None = None):
    """Images from seeds, as a PNG grid (and the raw images, seeds and labels in `npz`); returns
    (backend title, seconds spent sampling)."""
    import time

    import numpy as np

    from edgedit.contract.fileio import SAMPLES_NPZ, save_npz
    from edgedit.runtime.backends import RunOptions, load_backend
    from edgedit.runtime.images import picture, save_png
    from edgedit.runtime.samplers import check_request, default_labels, generate, sampling_words

    for path in (output, npz):
        if path is not None and same_file(Path(path), Path(model)):
            raise EdgeditError(f"{path}: is the input model; write the images elsewhere")
    runner = load_backend(model, options.backend, RunOptions(provider=options.provider))
    cfg = runner.meta.config
    # Before any list of seeds is made: n = 10^9 is refused with its memory need, not a MemoryError.
    check_request(
        range(options.seed, options.seed + options.n),
        options.batch,
        options.steps,
        runner.meta.inputs[0].concrete(1)[1:],
    )
    seeds = list(range(options.seed, options.seed + options.n))
    labels = [options.class_label] * options.n if options.class_label is not None else None
    start = time.perf_counter()
    images = generate(runner, seeds, labels, batch=options.batch, steps=options.steps, sampler=options.sampler)
    seconds = time.perf_counter() - start
    caption = (
        f"{Path(model).name} | {runner.title} | seeds {seeds[0]}-{seeds[-1]} | "
        f"{sampling_words(runner.meta.sampler, options.steps, options.sampler)}"
    )
    save_png(output, picture(images, caption))
    if npz:
        used = (
            np.asarray(labels if labels is not None else default_labels(seeds, cfg.num_classes), np.int32)
            if cfg.class_conditional
            else np.zeros(0, np.int32)
        )
        arrays = {"images": images, "seeds": np.asarray(seeds, np.int64), "labels": used}
        save_npz(npz, {name: arrays[name] for name in SAMPLES_NPZ})
    return runner.title, seconds
