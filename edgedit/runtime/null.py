"""The null backend: a model that costs nothing. It answers every call with preallocated outputs
of the right names, dtypes and shapes, so that timing it measures exactly what edgedit adds around
a network call (noise, labels, checks, padding, copies): `edgedit bench MODEL --backend null`.
Torch-free; reads the model's contract from the ONNX header or the engine's sidecar, no weights.
"""

from __future__ import annotations

import numpy as np

from edgedit.contract import artefacts
from edgedit.contract.fileio import regular_file
from edgedit.contract.spec import ModelMeta
from edgedit.runtime.backends import Backend, RunOptions


class NullBackend(Backend):
    name = "null"
    suffixes = (artefacts.ONNX, *artefacts.ENGINE_READ)
    auto = False  # only on request: it computes nothing

    def __init__(self, meta: ModelMeta):
        self.meta = meta
        self.device = "none"
        self._outputs: dict[int, dict[str, np.ndarray]] = {}  # batch -> preallocated outputs

    @classmethod
    def open(cls, model: str, options: RunOptions) -> NullBackend:
        path = regular_file(model)
        if artefacts.is_engine(path):
            from edgedit.contract.sidecar import read_sidecar, sidecar_meta

            return cls(sidecar_meta(read_sidecar(path), str(path)))
        from edgedit.contract.spec import read_model

        return cls(read_model(path)[0])

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = feeds[self.inputs[0].name].shape[0]
        outputs = self._outputs.get(batch)
        if outputs is None:
            outputs = self._outputs[batch] = {s.name: np.zeros(s.concrete(batch), s.dtype) for s in self.outputs}
        return outputs
