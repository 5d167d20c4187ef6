import numpy as np
import pytest

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
    np.testing.assert_allclose(generate(compiled, seeds, batch=3), generate(eager, seeds, batch=3), rtol=1e-4,
                               atol=1e-5)
