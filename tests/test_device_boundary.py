"""The device side (contract, cost, runtime, engines, bench, and the CLI's device commands) must work
where torch and onnx are not installed: a Jetson L4T container. Run it in a fresh interpreter that
cannot import them. (tests/test_architecture.py checks the same boundary in the import graph.)"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

BLOCKED = ("torch", "onnx", "onnxscript")

PROBE = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked on the device side")
            return None

    sys.meta_path.insert(0, Block())
    import edgedit.bench, edgedit.contract, edgedit.cost, edgedit.engines, edgedit.runtime
    device_modules = ["edgedit.doctor", "edgedit.fileinfo", "edgedit.pipeline", "edgedit.cli"]
    for package in (edgedit.contract, edgedit.cost, edgedit.runtime, edgedit.engines, edgedit.bench):
        device_modules += [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
    for name in device_modules:
        importlib.import_module(name)

    from typer.testing import CliRunner
    from edgedit.cli import app
    runner = CliRunner()
    codes = {" ".join(args): runner.invoke(app, args).exit_code
             for args in (["--help"], ["models", "--json"], ["models"], ["doctor", "--json"],
                          ["sample", ONNX_MODEL, "-n", "3", "-o", GRID],
                          ["bench", ONNX_MODEL, "--iters", "2", "--warmup", "0", "--batch", "1,2"],
                          ["build-engine", ONNX_MODEL, "--precision", "int8", "--dry-run"],
                          ["tegrastats", TEGRASTATS_LOG])}
    print(json.dumps({"modules": device_modules, "codes": codes,
                      "leaked": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)}))
    """
)


def test_device_side_imports_and_runs_without_torch_or_onnx(exported, tmp_path):
    onnx_model = str(exported["onestep-cond"][0])
    log = str(Path(__file__).parent / "fixtures" / "tegrastats_orin_nano_r36.log")
    code = (f"BLOCKED = {BLOCKED!r}\nONNX_MODEL = {onnx_model!r}\nGRID = {str(tmp_path / 'grid.png')!r}\n"
            f"TEGRASTATS_LOG = {log!r}\n" + PROBE)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"edgedit.runtime.noise", "edgedit.runtime.backends", "edgedit.runtime.samplers", "edgedit.runtime.tensorrt",
            "edgedit.engines.build", "edgedit.bench.harness", "edgedit.bench.tegrastats", "edgedit.contract.spec",
            "edgedit.cost.calibration"} <= set(result["modules"])
    assert result["leaked"] == []
    assert set(result["codes"].values()) == {0}, result["codes"]
    assert (tmp_path / "grid.png").exists()  # sampling an ONNX model needs only numpy + onnxruntime
