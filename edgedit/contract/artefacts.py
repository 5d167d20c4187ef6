"""Every file name edgedit derives from another, and the suffixes it reads: the one home of its
file conventions. Readers and writers ask here; nothing else spells a suffix. Torch-free.

    NAME.safetensors                  a checkpoint
      NAME.train-state.safetensors    its training state (`--resume`)
      NAME.samples/                   the sample grids of the run that wrote it
      NAME.ta.safetensors             the teaching assistant `distill --method ta` trains first
    NAME.onnx                         an export
      NAME.onnx.data                  its external weights (over 2 GiB: protobuf's limit)
      NAME.int8.onnx                  its INT8 (Q/DQ) form, from `quantize` or `build-engine`
      NAME.int8.precision.json        the precision plan written beside a quantized model
    NAME.plan                         a TensorRT engine
      NAME.plan.json                  its sidecar (build settings, device, I/O)
    export/NAME[.fp16].onnx           `export`'s default output (NAME: the checkpoint's stem, or the preset)
    engines/NAME.PRECISION.plan       `build-engine`'s default output
    NAME.tradeoff.png                 beside `bench --plot NAME.png`: FID against latency, where known

Engines: edgedit writes `.plan` (TensorRT's samples and trtexec's docs use it); `.engine` and `.trt`,
other tools' names for the same serialized engine, are read too and said so once.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("edgedit")

CHECKPOINT = ".safetensors"
ONNX = ".onnx"
ENGINE = ".plan"
ENGINE_READ = (ENGINE, ".engine", ".trt")  # read; only ENGINE is written
MODEL_SUFFIXES = (CHECKPOINT, ONNX, *ENGINE_READ)  # the files a model argument can name
TRAIN_STATE = ".train-state" + CHECKPOINT
SAMPLES = ".samples"
TEACHING_ASSISTANT = ".ta" + CHECKPOINT
ONNX_DATA = ".data"
INT8 = ".int8"
PRECISION_PLAN = ".precision.json"
SIDECAR = ".json"
EXPORT_FOLDER = Path("export")
ENGINES_FOLDER = Path("engines")


def is_engine(path: str | os.PathLike) -> bool:
    return Path(path).suffix in ENGINE_READ


def note_engine_suffix(path: str | os.PathLike) -> None:
    """A note, once per read, when an engine is named the way other tools name them."""
    path = Path(path)
    if path.suffix in ENGINE_READ and path.suffix != ENGINE:
        log.info(
            "%s: read as a TensorRT engine (edgedit writes %s; %s is another tool's name for one)",
            path,
            ENGINE,
            path.suffix,
        )


def _strip(path: Path, suffix: str) -> str:
    return path.name.removesuffix(suffix)


def train_state(checkpoint: str | os.PathLike) -> Path:
    """NAME.safetensors -> NAME.train-state.safetensors."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(_strip(checkpoint, CHECKPOINT) + TRAIN_STATE)


def samples_folder(checkpoint: str | os.PathLike) -> Path:
    """NAME.safetensors -> NAME.samples/."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(_strip(checkpoint, CHECKPOINT) + SAMPLES)


def teaching_assistant(student: str | os.PathLike) -> Path:
    """NAME.safetensors -> NAME.ta.safetensors, beside the student it teaches."""
    student = Path(student)
    return student.with_name(_strip(student, CHECKPOINT) + TEACHING_ASSISTANT)


def onnx_data(onnx: str | os.PathLike) -> Path:
    """NAME.onnx -> NAME.onnx.data (the external weights ONNX's own writer names so)."""
    onnx = Path(onnx)
    return onnx.with_name(onnx.name + ONNX_DATA)


def int8_onnx(onnx: str | os.PathLike, folder: str | os.PathLike | None = None) -> Path:
    """NAME.onnx -> NAME.int8.onnx, beside it or in `folder`."""
    onnx = Path(onnx)
    name = _strip(onnx, ONNX) + INT8 + ONNX
    return Path(folder) / name if folder is not None else onnx.with_name(name)


def precision_plan(quantized: str | os.PathLike) -> Path:
    """NAME.int8.onnx -> NAME.int8.precision.json."""
    quantized = Path(quantized)
    return quantized.with_name(_strip(quantized, ONNX) + PRECISION_PLAN)


def sidecar(engine: str | os.PathLike) -> Path:
    """NAME.plan -> NAME.plan.json."""
    engine = Path(engine)
    return engine.with_name(engine.name + SIDECAR)


def tradeoff_plot(plot: str | os.PathLike) -> Path:
    """NAME.png -> NAME.tradeoff.png: the quality/latency plot `bench --plot` draws beside the latency one."""
    plot = Path(plot)
    return plot.with_name(f"{plot.stem}.tradeoff{plot.suffix or '.png'}")


def default_export(model: str, precision: str) -> Path:
    """A checkpoint path or a preset name -> export/NAME.onnx (export/NAME.fp16.onnx for FP16)."""
    path = Path(model)
    name = path.stem if path.suffix else model.replace("/", "-")
    return EXPORT_FOLDER / f"{name}{'.fp16' if precision == 'fp16' else ''}{ONNX}"


def default_engine(onnx: str | os.PathLike, precision: str) -> Path:
    """NAME.onnx -> engines/NAME.PRECISION.plan."""
    return ENGINES_FOLDER / f"{_strip(Path(onnx), ONNX)}.{precision}{ENGINE}"


def companions(path: str | os.PathLike) -> list[Path]:
    """The files that belong to a file and go with it (its external data, sidecar or training state)."""
    path = Path(path)
    if path.name.endswith(ONNX):
        return [onnx_data(path)]
    if is_engine(path):
        return [sidecar(path)]
    if path.name.endswith(CHECKPOINT) and not path.name.endswith(TRAIN_STATE):
        return [train_state(path)]
    return []
