import numpy as np
import pytest

from edgedit.models.torch_backend import TorchBackend, TorchCompileBackend
from edgedit.runtime.backends import load_backend
from edgedit.runtime.samplers import generate


@pytest.mark.slow
def test_torch_compile_computes_what_eager_computes(exported):
    """Inductor's kernels against eager on the same seeds, at two batch sizes (one compile each);
    `auto` keeps choosing eager for a checkpoint."""
    checkpoint = exported["onestep-cond"][1]
    eager, compiled = load_backend(checkpoint), load_backend(checkpoint, backend="torch-compile")
    assert type(eager) is TorchBackend and isinstance(compiled, TorchCompileBackend)
    assert compiled.title == "torch-compile (cpu, fp32)"
    for batch in (1, 3):
        seeds = range(batch)
        np.testing.assert_allclose(generate(compiled, seeds, batch=batch), generate(eager, seeds, batch=batch),
                                   rtol=1e-4, atol=1e-5)
