"""Backends: run a deployed model on numpy arrays, whatever executes it.

A backend knows its model's metadata (`ModelMeta`: I/O specs, sampler, batch range, precision)
and maps named numpy inputs to named numpy outputs. Samplers and the benchmark harness only talk
to this interface, so ONNX Runtime, TensorRT and torch are interchangeable.

Backends register themselves through package metadata (the entry-point group "edgedit.backends"
in pyproject.toml): the runtime names none of them, and one that lives in a workstation package
(torch, with the models) is found without the runtime importing that package. A new backend is a
`Backend` subclass plus one entry point (docs/architecture.md).
"""

from __future__ import annotations

import importlib.metadata
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgedit.contract.errors import EdgeditError
from edgedit.contract.spec import ModelMeta, TensorSpec

ENTRY_POINTS = "edgedit.backends"


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """What a backend may be asked besides the model; each backend uses its own."""

    provider: str = "auto"  # ONNX Runtime execution provider: auto, cpu, cuda, tensorrt
    threads: int = 0  # intra-op threads of ONNX Runtime and torch (0: their defaults)
    cuda_graph: bool = False  # TensorRT: replay each batch size's call as a CUDA graph
    device: str = "cpu"  # torch device
    overrides: dict[str, Any] = field(default_factory=dict)  # preset model overrides (torch)
    quiet: bool = False  # no warning for a preset's random weights

    def __post_init__(self):
        limit = max_threads()
        if not 0 <= self.threads <= limit:
            raise EdgeditError(
                f"`threads` must be 0..{limit} (this machine's {os.cpu_count() or 1} cores x "
                f"{THREADS_PER_CORE}; 0 = the runtime's default), got {self.threads}"
            )


THREADS_PER_CORE = 4  # oversubscription beyond this only adds contention (and thousands of threads crash)


def max_threads() -> int:
    return (os.cpu_count() or 1) * THREADS_PER_CORE


class Backend(ABC):
    name: ClassVar[str]  # onnxruntime | tensorrt | torch ...
    suffixes: ClassVar[tuple[str, ...]]  # model files it runs; "" stands for a preset name
    auto: ClassVar[bool] = True  # chosen by `auto` for those suffixes
    peer: ClassVar[bool] = False  # not chosen by `auto`, but timed next to its choice by `edgedit bench`
    device: str  # where it runs, e.g. "cpu", "CUDAExecutionProvider"
    meta: ModelMeta

    @classmethod
    def available(cls) -> bool:
        """Whether it can run here; `edgedit bench`'s auto leaves out peers that cannot."""
        return True

    @classmethod
    def open(cls, model: str, options: RunOptions) -> Backend:
        """The backend for a model file or preset name (registered backends implement this)."""
        raise EdgeditError(f"the {cls.name} backend opens no model files")

    @property
    def inputs(self) -> list[TensorSpec]:
        return self.meta.inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        return self.meta.outputs

    @property
    def precision(self) -> str:
        return self.meta.precision

    @property
    def title(self) -> str:
        """e.g. 'onnxruntime (CPUExecutionProvider, fp32)'."""
        return f"{self.name} ({self.device}, {self.precision})"

    def check_feeds(self, feeds: dict[str, np.ndarray]) -> int:
        """Validate names, dtypes and shapes against the spec; returns the batch size."""
        batch = feeds[self.inputs[0].name].shape[0] if self.inputs[0].name in feeds else None
        expected = self._expected(batch) if batch is not None else None
        if expected is None or len(feeds) != len(expected):
            missing = [s.name for s in self.inputs if s.name not in feeds]
            unexpected = sorted(set(feeds) - {s.name for s in self.inputs})
            raise EdgeditError(
                f"model inputs are {[s.name for s in self.inputs]}: missing {missing}, unexpected {unexpected}"
            )
        for name, (dtype, shape) in expected.items():
            array = feeds.get(name)
            if array is None:
                raise EdgeditError(f"model inputs are {[s.name for s in self.inputs]}: missing ['{name}']")
            if array.dtype != dtype or array.shape != shape:
                raise EdgeditError(
                    f"input '{name}' must be {dtype} {list(shape)}, got {array.dtype} {list(array.shape)}"
                )
        lo, hi = self.meta.batch["min"], self.meta.batch["max"]
        if not lo <= batch <= hi:
            raise EdgeditError(
                f"batch {batch} is outside this model's batch range {lo}..{hi} "
                "(set at export: a static batch or a dynamic batch range)"
            )
        return batch

    def _expected(self, batch: int) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
        """{input name: (dtype, shape)} at this batch, built once per batch size: checks run every call."""
        cache = self.__dict__.setdefault("_expected_by_batch", {})
        if batch not in cache:
            cache[batch] = {s.name: (np.dtype(s.dtype), s.concrete(batch)) for s in self.inputs}
        return cache[batch]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Samplers speak float32: a model with FP16 inputs and outputs (`quantize --io fp16`) gets its
        float inputs cast to FP16 here, and gives float32 back."""
        if self.half_io:
            feeds = {k: v.astype(np.float16) if v.dtype == np.float32 else v for k, v in feeds.items()}
        self.check_feeds(feeds)
        out = self._run(feeds)
        return {k: v.astype(np.float32) for k, v in out.items()} if self.half_io else out

    @property
    def half_io(self) -> bool:
        return any(s.dtype == "float16" for s in [*self.inputs, *self.outputs])

    @abstractmethod
    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


_REGISTRY: dict[str, type[Backend]] = {}


def registered() -> dict[str, type[Backend]]:
    """Every installed backend class by name, from the "edgedit.backends" entry points."""
    if not _REGISTRY:
        for entry in importlib.metadata.entry_points(group=ENTRY_POINTS):
            _REGISTRY[entry.name] = entry.load()
        if not _REGISTRY:
            raise EdgeditError(
                "no edgedit backends are registered: edgedit is not installed as a package "
                "(pip install -e . registers them)"
            )
    return _REGISTRY


def load_backend(model: str | Path, backend: str = "auto", options: RunOptions | None = None) -> Backend:
    """The backend for MODEL: `auto` picks by file type (.plan TensorRT, .onnx ONNX Runtime, a
    checkpoint or preset name torch)."""
    options = options or RunOptions()
    backends = registered()
    suffix = Path(str(model)).suffix
    if backend == "auto":
        found = [cls for cls in backends.values() if cls.auto and suffix in cls.suffixes]
        if not found:
            raise EdgeditError(f"{model}: no backend runs {suffix or 'preset'} models; known: {', '.join(backends)}")
        return found[0].open(str(model), options)
    if backend not in backends:
        raise EdgeditError(f"unknown backend '{backend}'; choose auto, {', '.join(backends)}")
    cls = backends[backend]
    if suffix not in cls.suffixes:
        runs = ", ".join(s or "preset names" for s in cls.suffixes)
        raise EdgeditError(
            f"{model}: the {backend} backend runs {runs}; see `edgedit export` and `edgedit build-engine`"
        )
    return cls.open(str(model), options)


def backends_for(model: str | Path, requested: list[str]) -> list[str]:
    """The backends of `requested` that run MODEL, in order and without duplicates, for `edgedit
    bench`: `auto` is the backend `load_backend` picks plus its peers for that file type (a
    checkpoint: torch eager and torch.compile); with several requested (e.g. onnxruntime,torch over
    ONNX files and checkpoints) each model gets those that can run it. A single explicit backend
    that cannot run it is refused by `load_backend`, with its reason."""
    if requested != ["auto"] and len(requested) == 1:
        return requested
    backends, suffix = registered(), Path(str(model)).suffix
    chosen = []
    for kind in requested:
        if kind == "auto":
            picked = [name for name, cls in backends.items() if cls.auto and suffix in cls.suffixes][:1]
            peers = [name for name, cls in backends.items() if cls.peer and suffix in cls.suffixes and cls.available()]
            kinds = picked + peers if picked else []
        elif kind not in backends:
            raise EdgeditError(f"unknown backend '{kind}'; choose auto, {', '.join(backends)}")
        else:
            kinds = [kind] if suffix in backends[kind].suffixes else []
        chosen += [k for k in kinds if k not in chosen]
    if not chosen:
        raise EdgeditError(
            f"{model}: none of the backends {', '.join(requested)} runs {suffix or 'preset'} models; "
            f"known: {', '.join(backends)}"
        )
    return chosen


def pad_batch(feeds: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
    """Repeat the last row up to `batch` rows: static-batch engines take exactly their batch."""
    n = next(iter(feeds.values())).shape[0]
    if n == batch:
        return feeds
    return {k: np.concatenate([v, np.repeat(v[-1:], batch - n, axis=0)]) for k, v in feeds.items()}
