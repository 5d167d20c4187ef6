"""The FID Inception port. Checked once against pytorch-fid + torchvision on shared random weights
(bit-identical features; torchvision cannot be installed beside this project's torch, see the
closing note); here: its layout, its loading rules and its use in `edgedit eval`."""

import pytest
import torch

from edgedit.contract.errors import EdgeditError
from edgedit.eval.evaluate import evaluate
from edgedit.eval.inception import FIDInceptionV3, find_weights, inception_features, load_inception


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A random stand-in for pytorch-fid's weights file, saved the way it is (a plain state dict)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("inception") / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(FIDInceptionV3().state_dict(), path)
    return path


def test_layout_of_the_fid_inception():
    state = FIDInceptionV3().state_dict()
    assert len(state) == 566  # torchvision's Inception3 without aux logits, num_classes 1008
    assert state["fc.weight"].shape == (1008, 2048) and state["Mixed_7c.branch_pool.conv.weight"].shape == (
        192,
        2048,
        1,
        1,
    )
    assert state["Conv2d_1a_3x3.bn.running_var"].shape == (32,)


def test_features_of_small_grayscale_images(weights):
    model = load_inception(weights)
    feats = inception_features(torch.rand(3, 1, 16, 16).numpy() * 2 - 1, model)
    assert feats.shape == (3, 2048) and (feats >= 0).all()


def test_weights_are_found_never_downloaded(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert find_weights(None) is None
    with pytest.raises(EdgeditError, match="no such file"):
        find_weights(tmp_path / "missing.pth")
    torch.save({"not": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(EdgeditError, match="not pytorch-fid's FID Inception weights"):
        load_inception(tmp_path / "wrong.pth")


def test_eval_reports_inception_fid_and_kid(weights, tmp_path):
    from edgedit.models.checkpoint import save_model
    from edgedit.models.dit import DiT
    from edgedit.models.loading import random_weights
    from tests.eval.test_evaluate import STUDENT

    student = save_model(random_weights(DiT(STUDENT)), tmp_path / "s.safetensors")
    report = evaluate(student, "digits", n=12, inception_weights=weights, reference_count=10)
    metrics = {m["metric"]: m for m in report.to_dict()["metrics"]}
    assert {"FID (Inception)", "KID (Inception)"} <= set(metrics)
    assert metrics["FID (Inception)"]["reference"] == "10 images of the digits test split (359 images)"
    assert "pt_inception-2015-12-05-6726825d.pth" in metrics["FID (Inception)"]["features"]
