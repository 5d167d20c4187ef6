import pytest

from edgedit.contract.config import DiTConfig
from edgedit.contract.errors import EdgeditError
from edgedit.eval.digits_classifier import embed, recorded_test_accuracy
from edgedit.eval.evaluate import evaluate
from edgedit.models.checkpoint import save_model
from edgedit.models.dit import DiT
from edgedit.models.loading import random_weights
from tests.helpers import TINY_CONFIGS

STUDENT = DiTConfig(
    input_size=16,
    in_channels=1,
    patch_size=4,
    hidden_size=32,
    depth=1,
    num_heads=2,
    num_classes=10,
    class_dropout_prob=0.0,
    learn_sigma=False,
    diffusion="one-step",
)


def test_the_shipped_classifier_knows_held_out_digits():
    from edgedit.data.datasets import load_data

    test = load_data("digits", "test")
    _, probs = embed(test.images)
    # A count out of 359 (steps of 2.8e-3) against the 4-decimal record: abs 1e-4 means the same count. No
    # prediction is close: the nearest top-2 probabilities are 0.13 apart, kernel paths move them ~1e-7.
    assert (probs.argmax(1) == test.labels).mean() == pytest.approx(
        recorded_test_accuracy(), abs=1e-4
    ) and recorded_test_accuracy() > 0.97


def test_evaluation_reports_carry_metric_features_count_and_reference(tmp_path):
    student = save_model(random_weights(DiT(STUDENT)), tmp_path / "s.safetensors")
    report = evaluate(student, "digits", n=200, reference=student, grid=tmp_path / "grid.png")
    names = {m["metric"]: m for m in report.to_dict()["metrics"]}
    assert set(names) == {
        "FID",
        "KID",
        "FID real-vs-real",
        "KID real-vs-real",
        "classifier confidence",
        "class coverage",
        "label agreement",
        "PSNR vs reference",
    }
    assert names["KID"]["value"] > names["KID real-vs-real"]["value"] + 3 * names["KID"]["std"]
    for m in report.to_dict()["metrics"]:
        assert {"metric", "value", "features", "samples", "reference"} <= set(m)
    assert names["FID"]["value"] > names["FID real-vs-real"]["value"] > 0  # noise is worse than real digits
    assert names["PSNR vs reference"]["value"] == float("inf")  # same model, same seeds
    assert names["FID"]["reference"] == "digits test split (359 images)" and names["FID"]["samples"] == 200
    from PIL import Image

    from edgedit.runtime.images import CAPTION_HEIGHT

    # 64 images, 8 per row: 146 x 146 with padding, upscaled x4 to >= 512 px, then the caption strip
    assert Image.open(tmp_path / "grid.png").size == (584, 584 + CAPTION_HEIGHT)
    # n = 200: each share is a multiple of 0.005, which round(4) keeps; 10 float64 adds of them: 1 within 1e-15
    assert len(names["class coverage"]["share"]) == 10
    assert sum(names["class coverage"]["share"]) == pytest.approx(1, rel=0, abs=1e-12)


def test_a_model_of_another_geometry_is_refused(tmp_path):
    teacher = save_model(random_weights(DiT(TINY_CONFIGS["edm-uncond"])), tmp_path / "t.safetensors")  # 8x8x3
    with pytest.raises(EdgeditError, match="makes 3x8x8 images but digits has 1x16x16"):
        evaluate(teacher, "digits", n=4)
