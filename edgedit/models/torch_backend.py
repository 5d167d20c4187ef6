"""The torch backends: a checkpoint or a preset run by torch eager ("torch") or compiled by
torch.compile ("torch-compile"), through the same function that export traces (`DeployableDiT`).
Registered with the runtime as entry points."""

from __future__ import annotations

import os
import shutil

import numpy as np

from edgedit import __version__
from edgedit.contract import artefacts
from edgedit.contract.deps import require
from edgedit.contract.errors import BackendFailed, EdgeditError
from edgedit.contract.schedules import sampler_spec
from edgedit.contract.spec import ModelMeta, io_spec
from edgedit.runtime.backends import Backend, RunOptions


class TorchBackend(Backend):
    name = "torch"
    suffixes = (artefacts.CHECKPOINT, "")  # "": a preset name

    def __init__(self, net, source: dict, device: str = "cpu"):
        """Over a DiT already in memory (e.g. the EMA weights during training)."""
        torch = require("torch", extra="train")
        from edgedit.models.deployable import DeployableDiT

        self.torch = torch
        self.device = device
        self.module = DeployableDiT(net).to(device).eval()
        self.forward = self.module  # what a call runs
        inputs, outputs = io_spec(net.config)
        self.meta = ModelMeta(
            net.config,
            inputs,
            outputs,
            sampler_spec(net.config, net.noise),
            "fp32",
            {"min": 1, "opt": 1, "max": 2**31 - 1},
            source,
            __version__,
        )

    @classmethod
    def open(cls, model: str, options: RunOptions) -> TorchBackend:
        from edgedit.models.loading import load_model_or_preset

        net, source = load_model_or_preset(model, quiet=options.quiet, **options.overrides)
        if options.threads:  # torch's pool is per process: the last backend opened sets it
            require("torch", extra="train").set_num_threads(options.threads)
        return cls(net, source, options.device)

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = [self.torch.from_numpy(feeds[s.name]).to(self.device) for s in self.inputs]
        with self.torch.inference_mode():
            out = self.forward(*args)
        return {self.outputs[0].name: out.float().cpu().numpy()}


class TorchCompileBackend(TorchBackend):
    """torch.compile (TorchInductor, static shapes) of the eager backend's module: what a PyTorch user
    tries before exporting. Each batch size compiles on its first call, which takes a minute or more
    on a small CPU (bench's warm-up absorbs it; Inductor caches the result on disk for later runs),
    so `auto` never picks it to run a model, but `edgedit bench` times it next to eager torch."""

    name = "torch-compile"
    auto = False
    peer = True

    @classmethod
    def available(cls) -> bool:
        """TorchInductor builds CPU kernels with a C++ compiler (CXX, else c++, g++ or clang++)."""
        return any(shutil.which(c) for c in (os.environ.get("CXX", ""), "c++", "g++", "clang++") if c)

    @classmethod
    def open(cls, model: str, options: RunOptions) -> TorchCompileBackend:
        if options.device == "cpu" and not cls.available():
            raise EdgeditError(
                "torch.compile needs a C++ compiler for CPU kernels (TorchInductor) and none was found "
                "(CXX, c++, g++, clang++); install one, or use `backend` torch"
            )
        return super().open(model, options)

    # Compiled against eager on the first call of each shape: Inductor reorders float32 reductions, so
    # the two differ by rounding (about 1e-6 of the output's scale here); 1e-3 of it is far beyond that
    # and far below a wrong kernel (NaN, garbage).
    AGREEMENT = 1e-3

    def __init__(self, net, source: dict, device: str = "cpu"):
        super().__init__(net, source, device)
        self.forward = self.torch.compile(self.module, dynamic=False)
        self._checked: set[tuple] = set()

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            out = super()._run(feeds)
        except Exception as err:
            # Dynamo and Inductor fail on some CPUs (e.g. C++ that does not compile for the kernel path);
            # that is this backend failing here, not the model or the input.
            if not type(err).__module__.startswith(("torch._dynamo", "torch._inductor")):
                raise
            raise BackendFailed(
                f"torch.compile failed on this machine ({compile_failure(err)}); use the torch backend"
            ) from None
        shape = tuple(feeds[s.name].shape for s in self.inputs)
        if shape not in self._checked:  # the compiling call: bench's warm-up, never a timed one
            self._check_against_eager(feeds, out)
            self._checked.add(shape)
        return out

    def _check_against_eager(self, feeds: dict[str, np.ndarray], out: dict[str, np.ndarray]) -> None:
        """Inductor can also compile wrong code that runs (seen: NaN everywhere with ATen forced onto AVX2
        on an AVX-512 AMD EPYC, torch 2.13): a wrong answer is a failure of this backend here."""
        compiled = out[self.outputs[0].name]
        forward, self.forward = self.forward, self.module
        try:
            eager = super()._run(feeds)[self.outputs[0].name]
        finally:
            self.forward = forward
        scale = max(float(np.max(np.abs(eager))), 1.0)
        gap = float(np.max(np.abs(compiled - eager))) if np.isfinite(compiled).all() else float("nan")
        if not gap <= self.AGREEMENT * scale:  # NaN included
            raise BackendFailed(
                f"torch.compile computes other numbers than eager torch on this machine (max |difference| {gap:.3g}, "
                f"output scale {scale:.3g}): an upstream TorchInductor miscompilation; use the torch backend"
            )


def compile_failure(err: Exception) -> str:
    """The cause in one line: the compiler's first error line when there is one."""
    text = str(err)
    first_error = next((line[line.index("error:") :].strip() for line in text.splitlines() if "error:" in line), None)
    return (first_error or f"{type(err).__name__}: {text.splitlines()[0] if text else ''}")[:200]
