import pytest
import torch

from edgedit.contract.config import get_preset
from edgedit.contract.errors import EdgeditError
from edgedit.cost.accounting import count_params
from edgedit.cost.memory import inference_memory, require_memory, training_memory
from edgedit.models.dit import DiT
from tests.helpers import TINY_CONFIGS


def test_training_memory_counts_five_fp32_copies_of_the_weights_and_scales_with_batch():
    cfg = get_preset("DiT-Teacher-Digits/2").config
    one, many = training_memory(cfg, 1), training_memory(cfg, 64)
    assert one.parts["weights, gradients, AdamW and EMA"] == 20 * count_params(cfg)
    assert many.parts["activations at batch 64"] == 64 * one.parts["activations at batch 1"]


def test_the_activation_estimate_is_the_right_size_for_a_real_training_step():
    """Within a factor of 3 of what autograd actually saves for a backward pass (measured here with
    saved-tensor hooks), so the refusal is about real memory, not a guess."""
    cfg = TINY_CONFIGS["edm-cond"]
    net = DiT(cfg)
    x, t, y = torch.randn(8, 1, 16, 16), torch.rand(8) * 10, torch.randint(0, 10, (8,))
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(
        lambda t: saved.append(t.numel() * t.element_size()) or t, lambda t: t
    ):
        net(x, t, y).square().mean().backward()
    estimate = training_memory(cfg, 8).parts["activations at batch 8"]
    assert estimate / 3 < sum(saved) < estimate * 3


def test_jobs_that_cannot_fit_are_refused_with_the_estimate_and_what_to_change():
    huge = get_preset("DiT-XL/2").config
    with pytest.raises(
        EdgeditError,
        match=r"training needs about .* GB \(weights, gradients, AdamW and EMA .*, "
        r"activations at batch 256 .*\); this machine has 8.0 GB available; "
        r"lower --batch",
    ):
        require_memory(training_memory(huge, 256), "training", "lower --batch", available=8 * 2**30)
    require_memory(inference_memory(huge, 1), "sampling", "-", available=8 * 2**30)  # fits
