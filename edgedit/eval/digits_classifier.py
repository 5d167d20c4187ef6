"""A small CNN on the bundled 16x16 digits, shipped with edgedit: the feature network of the
"domain FID" for the embedded default, and a judge of samples (confidence, class coverage).

Trained on the digits train split only (with +-1 pixel shifts), measured on the test split; its
64-d penultimate activations are the FID/KID features. Retrain (deterministically) with
    python -m edgedit.eval.digits_classifier
which rewrites edgedit/eval/digits_classifier.safetensors and prints the test accuracy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

WEIGHTS = Path(__file__).with_name("digits_classifier.safetensors")
FEATURES = 64


class DigitsClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)  # 16x16
        self.conv2 = nn.Conv2d(32, 64, 3, stride=2, padding=1)  # 8x8
        self.conv3 = nn.Conv2d(64, 64, 3, stride=2, padding=1)  # 4x4
        self.fc = nn.Linear(64 * 4 * 4, FEATURES)
        self.head = nn.Linear(FEATURES, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 1, 16, 16) in [-1, 1] -> (N, 64)"""
        h = F.relu(self.conv3(F.relu(self.conv2(F.relu(self.conv1(x))))))
        return F.relu(self.fc(h.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (N, 10) logits


def load_classifier() -> DigitsClassifier:
    from safetensors.torch import load_file

    model = DigitsClassifier()
    model.load_state_dict(load_file(str(WEIGHTS)))
    return model.eval()


def recorded_test_accuracy() -> float:
    from safetensors import safe_open

    with safe_open(str(WEIGHTS), "pt") as f:
        return float(f.metadata()["test_accuracy"])


@torch.no_grad()
def embed(images: np.ndarray, model: DigitsClassifier | None = None, batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, 64), class probabilities (N, 10)) of images (N, 1, 16, 16) in [-1, 1]."""
    model = model or load_classifier()
    feats, probs = [], []
    for start in range(0, len(images), batch):
        x = torch.from_numpy(np.clip(images[start : start + batch], -1, 1).astype(np.float32))
        f = model.features(x)
        feats.append(f.numpy())
        probs.append(model.head(f).softmax(1).numpy())
    return np.concatenate(feats), np.concatenate(probs)


def train_classifier(epochs: int = 40, seed: int = 0) -> tuple[DigitsClassifier, float]:
    from edgedit.data.datasets import load_data

    torch.manual_seed(seed)
    train, test = load_data("digits", "train"), load_data("digits", "test")
    x, y = torch.from_numpy(train.images), torch.from_numpy(train.labels)
    model = DigitsClassifier()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for start in range(0, len(x), 64):
            idx = order[start : start + 64]
            shift = torch.randint(-1, 2, (2,), generator=gen).tolist()
            batch = torch.roll(x[idx], shifts=shift, dims=(2, 3))  # +-1 pixel shifts
            loss = F.cross_entropy(model(batch), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(torch.from_numpy(test.images)).argmax(1).numpy() == test.labels).mean()
    return model, float(accuracy)


if __name__ == "__main__":
    from edgedit.contract.staging import atomic_output

    classifier, accuracy = train_classifier()
    from safetensors.torch import save_file

    with atomic_output(WEIGHTS) as tmp:
        save_file(
            classifier.state_dict(),
            str(tmp),
            metadata={
                "test_accuracy": f"{accuracy:.4f}",
                "data": "digits (scikit-learn), train split; accuracy on the test split",
                "recipe": "python -m edgedit.eval.digits_classifier (40 epochs AdamW 2e-3, +-1 px shifts, seed 0)",
            },
        )
    print(f"wrote {WEIGHTS}: test accuracy {accuracy:.4f}")
