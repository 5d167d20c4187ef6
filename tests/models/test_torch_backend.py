import numpy as np
import pytest

from edgedit.contract.errors import BackendFailed
from edgedit.models.torch_backend import TorchBackend, TorchCompileBackend
from edgedit.runtime.backends import load_backend
from edgedit.runtime.samplers import generate


@pytest.mark.slow
def test_torch_compile_computes_what_eager_computes(exported):
    """Inductor's kernels against eager on the same seeds (one batch size: each one compiles anew);
    `auto` keeps choosing eager to run a checkpoint."""
    checkpoint = exported["onestep-cond"][1]
    eager, compiled = load_backend(checkpoint), load_backend(checkpoint, backend="torch-compile")
    assert type(eager) is TorchBackend and isinstance(compiled, TorchCompileBackend)
    assert compiled.title == "torch-compile (cpu, fp32)"
    seeds = range(3)
    try:
        images = generate(compiled, seeds, batch=3)
    except BackendFailed as err:
        # Tolerated: TorchInductor generates C++ that does not compile on some CPUs and kernel paths (seen
        # with ATEN_CPU_CAPABILITY=default on an AMD EPYC: 'at::vec' has not been declared), or code that
        # runs and computes NaN (ATEN_CPU_CAPABILITY=avx2 on the same CPU), which the backend's own check
        # against eager catches. That is torch's failure, which bench and the demo report as a skipped
        # row (tests/bench/test_harness.py).
        pytest.skip(f"torch.compile fails on this machine, upstream: {err}")
    np.testing.assert_allclose(images, generate(eager, seeds, batch=3), rtol=1e-4, atol=1e-5)


def test_compiled_code_that_computes_other_numbers_is_this_backends_failure(exported):
    """The first call of a shape is checked against eager: a miscompiled kernel (here: NaN, as Inductor
    produced on one kernel path) fails as BackendFailed, which bench reports as a skipped row."""
    compiled = load_backend(exported["onestep-cond"][1], backend="torch-compile")
    torch = compiled.torch
    compiled.forward = lambda *args: torch.full((len(args[0]), 1, 16, 16), float("nan"))
    with pytest.raises(BackendFailed, match="computes other numbers than eager torch on this machine"):
        generate(compiled, range(2), batch=2)
    compiled.forward = lambda *args: compiled.module(*args) + 1e-2  # off by more than rounding: refused too
    with pytest.raises(BackendFailed, match=r"max \|difference\| 0.01"):
        generate(compiled, range(3), batch=3)
