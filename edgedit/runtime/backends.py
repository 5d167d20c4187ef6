"""Backends: run a deployed model on numpy arrays, whatever executes it.

A backend knows its model's metadata (`ModelMeta`: I/O specs, sampler, batch range, precision)
and maps named numpy inputs to named numpy outputs. Samplers and the benchmark harness only talk
to this interface, so the ONNX Runtime, torch and TensorRT backends are interchangeable.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from edgedit import __version__
from edgedit.deps import require
from edgedit.errors import EdgeditError
from edgedit.runtime.spec import ModelMeta, TensorSpec

ORT_PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


class Backend(ABC):
    name: str  # onnxruntime | torch | tensorrt
    device: str  # where it runs, e.g. "cpu", "CUDAExecutionProvider"
    meta: ModelMeta

    @property
    def inputs(self) -> list[TensorSpec]:
        return self.meta.inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        return self.meta.outputs

    @property
    def precision(self) -> str:
        return self.meta.precision

    def check_feeds(self, feeds: dict[str, np.ndarray]) -> int:
        """Validate names, dtypes and shapes against the spec; returns the batch size."""
        missing = [s.name for s in self.inputs if s.name not in feeds]
        unexpected = sorted(set(feeds) - {s.name for s in self.inputs})
        if missing or unexpected:
            raise EdgeditError(f"model inputs are {[s.name for s in self.inputs]}: missing {missing}, unexpected {unexpected}")
        batch = feeds[self.inputs[0].name].shape[0]
        for spec in self.inputs:
            array = feeds[spec.name]
            if array.dtype != np.dtype(spec.dtype) or array.shape != spec.concrete(batch):
                raise EdgeditError(f"input '{spec.name}' must be {spec.dtype} {list(spec.concrete(batch))}, "
                                   f"got {array.dtype} {list(array.shape)}")
        lo, hi = self.meta.batch["min"], self.meta.batch["max"]
        if not lo <= batch <= hi:
            raise EdgeditError(f"batch {batch} is outside this model's batch range {lo}..{hi} "
                               "(set at export with --batch / --dynamic-batch)")
        return batch

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.check_feeds(feeds)
        return self._run(feeds)

    @abstractmethod
    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def describe(self) -> str:
        return f"{self.name} ({self.device}, {self.precision})"


def ort_providers(choice: str, available: list[str]) -> list[str]:
    """'auto': CUDA when present, else CPU (TensorRT's EP is left to an explicit choice: a Jetson
    runs TensorRT natively through `edgedit build-engine`)."""
    if choice == "auto":
        return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    if choice not in ORT_PROVIDERS:
        raise EdgeditError(f"unknown provider '{choice}'; choose auto, {', '.join(ORT_PROVIDERS)}")
    provider = ORT_PROVIDERS[choice]
    if provider not in available:
        raise EdgeditError(f"ONNX Runtime here has no {provider} (available: {', '.join(available)}); "
                           "on a Jetson install onnxruntime-gpu from the Jetson AI Lab index (see README)")
    return [provider, "CPUExecutionProvider"] if provider != "CPUExecutionProvider" else [provider]


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, path: str | os.PathLike, provider: str = "auto", threads: int = 0):
        ort = require("onnxruntime", hint="pip install onnxruntime (on a Jetson: onnxruntime-gpu from the Jetson AI Lab index)")
        path = Path(path)
        if not path.is_file():
            raise EdgeditError(f"{path}: no such file")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3  # errors only
        try:
            self.session = ort.InferenceSession(str(path), options, providers=ort_providers(provider, ort.get_available_providers()))
        except EdgeditError:
            raise
        except Exception as err:
            raise EdgeditError(f"{path}: ONNX Runtime cannot load it ({str(err).splitlines()[0][:160]})") from err
        self.meta = ModelMeta.from_metadata(self.session.get_modelmeta().custom_metadata_map, str(path))
        self.device = self.session.get_providers()[0]
        names = [i.name for i in self.session.get_inputs()]
        if names != [s.name for s in self.meta.inputs]:
            raise EdgeditError(f"{path}: graph inputs {names} disagree with its edgedit metadata; re-export it")

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self.session.run([s.name for s in self.outputs], feeds)
        return dict(zip((s.name for s in self.outputs), values))


class TorchBackend(Backend):
    """A checkpoint or a preset run by torch eager, through the same function export traces."""

    name = "torch"

    def __init__(self, model: str, device: str = "cpu", quiet: bool = False, **overrides):
        from edgedit.models.loading import load_model_or_preset

        net, source = load_model_or_preset(model, quiet=quiet, **overrides)
        self._setup(net, source, device)

    @classmethod
    def from_net(cls, net, source: dict, device: str = "cpu") -> TorchBackend:
        """A backend over a DiT already in memory (e.g. the EMA weights during training)."""
        backend = cls.__new__(cls)
        backend._setup(net, source, device)
        return backend

    def _setup(self, net, source: dict, device: str) -> None:
        torch = require("torch", extra="train")
        from edgedit.models.deployable import DeployableDiT
        from edgedit.runtime.spec import io_spec, sampler_spec

        self.torch = torch
        self.device = device
        self.module = DeployableDiT(net).to(device).eval()
        inputs, outputs = io_spec(net.config)
        self.meta = ModelMeta(net.config, inputs, outputs, sampler_spec(net.config), "fp32",
                              {"min": 1, "opt": 1, "max": 2**31 - 1}, source, __version__)

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = [self.torch.from_numpy(feeds[s.name]).to(self.device) for s in self.inputs]
        with self.torch.inference_mode():
            out = self.module(*args)
        return {self.outputs[0].name: out.float().cpu().numpy()}


def load_backend(model: str | os.PathLike, backend: str = "auto", provider: str = "auto", cuda_graph: bool = False,
                 threads: int = 0, **overrides) -> Backend:
    """The backend for MODEL: a .plan engine (TensorRT), an .onnx file (ONNX Runtime), a
    .safetensors checkpoint or a preset name (torch)."""
    path = Path(model)
    kind = backend
    if backend == "auto":
        kind = {".plan": "tensorrt", ".onnx": "onnxruntime"}.get(path.suffix, "torch")
    if kind == "tensorrt":
        if path.suffix != ".plan":
            raise EdgeditError(f"{model}: the tensorrt backend runs .plan engines; build one with `edgedit build-engine`")
        from edgedit.runtime.tensorrt import TensorRTBackend

        return TensorRTBackend(path, cuda_graph=cuda_graph)
    if kind == "onnxruntime":
        if path.suffix != ".onnx":
            raise EdgeditError(f"{model}: the onnxruntime backend runs .onnx files; export it with `edgedit export`")
        return OnnxRuntimeBackend(path, provider, threads)
    if kind == "torch":
        if path.suffix in (".onnx", ".plan"):
            raise EdgeditError(f"{model}: the torch backend runs checkpoints and presets, not ONNX files")
        return TorchBackend(str(model), **overrides)
    raise EdgeditError(f"unknown backend '{backend}'; choose auto, tensorrt, onnxruntime or torch")


def pad_batch(feeds: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
    """Repeat the last row up to `batch` rows: static-batch engines take exactly their batch."""
    n = next(iter(feeds.values())).shape[0]
    if n == batch:
        return feeds
    return {k: np.concatenate([v, np.repeat(v[-1:], batch - n, axis=0)]) for k, v in feeds.items()}

