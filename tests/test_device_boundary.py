"""The device side (contract, cost, runtime, engines, bench, and the CLI's device commands) must work
with exactly what the device image installs: Dockerfile.l4t's pip installs (edgedit's core with the
tensorrt extra, numpy, polygraphy, pycuda, optionally onnxruntime-gpu) and their dependencies, plus
TensorRT from JetPack's apt. The device commands run in a fresh interpreter that can import nothing
else, torch and onnx included. (tests/test_architecture.py checks the same boundary in the import graph.)"""

import importlib.metadata
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).parent.parent
APT_MODULES = {"python3-libnvinfer": "tensorrt"}  # JetPack's apt packages the image installs -> import names
# The image installs onnxruntime-gpu from the Jetson AI Lab index; here the CPU build stands in (same module).
STANDS_IN = {"onnxruntime-gpu": "onnxruntime"}


def dockerfile_installs() -> tuple[list[str], set[str]]:
    """(pip requirement strings, apt import names) that Dockerfile.l4t installs."""
    text = (ROOT / "Dockerfile.l4t").read_text().replace("\\\n", " ")
    pip = [
        spec for command in re.findall(r"pip install ([^&;\n]+)", text) for spec in re.findall(r'"([^"]+)"', command)
    ]
    apt = {module for package, module in APT_MODULES.items() if re.search(rf"apt-get install[^&]*\b{package}\b", text)}
    return pip, apt


def device_image_modules() -> set[str]:
    """Top-level modules the device image provides: the closure of its pip requirements (as installed
    here, markers evaluated with the requested extras), the apt ones, and the standard library."""
    pip, apt = dockerfile_installs()
    wanted = [
        (canonicalize_name("edgedit"), set(spec[2:-1].split(",")))
        if spec.startswith(".[")
        else (canonicalize_name(STANDS_IN.get(Requirement(spec).name, Requirement(spec).name)), set())
        for spec in pip
    ]
    closure, modules = set(), set(apt)
    while wanted:
        name, extras = wanted.pop()
        if (name, frozenset(extras)) in closure:
            continue
        closure.add((name, frozenset(extras)))
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:  # not installed here (pycuda): its own name only
            modules.add(name.replace("-", "_"))
            continue
        for text in requires:
            req = Requirement(text)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras | {""}):
                wanted.append((canonicalize_name(req.name), set(req.extras)))
    names = {n for n, _ in closure}
    for module, dists in importlib.metadata.packages_distributions().items():
        if any(canonicalize_name(d) in names for d in dists):
            modules.add(module)
    return modules | set(sys.stdlib_module_names) | {"edgedit"}


def test_the_device_image_is_what_the_dockerfile_says():
    pip, apt = dockerfile_installs()
    assert {".[tensorrt,serve]", "onnxruntime-gpu<1.24"} <= set(pip) and apt == {"tensorrt"}
    modules = device_image_modules()
    assert {"numpy", "typer", "rich", "PIL", "pydantic", "polygraphy", "onnxruntime", "tensorrt"} <= modules
    assert {"starlette", "uvicorn", "prometheus_client"} <= modules  # edgedit serve
    assert not {"torch", "onnx", "onnxscript", "safetensors", "sklearn", "matplotlib"} & modules


PROBE = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys

    before = set(sys.modules)

    def allowed(top):
        return top in ALLOWED or top.startswith("_sysconfigdata")  # the standard library's, named per build

    class Block:
        def find_spec(self, name, path=None, target=None):
            if not allowed(name.split(".")[0]):
                raise ModuleNotFoundError(f"{name} is not in the device image", name=name)
            return None

    sys.meta_path.insert(0, Block())
    import edgedit.bench, edgedit.contract, edgedit.cost, edgedit.engines, edgedit.runtime, edgedit.serve
    device_modules = ["edgedit.doctor", "edgedit.fileinfo", "edgedit.pipeline", "edgedit.cli"]
    for package in (edgedit.contract, edgedit.cost, edgedit.runtime, edgedit.engines, edgedit.bench, edgedit.serve):
        device_modules += [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
    for name in device_modules:
        importlib.import_module(name)

    from typer.testing import CliRunner
    from edgedit.cli import app
    runner = CliRunner()
    results = {" ".join(args): runner.invoke(app, args)
             for args in (["--help"], ["models", "--json"], ["models"], ["doctor", "--json"],
                          ["sample", ONNX_MODEL, "-n", "3", "-o", GRID],
                          ["bench", ONNX_MODEL, "--iters", "2", "--warmup", "0", "--batch", "1,2"],
                          ["build-engine", ONNX_MODEL, "--precision", "int8", "--dry-run"],
                          ["tegrastats", TEGRASTATS_LOG], ["info", ONNX_MODEL])}
    codes = {k: r.exit_code for k, r in results.items()}
    failures = {k: repr(r.exception) + r.stderr[-300:] for k, r in results.items() if r.exit_code}
    checkpoint = runner.invoke(app, ["info", CHECKPOINT])  # a workstation file: needs safetensors
    from edgedit.serve.service import Service, ServeOptions  # what `edgedit serve` runs per batch
    served = Service(ONNX_MODEL, ServeOptions()).run([1, 2, 3], [0, None, 1])
    codes["serve: a batch"] = 0 if served.shape[0] == 3 else 1
    print(json.dumps({"modules": device_modules, "codes": codes, "failures": failures,
                      "checkpoint": [checkpoint.exit_code, checkpoint.stderr],
                      # modules loaded from a file past the finder (Cython registers synthetic ones: no file)
                      "leaked": sorted({m.split(".")[0] for m in set(sys.modules) - before
                                        if getattr(sys.modules[m], "__file__", None)
                                        and not allowed(m.split(".")[0])})}))
    """
)


def test_device_side_imports_and_runs_with_only_the_device_image(exported, tmp_path):
    onnx_model, checkpoint = map(str, exported["onestep-cond"])
    log = str(Path(__file__).parent / "fixtures" / "tegrastats_orin_nano_r36.log")
    code = (
        f"ALLOWED = {sorted(device_image_modules())!r}\nALLOWED = set(ALLOWED)\nONNX_MODEL = {onnx_model!r}\n"
        f"CHECKPOINT = {checkpoint!r}\nGRID = {str(tmp_path / 'grid.png')!r}\nTEGRASTATS_LOG = {log!r}\n" + PROBE
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert {
        "edgedit.runtime.noise",
        "edgedit.runtime.backends",
        "edgedit.runtime.samplers",
        "edgedit.runtime.tensorrt",
        "edgedit.engines.build",
        "edgedit.bench.harness",
        "edgedit.bench.tegrastats",
        "edgedit.serve.app",
        "edgedit.serve.batcher",
        "edgedit.contract.spec",
        "edgedit.cost.fit",
    } <= set(result["modules"])
    assert result["leaked"] == []
    assert set(result["codes"].values()) == {0}, result["failures"]
    assert (tmp_path / "grid.png").exists()  # sampling an ONNX model needs only numpy + onnxruntime
    code, stderr = result["checkpoint"]  # checkpoints are workstation files: one line naming the extra
    assert code == 2 and "needs the Python package 'safetensors'" in stderr and "edgedit[train]" in stderr
