"""The ONNX Runtime backend: the reference executor (CPU), CUDA where onnxruntime-gpu is installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgedit.contract import artefacts
from edgedit.contract.deps import require
from edgedit.contract.errors import EdgeditError
from edgedit.contract.spec import read_model
from edgedit.runtime.backends import Backend, RunOptions

ORT_PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


def ort_providers(choice: str, available: list[str]) -> list[str]:
    """'auto': CUDA when present, else CPU (TensorRT's EP is left to an explicit choice: a Jetson
    runs TensorRT natively through `edgedit build-engine`)."""
    if choice == "auto":
        return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    if choice not in ORT_PROVIDERS:
        raise EdgeditError(f"unknown provider '{choice}'; choose auto, {', '.join(ORT_PROVIDERS)}")
    provider = ORT_PROVIDERS[choice]
    if provider not in available:
        raise EdgeditError(
            f"ONNX Runtime here has no {provider} (available: {', '.join(available)}); "
            "on a Jetson install onnxruntime-gpu from the Jetson AI Lab index (see README)"
        )
    return [provider, "CPUExecutionProvider"] if provider != "CPUExecutionProvider" else [provider]


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    suffixes = (artefacts.ONNX,)

    def __init__(self, path, provider: str = "auto", threads: int = 0):
        ort = require(
            "onnxruntime", hint="pip install onnxruntime (on a Jetson: onnxruntime-gpu from the Jetson AI Lab index)"
        )
        self.meta, _ = read_model(path)  # validated and hash-checked before ONNX Runtime parses anything
        path = Path(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3  # errors only
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=ort_providers(provider, ort.get_available_providers())
            )
        except EdgeditError:
            raise
        except Exception as err:
            raise EdgeditError(f"{path}: ONNX Runtime cannot load it ({str(err).splitlines()[0][:160]})") from err
        self.device = self.session.get_providers()[0]

    @classmethod
    def open(cls, model: str, options: RunOptions) -> OnnxRuntimeBackend:
        return cls(model, options.provider, options.threads)

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self.session.run([s.name for s in self.outputs], feeds)
        return dict(zip((s.name for s in self.outputs), values))
