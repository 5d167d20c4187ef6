"""What edgedit's host side adds around a network call (issue 13), measured over the null backend
(a model that costs nothing: runtime/null.py) for a one-step model at batch 1 and 8:

- `generate`: what `edgedit bench --what sampler` times (checks, labels, noise, padding, the call,
  the copy into the output array);
- `noise`: the per-seed noise alone, per scheme (pcg64-keyed: a seed-keyed state set on one reused generator; pcg64:
  edgedit 0.1's generator per seed);
- `tensorrt run`: the TensorRT backend's own Python work per call (input checks, copies into the
  page-locked buffers, shapes, the enqueue, events, copies out), over this repository's fakes of
  TensorRT, pycuda and the driver (tests/fakes) with the engine's work set to zero. The fakes'
  own Python is included, so this is an upper bound; a real enqueue is asynchronous.

Rounds are interleaved (every variant once per round, in turn) and each figure is the median over
rounds of the mean of CALLS calls. Per image = (t(8) - t(1)) / 7, per call = t(1) - per image.
Target: at most 5 us per image + 30 us per call on this machine, so that on an Orin's Cortex-A78AE
(assumed 3x slower per core) the host stays under 10% of the network call it wraps: the calibrated
device estimate (edgedit.cost.fit.estimate) of the same model and batch, FP16 on an Orin Nano 8GB.

    .venv/bin/python benchmarks/host_overhead.py [MODEL.onnx] [--rounds 30] [--json out.json]
    PYTHONPATH=/old/checkout .venv/bin/python benchmarks/host_overhead.py MODEL.onnx   # an older edgedit

Without MODEL, the shipped student is exported to a temporary folder first (needs torch).
"""

from __future__ import annotations

import argparse
import inspect
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import edgedit
from edgedit.contract.spec import ModelMeta
from edgedit.runtime.backends import Backend
from edgedit.runtime.noise import noise_from_seeds
from edgedit.runtime.samplers import generate

try:
    from edgedit.runtime.null import NullBackend
except ImportError:  # an edgedit before the null backend: the same thing, here

    class NullBackend(Backend):
        name, suffixes, auto = "null", (".onnx",), False

        def __init__(self, meta: ModelMeta):
            self.meta, self.device, self._outputs = meta, "none", {}

        def _run(self, feeds):
            batch = feeds[self.inputs[0].name].shape[0]
            if batch not in self._outputs:
                self._outputs[batch] = {s.name: np.zeros(s.concrete(batch), s.dtype) for s in self.outputs}
            return self._outputs[batch]


def open_null(model: Path) -> Backend:
    import onnx  # the header reader's location changed across versions; onnx reads any of them

    metadata = {p.key: p.value for p in onnx.load(str(model), load_external_data=False).metadata_props}
    return NullBackend(ModelMeta.from_metadata(metadata, str(model)))


def export_shipped_student(folder: Path) -> Path:
    student = Path(edgedit.__file__).parent / "assets" / "student-digits.safetensors"
    out = folder / "student.onnx"
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from edgedit.cli import main; main()",
            "export",
            str(student),
            "-o",
            str(out),
            "--dynamic-batch",
            "1:8:8",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return out


def variants(backend: Backend) -> dict[str, callable]:
    shape = backend.meta.inputs[0].concrete(1)[1:]
    has_schemes = "scheme" in inspect.signature(noise_from_seeds).parameters
    found = {}
    for batch in (1, 8):
        seeds = range(batch)
        found[f"generate b{batch}"] = lambda seeds=seeds, batch=batch: generate(backend, seeds, batch=batch)
        for scheme in ("pcg64-keyed", "pcg64") if has_schemes else ("pcg64",):
            kwargs = {"scheme": scheme} if has_schemes else {}
            found[f"noise {scheme} b{batch}"] = lambda seeds=seeds, kwargs=kwargs: noise_from_seeds(
                seeds, shape, **kwargs
            )
    return found


def tensorrt_variants(model: Path, scratch: Path) -> dict[str, callable]:
    """`tensorrt run bN` over the fakes (only in a checkout of this repository with them)."""
    fakes = Path(__file__).resolve().parent.parent / "tests" / "fakes"
    if not fakes.is_dir():
        return {}
    sys.path.insert(0, str(fakes))
    import libcuda  # the fakes, imported before anything imports the real ones
    import tensorrt

    import edgedit.contract.device
    import edgedit.runtime.cuda_graph
    from edgedit.engines.build import BuildOptions
    from edgedit.pipeline import build, plan_build
    from edgedit.runtime.backends import load_backend

    edgedit.contract.device.cuda_devices = lambda: {
        "driver": "12.6",
        "error": None,
        "devices": [
            {
                "index": 0,
                "name": "Orin (fake)",
                "compute_capability": "8.7",
                "memory_bytes": 7_600_000_000,
                "integrated": True,
            }
        ],
    }
    edgedit.runtime.cuda_graph._DRIVER = libcuda
    tensorrt.IExecutionContext._execute = lambda self: None  # the engine's work: zero
    backend = load_backend(build(plan_build(model, scratch / "s.plan", BuildOptions(precision="fp16"))).plan)
    found = {}
    for batch in (1, 8):
        feeds = {s.name: np.zeros(s.concrete(batch), s.dtype) for s in backend.inputs}

        def run(feeds=feeds):
            backend.run(feeds)
            tensorrt.CALLS.clear()  # the fake's call log, not ours

        found[f"tensorrt run b{batch}"] = run
    return found


def measure(calls: dict[str, callable], rounds: int, per_round: int) -> dict[str, float]:
    """Median over rounds of the mean microseconds per call; variants interleaved within each round."""
    times = {name: [] for name in calls}
    for call in calls.values():  # warm-up: caches, first-call allocations
        for _ in range(per_round):
            call()
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            for _ in range(per_round):
                call()
            times[name].append((time.perf_counter() - start) / per_round * 1e6)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", type=Path, help="a one-step .onnx (default: the shipped student)")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--calls", type=int, default=200, help="calls per variant per round")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        model = args.model or export_shipped_student(Path(scratch))
        backend = open_null(model)
        spec = backend.meta.sampler
        if (spec["type"] if isinstance(spec, dict) else spec.type) != "one-step":  # older checkouts: a dict
            sys.exit(f"{model}: host overhead is measured on a one-step model")
        calls = variants(backend)
        if "tensorrt" not in sys.modules and hasattr(edgedit.runtime, "null"):  # a current checkout
            calls.update(tensorrt_variants(model, Path(scratch)))
        us = measure(calls, args.rounds, args.calls)
    result = {
        "edgedit": str(Path(edgedit.__file__).parent),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "rounds": args.rounds,
        "calls_per_round": args.calls,
        "us_per_call": us,
    }
    for what in ["generate", "tensorrt run"] + [f"noise {s}" for s in ("pcg64-keyed", "pcg64")]:
        if f"{what} b8" in us:
            image = (us[f"{what} b8"] - us[f"{what} b1"]) / 7
            result[what] = {"us_per_image": image, "us_per_call": us[f"{what} b1"] - image}
    print(f"edgedit at {result['edgedit']}; median over {args.rounds} interleaved rounds of {args.calls} calls")
    for name, value in us.items():
        print(f"  {name:<22} {value:8.1f} us per call")
    for what in ("generate", "tensorrt run", "noise pcg64-keyed", "noise pcg64"):
        if what in result:
            r = result[what]
            print(f"  {what:<22} {r['us_per_image']:8.1f} us per image + {r['us_per_call']:.1f} us per call")
    if "generate" in result:
        from edgedit.cost.fit import estimate

        parts = [result[w] for w in ("generate", "tensorrt run") if w in result]  # the sampler, then the engine call
        result["against_device"] = {}
        for batch in (1, 8):
            host = 3 * sum(r["us_per_call"] + batch * r["us_per_image"] for r in parts)  # an A78AE core as 3x slower
            device_us = 1e3 * estimate(backend.meta.config, "orin-nano", "fp16", batch=batch).ms
            result["against_device"][f"b{batch}"] = {"host_us": host, "device_estimate_us": device_us}
            print(
                f"  estimate for a Cortex-A78AE (3x this machine per core), batch {batch}: {host:.0f} us host "
                f"per call ({' + '.join(w for w in ('generate', 'tensorrt run') if w in result)}), "
                f"{host / device_us:.0%} of the network call's {device_us:.0f} us (Orin Nano FP16, calibrated "
                "estimate)"
            )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
