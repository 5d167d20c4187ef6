import numpy as np
import pytest

from edgedit.contract.config import DiTConfig
from edgedit.contract.errors import EdgeditError
from edgedit.contract.schedules import sampler_spec
from edgedit.contract.spec import ModelMeta, io_spec
from edgedit.runtime.backends import Backend
from edgedit.runtime.noise import noise_from_seeds
from edgedit.runtime.samplers import edm_sample, generate, karras_sigmas, network_evaluations


def test_karras_schedule_endpoints_and_spacing():
    sigmas = karras_sigmas(18, 0.002, 80.0, 7.0)
    assert sigmas.dtype == np.float64 and len(sigmas) == 19
    # float64 (eps 2.2e-16): ramp ** 7 and back ** (1/7) cost a few ulp each (numpy's SIMD pow included): ~1e-15
    # relative; the ~0.09 steps between roots ~1.9 keep ~4e-14 of it. 1e-12 leaves 25x.
    assert sigmas[0] == pytest.approx(80.0, rel=1e-12) and sigmas[-2] == pytest.approx(0.002, rel=1e-12)
    assert sigmas[-1] == 0
    assert np.all(np.diff(sigmas) < 0)
    roots = sigmas[:-1] ** (1 / 7)  # evenly spaced in sigma^(1/rho)
    np.testing.assert_allclose(np.diff(roots), np.diff(roots)[0], rtol=1e-12)


SIGMA_DATA = 0.7  # Gaussian data N(0, s^2): the exact denoiser and ODE solution are known


def gaussian_denoiser(x, sigma):
    s = sigma.reshape(-1, 1, 1, 1).astype(np.float64)
    return SIGMA_DATA**2 / (SIGMA_DATA**2 + s**2) * x


def exact_solution(z, sigma_max):
    """Probability-flow ODE dx/dsigma = sigma x / (s^2 + sigma^2), from sigma_max to 0."""
    return z * sigma_max * SIGMA_DATA / np.sqrt(SIGMA_DATA**2 + sigma_max**2)


@pytest.mark.parametrize("sampler", ["heun", "euler"])
def test_edm_samplers_call_the_network_in_float32_the_documented_number_of_times(sampler):
    z = noise_from_seeds(range(2), (1, 4, 4))
    calls = []

    def denoise(x, sigma):
        calls.append(float(sigma[0]))
        assert x.dtype == np.float32 and sigma.dtype == np.float32 and sigma.shape == (2,)
        return gaussian_denoiser(x, sigma)

    edm_sample(denoise, z, karras_sigmas(18, 0.002, 80.0, 7.0), sampler)
    assert len(calls) == network_evaluations(18, sampler) == (35 if sampler == "heun" else 18)
    assert calls[0] == pytest.approx(80.0, rel=1e-6)  # float64 sigma_max rounded to float32 once: <= 6e-8


@pytest.mark.parametrize("sampler, order", [("heun", 2), ("euler", 1)])
def test_edm_samplers_converge_to_the_exact_ode_solution_at_their_order(sampler, order):
    z = noise_from_seeds(range(3), (1, 4, 4))
    exact = exact_solution(z.astype(np.float64), 80.0)
    errors = [
        np.abs(edm_sample(gaussian_denoiser, z, karras_sigmas(n, 0.002, 80.0, 7.0), sampler) - exact).max()
        for n in (25, 50, 100, 200)
    ]
    rates = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))  # halving the step divides the error by 2^order
    # Discretisation error, not rounding: errors >= 6e-4 against ~1e-6 from the float32 network I/O. Measured
    # rates 2.12, 2.06, 2.04 (Heun) and 0.99, 0.99, 1.00 (Euler): the pre-asymptotic drift, within 0.15.
    np.testing.assert_allclose(rates, order, atol=0.15)
    assert errors[-1] / np.abs(exact).max() < (1e-3 if order == 2 else 2e-2)


class EchoBackend(Backend):
    """A one-step 'model' returning its noise (+ label), with a static batch of 4."""

    name, device = "echo", "cpu"

    def __init__(self, cfg, batch=(4, 4, 4)):
        inputs, outputs = io_spec(cfg)
        self.meta = ModelMeta(
            cfg, inputs, outputs, sampler_spec(cfg), "fp32", dict(zip(("min", "opt", "max"), batch)), {}, "test"
        )
        self.batches = []

    def _run(self, feeds):
        self.batches.append(feeds["z"].shape[0])
        return {"image": feeds["z"] + feeds.get("y", np.zeros(1, np.int32)).reshape(-1, 1, 1, 1)}


CFG = DiTConfig(
    input_size=4,
    in_channels=1,
    patch_size=2,
    hidden_size=8,
    depth=1,
    num_heads=2,
    num_classes=3,
    class_dropout_prob=0.0,
    learn_sigma=False,
    diffusion="one-step",
)


def test_same_seed_same_image_in_any_batch_and_padding_for_static_batch():
    backend = EchoBackend(CFG)
    images = generate(backend, [5, 6, 7, 8, 9, 10], batch=3)
    assert backend.batches == [4, 4]  # a static batch of 4 gets exactly 4 rows, padded
    alone = generate(EchoBackend(CFG), [9])
    np.testing.assert_array_equal(images[4], alone[0])  # bit-exact noise, one IEEE add: exact on every CPU
    # label = seed % classes. float32 z + an integer, rounded once on each side (the echo adds in float64 and
    # stores float32): within 1 ulp, 2^-23 relative.
    np.testing.assert_allclose(images[0], noise_from_seeds([5], (1, 4, 4))[0] + 5 % 3, rtol=2**-23)


def test_dynamic_batch_is_not_padded_beyond_its_minimum():
    backend = EchoBackend(CFG, batch=(1, 2, 4))
    generate(backend, range(5), batch=4)
    assert backend.batches == [4, 1]


def test_labels_are_checked():
    with pytest.raises(EdgeditError, match=r"class label 3 is outside this model's 3 classes \(0..2\)"):
        generate(EchoBackend(CFG), [0, 1], labels=[0, 3])
    with pytest.raises(EdgeditError, match=r"class labels: 2 integers wanted, one per seed"):
        generate(EchoBackend(CFG), [0, 1], labels=[0])
    uncond = DiTConfig(
        input_size=4,
        in_channels=1,
        patch_size=2,
        hidden_size=8,
        depth=1,
        num_heads=2,
        num_classes=0,
        class_dropout_prob=0.0,
        learn_sigma=False,
        diffusion="one-step",
    )
    with pytest.raises(EdgeditError, match="unconditional"):
        generate(EchoBackend(uncond), [0], labels=[1])


def test_ddim_on_dit_schedule_is_exact_for_an_oracle_epsilon():
    """If the network returns the true noise of x_t = sqrt(a) x0 + sqrt(1-a) eps, DDIM recovers x0 exactly."""
    from edgedit.contract.schedules import sampler_spec
    from edgedit.runtime.samplers import ddim_sample, ddim_timesteps

    spec = sampler_spec(DiTConfig())  # DiT-XL/2 defaults: a DDPM model
    betas = np.linspace(spec.beta_start, spec.beta_end, spec.train_steps)
    alphas_bar = np.cumprod(1 - betas)
    x0 = np.random.default_rng(0).standard_normal((2, 4, 4, 4))
    z = noise_from_seeds([0, 1], (4, 4, 4)).astype(np.float64)
    x_start = np.sqrt(alphas_bar[-1]) * x0 + np.sqrt(1 - alphas_bar[-1]) * z

    def oracle(x, t):  # epsilon implied by x and the known x0, plus fake variance channels
        a = alphas_bar[int(t[0])]
        eps = (x.astype(np.float64) - np.sqrt(a) * x0) / np.sqrt(1 - a)
        return np.concatenate([eps, np.zeros_like(eps)], axis=1).astype(np.float32)

    out = ddim_sample(oracle, x_start.astype(np.float32), spec, steps=25)
    # Only float32 I/O separates out from x0: the last step (alpha_bar ~ 1) returns x0 plus x's float32
    # rounding, then rounds to float32: <= 3e-7 for |x0| < 2.4 (1.1e-7 measured). An off-by-one alpha_bar: 1e-2.
    np.testing.assert_allclose(out, x0, rtol=0, atol=1e-6)
    assert list(ddim_timesteps(1000, 5)) == [999, 749, 500, 250, 0]
