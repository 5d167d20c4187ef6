"""Distillation objectives for one-step DiT students learning offline teacher pairs (z -> image).

  output  GET's recipe: the student maps z (and label) to the teacher's image in one forward pass.
  ta      Teaching Assistant: a mid-size one-step DiT (the TA, distilled first with `output`, or
          given) supplies block features; student block i of L_S is matched to TA block
          ceil((i+1) L_T / L_S) - 1 through a learned linear projection to the TA's width.
  mi1     Multi-In-One: K evenly spaced student blocks are read out by light heads shaped like the
          final layer and regressed onto the K stored states of the teacher's sampling trajectory
          (noisier states at shallower blocks), so several teacher steps are learned "in one".
Every method adds its feature term to the image loss: loss = image + feature_weight * features.
Projections and readout heads are training-only: they live in the objective, never in the saved
student, which exports exactly like an output-distilled one. Definitions: docs/distillation.md.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from edgedit.contract import artefacts
from edgedit.contract.config import names_a_file
from edgedit.contract.errors import EdgeditError
from edgedit.contract.schedules import EDM_SIGMA_DATA, NOISE_SCHEMES
from edgedit.models.dit import DiT, FinalLayer
from edgedit.train.trainer import TrainSettings

log = logging.getLogger("edgedit")

IMAGE_LOSSES = ("pseudo-huber", "l1", "l2", "lpips")
FEATURE_LOSSES = ("l2", "l1", "cosine")


#################################################################################
#                                    Losses                                     #
#################################################################################


class ImageLoss(nn.Module):
    """Per-sample image losses. Pseudo-Huber is sqrt(||x - y||^2 + c^2) - c with c = 0.00054 sqrt(d)
    (d = C*H*W), as in improved consistency training (Song & Dhariwal 2023): L2 near zero, L1 far out.
    It is computed as ||x - y||^2 / (sqrt(||x - y||^2 + c^2) + c), the same value without the
    cancellation of two nearly equal numbers when ||x - y|| << c (float32 would keep no digit at 1e-4 c)."""

    def __init__(self, kind: str):
        super().__init__()
        if kind not in IMAGE_LOSSES:
            raise EdgeditError(f"`loss` must be one of {', '.join(IMAGE_LOSSES)} (got {kind!r})")
        self.kind = kind
        self.lpips = load_lpips() if kind == "lpips" else None

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        diff = (pred - target).flatten(1)
        if self.kind == "l2":
            return diff.pow(2).mean(1)
        if self.kind == "l1":
            return diff.abs().mean(1)
        if self.kind == "pseudo-huber":
            c = 0.00054 * math.sqrt(diff.shape[1])
            squared = diff.pow(2).sum(1)
            return squared / ((squared + c * c).sqrt() + c)
        # LPIPS on 3-channel images in [-1, 1], upsampled to 224 as GET does
        p, t = (x.repeat(1, 3 // x.shape[1], 1, 1) if x.shape[1] == 1 else x for x in (pred, target))
        p, t = (F.interpolate(x, size=224, mode="bilinear", align_corners=False) for x in (p, t))
        return self.lpips(p, t).flatten()


def load_lpips():
    """The lpips package with its backbone weights already on disk; never a download."""
    import importlib.util

    if importlib.util.find_spec("lpips") is None:
        raise EdgeditError(
            "`loss` lpips needs the lpips package (pip install lpips) and its backbone weights on "
            "disk; or use `loss` pseudo-huber|l1|l2"
        )
    cached = [p for p in _hub_checkpoints() if p.name.startswith("vgg16-")]
    if not cached:
        raise EdgeditError(
            "`loss` lpips: the VGG-16 backbone weights are not in torch hub's cache "
            f"({_hub_dir()}/checkpoints/vgg16-*.pth) and edgedit never downloads; put them there"
        )
    import lpips

    return lpips.LPIPS(net="vgg", verbose=False).eval().requires_grad_(False)


def _hub_dir() -> str:
    return torch.hub.get_dir()


def _hub_checkpoints():
    from pathlib import Path

    folder = Path(_hub_dir()) / "checkpoints"
    return list(folder.glob("*.pth")) if folder.is_dir() else []


def feature_loss(kind: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample distance between (N, T, D) token features (cosine per token over D) or (N, C, H, W)
    images (cosine over the whole image)."""
    if kind == "l2":
        return (a - b).pow(2).flatten(1).mean(1)
    if kind == "l1":
        return (a - b).abs().flatten(1).mean(1)
    if a.dim() != 3:
        a, b = a.flatten(1), b.flatten(1)
    return (1 - F.cosine_similarity(a, b, dim=-1)).reshape(a.shape[0], -1).mean(1)


def check_feature_loss(kind: str) -> str:
    if kind not in FEATURE_LOSSES:
        raise EdgeditError(f"`feature_loss` must be one of {', '.join(FEATURE_LOSSES)} (got {kind!r})")
    return kind


#################################################################################
#                                   Methods                                     #
#################################################################################


class OutputDistillation(nn.Module):
    """Batch: z (N, C, H, W) unit-variance noise, image (N, C, H, W) the teacher's, label (N,)."""

    def __init__(self, model: DiT, loss: str = "pseudo-huber"):
        super().__init__()
        if not model.config.one_step:
            raise EdgeditError("distillation trains one-step students: the student must be a one-step generator")
        self.model = model
        self.image_loss = ImageLoss(loss)

    def labels(self, batch: dict[str, torch.Tensor], rows: slice) -> torch.Tensor | None:
        return batch["label"][rows] if self.model.config.class_conditional else None

    def forward(self, batch: dict[str, torch.Tensor], generator: torch.Generator, rows: slice) -> torch.Tensor:
        pred = self.model(batch["z"][rows], y=self.labels(batch, rows))
        return self.image_loss(pred, batch["image"][rows])


def ta_block_map(student_depth: int, ta_depth: int) -> list[int]:
    """Student block i <- TA block ceil((i+1) L_T / L_S) - 1: relative depth matched, last to last."""
    return [math.ceil((i + 1) * ta_depth / student_depth) - 1 for i in range(student_depth)]


def ta_misfit(s, t) -> str | None:
    """Why TA config `t` cannot teach student config `s` (None when it can): same geometry and token
    grid, at least as deep and as wide. The one rule `distill` and the design sweep apply."""
    if not t.one_step or (t.input_size, t.in_channels, t.num_classes) != (s.input_size, s.in_channels, s.num_classes):
        return "the TA must be a one-step generator of the student's geometry and classes"
    if t.depth < s.depth or t.hidden_size < s.hidden_size:
        return (
            f"the TA ({t.depth} blocks x {t.hidden_size}) must be at least as deep and as wide as the student "
            f"({s.depth} x {s.hidden_size}): it teaches features, it does not learn them"
        )
    if t.num_patches != s.num_patches:
        return f"TA and student need the same token grid (patch sizes {t.patch_size} vs {s.patch_size})"
    return None


def check_ta(s, t) -> None:
    why = ta_misfit(s, t)
    if why:
        raise EdgeditError(why)


class TADistillation(OutputDistillation):
    def __init__(
        self,
        model: DiT,
        ta: DiT,
        loss: str = "pseudo-huber",
        feature_loss: str = "l2",
        feature_weight: float = 1.0,
        taps: list[int] | None = None,
    ):
        super().__init__(model, loss)
        s, t = model.config, ta.config
        check_ta(s, t)
        self.ta = ta.eval().requires_grad_(False)
        self.taps = sorted(set(taps if taps is not None else range(s.depth)))
        if not self.taps or min(self.taps) < 0 or max(self.taps) >= s.depth:
            raise EdgeditError(f"`taps` must be student blocks 0..{s.depth - 1}")
        self.block_map = ta_block_map(s.depth, t.depth)
        # Training only: student width -> TA width, one per tapped block.
        self.projections = nn.ModuleList(nn.Linear(s.hidden_size, t.hidden_size) for _ in self.taps)
        self.feature_kind, self.feature_weight = check_feature_loss(feature_loss), feature_weight

    def train(self, mode: bool = True):
        super().train(mode)
        self.ta.eval()  # the TA is a fixed reference
        return self

    def forward(self, batch: dict[str, torch.Tensor], generator: torch.Generator, rows: slice) -> torch.Tensor:
        z, y = batch["z"][rows], self.labels(batch, rows)
        pred, feats = self.model(z, y=y, return_features=True)  # feats: depth x (N, T, D_s)
        with torch.no_grad():
            _, ta_feats = self.ta(z, y=y, return_features=True)  # (N, T, D_t) each
        matched = [
            feature_loss(self.feature_kind, proj(feats[i]), ta_feats[self.block_map[i]])
            for proj, i in zip(self.projections, self.taps)
        ]
        return self.image_loss(pred, batch["image"][rows]) + self.feature_weight * torch.stack(matched).mean(0)


def mi1_taps(depth: int, k: int) -> list[int]:
    """K student blocks evenly spaced before the last one: block ceil((j+1) L / (K+1)) - 1 reads out state j."""
    return [math.ceil((j + 1) * depth / (k + 1)) - 1 for j in range(k)]


class MI1Distillation(OutputDistillation):
    """Batch also holds trajectory (N, K, C, H, W): the teacher's ODE states, noisiest first. Each is
    regressed in its preconditioned scale, scale_j x_j (EDM: c_in = 1/sqrt(sigma_j^2 + sigma_data^2);
    DDPM states are unit-variance already)."""

    def __init__(
        self,
        model: DiT,
        scales: list[float],
        loss: str = "pseudo-huber",
        feature_loss: str = "l2",
        feature_weight: float = 1.0,
        taps: list[int] | None = None,
    ):
        super().__init__(model, loss)
        s = model.config
        k = len(scales)
        if k == 0:
            raise EdgeditError(
                "mi1 needs trajectory states in the pairs: regenerate them with "
                "`edgedit pairs generate ... --trajectory K`"
            )
        self.taps = list(taps) if taps is not None else mi1_taps(s.depth, k)
        if len(self.taps) != k:
            raise EdgeditError(f"`taps` must name {k} student blocks, one per stored trajectory state")
        if min(self.taps) < 0 or max(self.taps) >= s.depth:
            raise EdgeditError(f"`taps` must be student blocks 0..{s.depth - 1}")
        if s.depth < 2:
            raise EdgeditError("mi1 needs a student of at least 2 blocks")
        # Training only: a readout head shaped like the final layer per tapped block.
        self.heads = nn.ModuleList(
            FinalLayer(s.hidden_size, s.patch_size, s.out_channels, s.conditioned) for _ in range(k)
        )
        self.register_buffer("scales", torch.tensor(scales, dtype=torch.float32).reshape(1, k, 1, 1, 1))
        self.feature_kind, self.feature_weight = check_feature_loss(feature_loss), feature_weight

    def forward(self, batch: dict[str, torch.Tensor], generator: torch.Generator, rows: slice) -> torch.Tensor:
        z, y = batch["z"][rows], self.labels(batch, rows)
        model = self.model
        pred, feats = model(z, y=y, return_features=True)
        c = model.condition(None, y)
        targets = batch["trajectory"][rows] * self.scales  # (N, K, C, H, W)
        readouts = [
            feature_loss(self.feature_kind, model.unpatchify(head(feats[b], c)), targets[:, j])
            for j, (head, b) in enumerate(zip(self.heads, self.taps))
        ]
        return self.image_loss(pred, batch["image"][rows]) + self.feature_weight * torch.stack(readouts).mean(0)


#################################################################################
#                               Running a method                                #
#################################################################################

METHODS = ("output", "ta", "mi1", "adversarial")


def student_config(spec: str, manifest: dict, **overrides):
    """A preset's architecture at the pairs' geometry, as a one-step generator."""
    from edgedit.contract.config import resolve_config

    c, h, _ = manifest["shape"]
    return resolve_config(spec, **overrides).replace(
        input_size=h, in_channels=c, num_classes=manifest["num_classes"], diffusion="one-step", learn_sigma=False
    )


def model_from(spec: str, manifest: dict, role: str, batch: int = 1, **overrides) -> tuple[DiT, str]:
    """(a DiT, "checkpoint" or "preset") for the student or TA (`role`): a checkpoint must fit the pairs, a
    preset must fit this machine's memory for training at `batch`."""
    from edgedit.models.checkpoint import load_model
    from edgedit.train.trainer import check_training_memory

    if names_a_file(spec):
        if any(v is not None for v in overrides.values()):
            raise EdgeditError(f"`{role}` {spec}: overrides apply to presets, not to a checkpoint")
        model, info = load_model(spec)
        cfg, (c, h, _) = info.config, manifest["shape"]
        if (cfg.in_channels, cfg.input_size) != (c, h) or cfg.num_classes != manifest["num_classes"]:
            raise EdgeditError(
                f"`{role}` {spec}: makes {cfg.in_channels}x{cfg.input_size}x{cfg.input_size} images "
                "with "
                f"{cfg.num_classes} classes, the pairs are {'x'.join(map(str, manifest['shape']))} with "
                f"{manifest['num_classes']}"
            )
        if not cfg.one_step:
            raise EdgeditError(f"`{role}` {spec}: is a {cfg.kind}; students and TAs are one-step generators")
        return model.train(), "checkpoint"
    cfg = student_config(spec, manifest, **overrides)
    check_training_memory(cfg, batch)  # before the model exists
    return DiT(cfg), "preset"


def trajectory_scales(manifest: dict) -> list[float]:
    """Preconditioning of the stored states: EDM's c_in(sigma); DDPM states are unit-variance."""
    trajectory = manifest["trajectory"]
    if manifest["sampler"]["type"] == "edm":
        return [1 / math.sqrt(s * s + EDM_SIGMA_DATA**2) for s in trajectory.get("sigmas", [])]
    return [1.0] * trajectory["k"]


@dataclass(frozen=True, kw_only=True)
class DistillOptions:
    pairs: Path  # a pairs store (edgedit pairs generate)
    output: Path  # the student checkpoint (EMA weights)
    settings: TrainSettings
    student: str = "DiT-Nano-S/2"  # a preset (at the pairs' geometry) or a checkpoint
    overrides: dict[str, Any] = field(default_factory=dict)  # preset overrides: depth, hidden_size, ...
    method: str = "output"
    ta: str | None = None  # ta: the assistant, a preset (distilled first) or a checkpoint
    ta_steps: int | None = None  # steps for a preset TA (default: settings.steps)
    loss: str = "pseudo-huber"
    feature_loss: str = "l2"
    feature_weight: float = 1.0
    taps: tuple[int, ...] | None = None
    real: str | None = None  # adversarial: the real images (a data spec; its training split only)
    adv_weight: float = 1.0  # adversarial: weight of the GAN term (1: the best of 0.1, 0.3, 1, 3 on digits)
    disc_lr: float = 2e-4  # adversarial: the discriminator's learning rate
    resume: bool = False

    def check(self) -> None:
        """Everything that can be refused before any data is read or any step is spent."""
        if self.method not in METHODS:
            raise EdgeditError(f"`method` must be one of {', '.join(METHODS)} (got {self.method!r})")
        if self.method == "ta" and self.ta is None:
            raise EdgeditError("`method` ta needs `ta` PRESET|CKPT (the teaching assistant)")
        if self.method != "ta" and self.ta is not None:
            raise EdgeditError("`ta` is only for `method` ta")
        if self.method == "adversarial" and self.real is None:
            raise EdgeditError(
                "`method` adversarial needs `real` DATA: the real training images it is judged against (e.g. digits)"
            )
        if self.method != "adversarial" and self.real is not None:
            raise EdgeditError("`real` is only for `method` adversarial")
        for name, value in (("adv_weight", self.adv_weight), ("disc_lr", self.disc_lr)):
            if not (math.isfinite(value) and 0 <= value <= 1e3):
                raise EdgeditError(f"`{name}` must be a finite number in [0, 1000] (got {value})")
        if self.disc_lr == 0:
            raise EdgeditError("`disc_lr` must be > 0")
        if self.loss not in IMAGE_LOSSES:
            raise EdgeditError(f"`loss` must be one of {', '.join(IMAGE_LOSSES)} (got {self.loss!r})")
        check_feature_loss(self.feature_loss)
        if not (math.isfinite(self.feature_weight) and self.feature_weight >= 0):
            raise EdgeditError(f"`feature_weight` must be a finite number >= 0 (got {self.feature_weight})")
        self.settings.check()


def distill(options: DistillOptions, *, on_step=None, on_sample=None, say=log.info) -> Path:
    """Distil a one-step student from a pairs store; returns the student's path. `on_sample(step,
    ema)` sees the student (not a TA being distilled first)."""
    from edgedit.data.pairs import PairsStore
    from edgedit.models.checkpoint import load_model
    from edgedit.train.trainer import Run, init_world, train

    o = options
    o.check()
    store = PairsStore(o.pairs)
    manifest = store.manifest
    if o.method == "mi1" and manifest["trajectory"]["k"] == 0:
        raise EdgeditError(
            f"{o.pairs}: the pairs hold no trajectory states, which mi1 regresses onto; regenerate "
            "them with `edgedit pairs generate ... --trajectory K`"
        )
    world = init_world()
    columns = (
        ["z", "image"] + (["label"] if manifest["num_classes"] else []) + (["trajectory"] if o.method == "mi1" else [])
    )
    provenance = {"pairs": str(o.pairs), "teacher": manifest["teacher"], "loss": o.loss, "student": o.student}
    output, settings = Path(o.output), o.settings

    torch.manual_seed(settings.seed)
    model, origin = model_from(o.student, manifest, "student", settings.batch, **o.overrides)
    if manifest["sampler"]["noise"] in NOISE_SCHEMES:  # the student's seed s draws pair s's noise (GET's is no scheme)
        model.noise = manifest["sampler"]["noise"]
    extra = {"method": o.method, "student_from": origin, "loss": o.loss}
    if o.method == "ta":
        ta_model, ta_origin = model_from(o.ta, manifest, "ta", settings.batch)
        check_ta(model.config, ta_model.config)  # before spending any steps on it
    data = {name: store.column(name) for name in columns}

    def distil(net: DiT, objective, out: Path, label: str, run_extra: dict, run_settings=settings, sample=on_sample):
        run = Run(net.config, str(o.pairs), label, run_settings, run_extra)
        return train(
            run,
            data,
            objective,
            out,
            o.resume,
            {**provenance, **run_extra},
            on_step=on_step,
            on_sample=sample,
            world=world,
            say=say,
        )

    if o.method == "output":
        objective = OutputDistillation(model, o.loss)
    elif o.method == "ta":
        if ta_origin == "preset":  # distil the TA first, from the same pairs, with the output loss
            ta_file = artefacts.teaching_assistant(output)
            if not (o.resume and ta_file.exists()):
                say(f"distilling the teaching assistant {o.ta} first -> {ta_file}")
                torch.manual_seed(settings.seed + 1)
                ta_settings = replace(settings, steps=o.ta_steps or settings.steps)
                distil(
                    ta_model,
                    OutputDistillation(ta_model, o.loss),
                    ta_file,
                    "distill-output (TA)",
                    {"role": "ta"},
                    ta_settings,
                    None,
                )
            ta_model, _ = load_model(ta_file)
            extra["ta"] = {"file": ta_file.name, "preset": o.ta}
        else:
            extra["ta"] = {"file": Path(o.ta).name}
        objective = TADistillation(model, ta_model, o.loss, o.feature_loss, o.feature_weight, o.taps and list(o.taps))
        extra.update(
            feature_loss=o.feature_loss,
            feature_weight=o.feature_weight,
            taps=objective.taps,
            block_map=objective.block_map,
        )
    elif o.method == "mi1":
        objective = MI1Distillation(
            model, trajectory_scales(manifest), o.loss, o.feature_loss, o.feature_weight, o.taps and list(o.taps)
        )
        extra.update(
            feature_loss=o.feature_loss,
            feature_weight=o.feature_weight,
            taps=objective.taps,
            trajectory=manifest["trajectory"],
        )
    else:
        objective, real = adversarial_objective(model, o)
        say(f"adversarial term against {real}")
        extra.update(real=real, adv_weight=o.adv_weight, disc_lr=o.disc_lr)
    return distil(model, objective, output, f"distill-{o.method}", extra)


def adversarial_objective(model: DiT, o: DistillOptions):
    """(the objective, what its real images are): the student against real training images, never the
    held-out split that FID is measured on."""
    from edgedit.data.datasets import has_test_split, load_data
    from edgedit.train.adversarial import AdversarialDistillation

    real = load_data(o.real, "train")
    if not has_test_split(o.real):
        log.warning(
            f"real images {o.real} have no held-out split: an FID measured against the same images will "
            "flatter the student"
        )
    labels = torch.from_numpy(real.labels) if real.labels is not None else None
    try:
        objective = AdversarialDistillation(
            model, torch.from_numpy(real.images), labels, real.num_classes, o.loss, o.adv_weight, o.disc_lr
        )
    except EdgeditError as err:
        raise EdgeditError(f"`real` {o.real}: {err}") from None
    return objective, f"{real.name} train split ({len(real)} images)"
