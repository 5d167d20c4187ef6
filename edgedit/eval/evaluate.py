"""`edgedit eval`: sample a model from seeds and measure the samples.

For data at the digits geometry (16x16x1) the feature network is edgedit's shipped digits
classifier: domain FID and KID against held-out real digits, next to the real-vs-real FID of
the same counts (what a perfect generator would score with these few images), and the
classifier's view of the samples (mean confidence, share of each class, agreement with the
requested label). With `reference`, the PSNR of the samples against another model's samples on
the same seeds (teacher-student or precision fidelity). Every number carries its metric, feature
network, sample count and reference set.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import Field

from edgedit.contract.errors import EdgeditError
from edgedit.contract.fileio import suffix_kind
from edgedit.contract.schema import OpenRecord, Record
from edgedit.data.datasets import ImageData, has_test_split, load_data
from edgedit.eval.metrics import fid, kid, psnr_db, significant
from edgedit.runtime.backends import Backend, load_backend
from edgedit.runtime.samplers import check_request, default_labels, generate, sampling_words

log = logging.getLogger("edgedit")

DIGITS_SHAPE = (1, 16, 16)


class Metric(OpenRecord):
    """One number of an evaluation, with what it was measured on (an entry of a report's "metrics";
    some carry more: KID its `std`, class coverage each class's `share`, a `note`)."""

    metric: str  # "FID", "KID", "PSNR vs reference" ...
    value: int | Annotated[float, Field(allow_inf_nan=True)]  # a count stays an integer; identical images: PSNR inf
    features: str  # the feature network (or "pixels")
    samples: int = Field(ge=1)
    reference: str  # the set it was measured against


class EvalReport(Record):
    """What `edgedit eval` measured: the model, how it was sampled, and every metric."""

    model: str
    backend: str
    data: str
    samples: int = Field(ge=1)
    seeds: list[int] = Field(min_length=2, max_length=2)  # first and last
    noise: str  # the noise scheme the seeds were drawn with
    sampling: str
    metrics: list[Metric]
    note: str | None = None  # what was not measured, and why

    def to_dict(self) -> dict[str, Any]:
        """The report for `eval --json`: a note only where there is one (python values: an infinite PSNR
        stays infinite)."""
        return self.model_dump(exclude_none=True)


def check_matches(backend: Backend, data: ImageData, where: str) -> None:
    cfg = backend.meta.config
    made = (cfg.in_channels, cfg.input_size, cfg.input_size)
    if made != data.shape:
        raise EdgeditError(
            f"{where}: makes {'x'.join(map(str, made))} images but {data.name} has "
            f"{'x'.join(map(str, data.shape))}; evaluate it on data of its own geometry"
        )
    if cfg.class_conditional and data.num_classes != cfg.num_classes:
        raise EdgeditError(f"{where}: has {cfg.num_classes} classes, {data.name} has {data.num_classes}")


def reference_split(spec: str) -> tuple[ImageData, ImageData | None, str]:
    """(held-out reference images, training images for the real-vs-real floor, the reference's name)."""
    if has_test_split(spec):
        test = load_data(spec, "test")
        return test, load_data(spec, "train"), f"{test.name} test split ({len(test)} images)"
    train = load_data(spec, "train")
    return train, None, f"{train.name} ({len(train)} images)"


def domain_metrics(
    images: np.ndarray,
    labels: np.ndarray | None,
    reference: ImageData,
    train: ImageData | None,
    ref_name: str,
    seed: int,
) -> list[dict[str, Any]]:
    from edgedit.eval.digits_classifier import embed, load_classifier, recorded_test_accuracy

    classifier = load_classifier()
    network = f"edgedit digits classifier (64-d penultimate; test accuracy {recorded_test_accuracy():.4f})"
    fake, probs = embed(images, classifier)
    real, _ = embed(reference.images, classifier)
    # KID's cubic kernel needs features of norm ~ sqrt(d): scale by the reference set's RMS norm.
    scale = np.sqrt(real.shape[1] / np.mean((real.astype(np.float64) ** 2).sum(1)))
    kid_features = f"{network}, scaled to the reference's RMS norm sqrt(d)"

    def kid_of(features: np.ndarray) -> tuple[float, float]:
        return kid(
            features * scale, real * scale, subsets=50, subset_size=min(len(features), len(real), 1000), seed=seed
        )

    kid_mean, kid_std = kid_of(fake)
    metrics = [
        {
            "metric": "FID",
            "value": fid(fake, real),
            "features": network,
            "samples": len(images),
            "reference": ref_name,
        },
        {
            "metric": "KID",
            "value": kid_mean,
            "std": kid_std,
            "features": kid_features,
            "samples": len(images),
            "reference": ref_name,
        },
    ]
    if train is not None:  # the floor: real training digits, as many as the samples, against the same reference
        rng = np.random.default_rng(seed)
        pick = rng.choice(len(train), min(len(images), len(train)), replace=False)
        floor, _ = embed(train.images[pick], classifier)
        note = f"{len(pick)} real training images in place of the samples"
        metrics.append(
            {
                "metric": "FID real-vs-real",
                "value": fid(floor, real),
                "features": network,
                "samples": len(pick),
                "reference": ref_name,
                "note": note,
            }
        )
        floor_kid = kid_of(floor)
        metrics.append(
            {
                "metric": "KID real-vs-real",
                "value": floor_kid[0],
                "std": floor_kid[1],
                "features": kid_features,
                "samples": len(pick),
                "reference": ref_name,
                "note": note,
            }
        )
    predicted = probs.argmax(1)
    share = np.bincount(predicted, minlength=probs.shape[1]) / len(predicted)
    metrics.append(
        {
            "metric": "classifier confidence",
            "value": float(probs.max(1).mean()),
            "features": network,
            "samples": len(images),
            "reference": "none",
        }
    )
    metrics.append(
        {
            "metric": "class coverage",
            "value": int((share > 0).sum()),
            "share": share.round(4).tolist(),
            "features": network,
            "samples": len(images),
            "reference": "none",
            "note": "classes predicted at least once; share = fraction of samples per predicted class",
        }
    )
    if labels is not None:
        metrics.append(
            {
                "metric": "label agreement",
                "value": float((predicted == labels).mean()),
                "features": network,
                "samples": len(images),
                "reference": "requested labels",
            }
        )
    return metrics


def inception_metrics(
    images: np.ndarray, reference: ImageData, ref_name: str, weights, seed: int
) -> list[dict[str, Any]]:
    from edgedit.eval.inception import inception_features, load_inception

    model = load_inception(weights)
    network = f"Inception-v3 pool features (pytorch-fid's TF-ported weights, {weights.name})"
    fake, real = inception_features(images, model), inception_features(reference.images, model)
    kid_mean, kid_std = kid(fake, real, subsets=50, subset_size=min(len(fake), len(real), 1000), seed=seed)
    return [
        {
            "metric": "FID (Inception)",
            "value": fid(fake, real),
            "features": network,
            "samples": len(images),
            "reference": ref_name,
        },
        {
            "metric": "KID (Inception)",
            "value": kid_mean,
            "std": kid_std,
            "features": network,
            "samples": len(images),
            "reference": ref_name,
        },
    ]


def evaluate(
    model: str | os.PathLike,
    data: str,
    n: int = 1000,
    steps: int | None = None,
    sampler: str | None = None,
    batch: int = 64,
    reference: str | os.PathLike | None = None,
    seed: int = 0,
    backend_kind: str = "auto",
    inception_weights: str | os.PathLike | None = None,
    reference_count: int | None = None,
    grid: str | os.PathLike | None = None,
    save: str | os.PathLike | None = None,
) -> EvalReport:
    """Sample `n` images from seeds and measure them (every metric in `metrics`); `grid` also writes
    the first 64 as a PNG; `save` copies the checkpoint there with this evaluation in its provenance."""
    from edgedit.eval.inception import find_weights

    weights = find_weights(inception_weights)  # checked before any sampling
    if save is not None and suffix_kind(model) != "checkpoint":
        raise EdgeditError(
            f"`save` copies a checkpoint with its evaluation; {model} is not one (.safetensors): "
            "evaluate the checkpoint it was exported from"
        )
    backend = load_backend(model, backend_kind)
    real, train, ref_name = reference_split(data)
    if reference_count is not None and reference_count < len(real):  # a seeded subset, for slow feature networks
        pick = np.sort(np.random.default_rng(seed).choice(len(real), reference_count, replace=False))
        real = ImageData(
            real.name, real.images[pick], None if real.labels is None else real.labels[pick], real.num_classes
        )
        ref_name = f"{reference_count} images of the {ref_name}"
    check_matches(backend, real, str(model))
    cfg = backend.meta.config
    check_request(range(seed, seed + n), batch, steps, backend.meta.inputs[0].concrete(1)[1:])  # before any list
    seeds = list(range(seed, seed + n))
    labels = default_labels(seeds, cfg.num_classes) if cfg.class_conditional else None
    images = generate(backend, seeds, labels, batch=batch, steps=steps, sampler=sampler)
    spec = backend.meta.sampler
    scheme = spec.noise
    sampling = sampling_words(spec, steps, sampler)
    # Same seeds give other noise under another scheme: the report names the one used.
    report: dict[str, Any] = {
        "model": str(model),
        "backend": backend.title,
        "data": str(data),
        "samples": n,
        "seeds": [seed, seed + n - 1],
        "noise": scheme,
        "sampling": sampling,
        "metrics": [],
    }
    if real.shape == DIGITS_SHAPE and real.num_classes == 10:
        report["metrics"] += domain_metrics(images, labels, real, train, ref_name, seed)
    if weights is not None:
        report["metrics"] += inception_metrics(images, real, ref_name, weights, seed)
    elif real.shape != DIGITS_SHAPE:
        report["note"] = (
            f"no feature network for {real.name}: give pytorch-fid's Inception weights "
            "(a file, or in torch hub's cache) for FID/KID, and a reference model for fidelity"
        )
    if reference is not None:
        other = load_backend(reference)
        check_matches(other, real, str(reference))
        # Same seeds must mean same noise: the reference draws it with this model's scheme, whatever its own.
        ref_scheme = other.meta.sampler.noise
        if ref_scheme != scheme:
            log.info(
                f"note: {reference} records {ref_scheme} noise and {model} {scheme}; the reference is sampled "
                f"with {scheme} so that the same seeds give the same noise"
            )
        ref_images = generate(other, seeds, labels, batch=batch, steps=steps, sampler=sampler, noise=scheme)
        report["metrics"].append(
            {
                "metric": "PSNR vs reference",
                "value": psnr_db(ref_images, images),
                "features": "pixels",
                "samples": n,
                "reference": f"{reference} ({other.title}), same seeds, labels and {scheme} noise",
            }
        )
    if grid:
        from edgedit.runtime.images import picture, save_png

        shown = min(64, n)
        caption = f"{Path(model).name} | {backend.title} | seeds {seed}-{seed + shown - 1} | {sampling}"
        save_png(grid, picture(images[:shown], caption, columns=8))
    evaluated = EvalReport.model_validate(report)  # the metrics above, checked as the record they make
    if save is not None:
        _save_evaluated(model, save, evaluated)
    return evaluated


def _save_evaluated(model: str | os.PathLike, dest: str | os.PathLike, report: EvalReport) -> None:
    """Copy the evaluated checkpoint to `dest` bit for bit, `report`'s numbers added to its provenance
    (replacing an earlier "eval"), so that the file carries the evaluation it was shipped on."""
    from edgedit.models.checkpoint import copy_with_provenance

    copy_with_provenance(
        model,
        dest,
        eval={m.metric: significant(m.value) for m in report.metrics},
        eval_samples=report.samples,
        eval_seeds=report.seeds,
        eval_noise=report.noise,
        eval_data=report.data,
        eval_sampling=report.sampling,
        eval_reference=sorted({m.reference for m in report.metrics}),
    )
