"""The kernel lists stand for the networks they claim: their sizes against published counts."""

import pytest

from edgedit.contract.config import PRESETS, get_preset
from edgedit.cost import accounting
from edgedit.cost.kernels import dit_kernels, resnet_kernels, total_kernels, yolov8_kernels


def macs(kernels):
    return sum(k.flops * k.count for k in kernels) // 2


def weights(kernels):
    return sum(k.weights * k.count for k in kernels)


def test_yolov8n_matches_ultralytics_published_size():
    # ultralytics/cfg/models/v8/yolov8.yaml: "YOLOv8n summary: 225 layers, 3157200 parameters, 8.9 GFLOPs";
    # weights here count one bias per output channel where the module has batch norm (2 per channel)
    # integer counts, no rounding: the tolerances are the kernel list's approximations (0.17% and 0.5% here)
    kernels = yolov8_kernels("n")
    assert weights(kernels) == pytest.approx(3_157_200, rel=0.01)
    assert 2 * macs(kernels) / 1e9 == pytest.approx(8.7, rel=0.03)  # Ultralytics' FLOPs = 2 x MACs at 640


@pytest.mark.parametrize(
    "depth, params, gmacs", [(18, 11_689_512, 1.814), (34, 21_797_672, 3.664), (50, 25_557_032, 4.089)]
)
def test_resnets_match_torchvisions_published_size(depth, params, gmacs):
    # torchvision.models docs: ResNet-18/34/50 parameters and GFLOPS (their "GFLOPS" are MACs)
    # integer counts, no rounding: 0.5% covers the stand-ins (<= 0.1%) and the 4-digit GMACs (<= 0.03%)
    kernels = resnet_kernels(depth)
    assert weights(kernels) == pytest.approx(params, rel=0.005)  # conv biases stand in for batch norms
    assert macs(kernels) / 1e9 == pytest.approx(gmacs, rel=0.005)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_dit_kernels_do_the_networks_matrix_products(name):
    cfg = PRESETS[name].config
    assert macs(dit_kernels(cfg)) == accounting.count_macs(cfg)
    assert macs(dit_kernels(cfg, batch=3)) == 3 * accounting.count_macs(cfg)


def test_kernel_count_follows_the_assumed_fusions():
    # A one-step class-conditional student block: adaLN GEMV, norm1, qkv, attention, proj, norm2, fc1, fc2.
    fused = get_preset("DiT-Nano-S/2").config.replace(num_classes=10)  # head size 32: one MHA kernel
    unfused = fused.replace(hidden_size=80, num_heads=4)  # head size 20: three kernels
    per_block = {
        cfg.hidden_size: (
            total_kernels(dit_kernels(cfg.replace(depth=3))) - total_kernels(dit_kernels(cfg.replace(depth=2)))
        )
        for cfg in (fused, unfused)
    }
    assert per_block == {128: 8, 80: 10}
    # Around the blocks: patch embedding, label gather, final adaLN, norm, linear, unpatchify.
    assert total_kernels(dit_kernels(fused.replace(depth=1))) - 8 == 6
    # Unconditional: no adaLN GEMVs (6 blocks + the final layer's) and no label gather. An EDM
    # denoiser adds its timestep MLP (3 kernels) and the preconditioning around the network (2).
    assert total_kernels(dit_kernels(fused.replace(num_classes=0))) == total_kernels(dit_kernels(fused)) - 6 - 1 - 1
    edm = fused.replace(diffusion="edm")
    assert total_kernels(dit_kernels(edm)) == total_kernels(dit_kernels(fused)) + 3 + 2
