"""Hostile inputs for edgedit's commands, as data (issue 12): the reproducible form of the hostile sweep.

A case is an id, a class, a builder that makes its hostile files in an empty folder (from the valid
tiny artefacts of `Base`, changing one field or a few bytes), the command line to run there, and
the names of which at least one must appear in the error line (the offending file or option).
The promise each case checks (runner.judge): exit 2, one `edgedit: error:` line on stderr naming
the culprit, nothing written, every input unchanged, in bounded time and memory.

Everything here goes through edgedit's public surface only: the valid artefacts are made by the
`edgedit` command line itself (`build_base`), and the hostile files by plain json, numpy, onnx,
PIL, zlib, pickle, torch.save and safetensors' documented byte layout (8-byte little-endian
header length, JSON header, data). Nothing imports edgedit, so the same cases run against any
checkout (benchmarks/hostile_sweep.py runs them against an old one).

Each case runs in a fresh empty folder holding only the files its builder made: input file names
are short and fixed (s.safetensors, s.onnx, m.onnx, s.plan, hpairs/, c.npz, ...) so that error
lines can be checked for them.
"""

from __future__ import annotations

import json
import math
import pickle
import shutil
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CLASSES = (
    "metadata",
    "checkpoint",
    "train-state",
    "sidecar",
    "pairs",
    "data",
    "tegrastats",
    "calibration",
    "header-bomb",
    "absurd-args",
    "output-over-input",
    "last-mile",
)


@dataclass(frozen=True)
class Case:
    id: str
    cls: str
    build: Callable[[Path, Base], None]
    argv: tuple[str, ...]
    names: tuple[str, ...]  # the error line must contain one of these
    timeout: float | None = None  # seconds (default: runner.DEFAULT_TIMEOUT_S)


#################################################################################
#                       Valid tiny artefacts, made by the CLI                   #
#################################################################################

# The tiny teacher and student, and the arguments that resume them (same settings, one step more).
TEACHER_TRAIN = ("--depth", "1", "--width", "16", "--heads", "2", "--batch", "8", "--checkpoint-every", "1")
STUDENT_TRAIN = (
    "--pairs",
    "hpairs",
    "--student",
    "DiT-Nano-XS/2",
    "--depth",
    "2",
    "--width",
    "16",
    "--heads",
    "2",
    "--batch",
    "4",
    "--checkpoint-every",
    "1",
)
BASE_COMMANDS = (
    ("teacher", "train", "-o", "teacher.safetensors", "--steps", "2", *TEACHER_TRAIN),
    (
        "pairs",
        "generate",
        "teacher.safetensors",
        "-n",
        "8",
        "-o",
        "hpairs",
        "--steps",
        "2",
        "--trajectory",
        "1",
        "--shard-size",
        "4",
        "--batch",
        "8",
    ),
    ("distill", "-o", "s.safetensors", "--steps", "2", *STUDENT_TRAIN),
    ("export", "s.safetensors", "-o", "s.onnx", "--dynamic-batch", "1:2:4"),
    ("export", "teacher.safetensors", "-o", "teacher.onnx", "--batch", "1"),
    ("calib-data", "s.onnx", "-n", "4", "-o", "calib.npz"),
    ("bench", "s.onnx", "--iters", "2", "--warmup", "0", "--json", "bench.json"),
)
BASE_FILES = (
    "teacher.safetensors",
    "teacher.train-state.safetensors",
    "hpairs",
    "s.safetensors",
    "s.train-state.safetensors",
    "s.onnx",
    "teacher.onnx",
    "calib.npz",
    "bench.json",
    "s.plan",
    "s.plan.json",
    "tegra.log",
)


@dataclass(frozen=True)
class Base:
    """The folder of valid artefacts every case starts from (never modified by a case)."""

    folder: Path

    def copy(self, folder: Path, *names: str) -> None:
        for name in names:
            source, dest = self.folder / name, folder / name
            if source.is_dir():
                shutil.copytree(source, dest)
            else:
                shutil.copy2(source, dest)


def build_base(folder: Path, run: Callable[[list[str], Path, float], dict]) -> Base:
    """Make the valid artefacts with the `edgedit` command line (`run(argv, cwd, timeout)` -> the
    zygote's reply) and plain file writes; fails loudly if a command fails."""
    folder.mkdir(parents=True, exist_ok=True)
    for argv in BASE_COMMANDS:
        result = run(list(argv), folder, 600)
        if result["rc"] != 0:
            raise RuntimeError(
                f"building the valid artefacts: `edgedit {' '.join(argv)}` gave exit {result['rc']} "
                f"(hang: {result['hang']}):\n{result['stderr'][-3000:]}"
            )
    _write_sidecar(folder)
    (folder / "tegra.log").write_text("\n".join(TEGRA_LINES) + "\n")
    missing = [n for n in BASE_FILES if not (folder / n).exists()]
    if missing:
        raise RuntimeError(f"building the valid artefacts: {', '.join(missing)} missing in {folder}")
    return Base(folder)


def onnx_metadata(path: Path) -> dict[str, str]:
    import onnx

    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def _write_sidecar(folder: Path) -> None:
    """An engine as `build-engine` writes it (`NAME.plan` + `NAME.plan.json`); the plan bytes are
    junk: nothing here has TensorRT, and a hostile sidecar must be refused before they matter."""
    import hashlib

    plan = folder / "s.plan"
    plan.write_bytes(b"not a real TensorRT engine\x00" * 8)
    meta = onnx_metadata(folder / "s.onnx")
    inputs, outputs = json.loads(meta["edgedit.inputs"]), json.loads(meta["edgedit.outputs"])
    record = {
        "format": "edgedit.engine/1",
        "edgedit_version": meta.get("edgedit.version", "0.1.0"),
        "precision": "fp16",
        "strongly_typed": False,
        "builder": {
            "precision": "fp16",
            "strongly_typed": False,
            "fp16_flag": True,
            "int8_flag": False,
            "workspace_mb": 1024,
            "opt_level": 3,
            "timing_cache": None,
            "shapes": {},
            "dynamic": True,
            "tool": "polygraphy",
        },
        "trtexec_equivalent": "trtexec --onnx=s.onnx --saveEngine=s.plan --fp16",
        "device": {
            "tensorrt": "10.3.0",
            "gpu": "Orin",
            "compute_capability": "8.7",
            "cuda_driver": "12.6",
            "platform": "Linux aarch64",
            "jetson": None,
        },
        "onnx": {
            "file": "s.onnx",
            "sha256": hashlib.sha256((folder / "s.onnx").read_bytes()).hexdigest(),
            "metadata": meta,
            "quantized_from": None,
        },
        "io": {"inputs": inputs, "outputs": outputs},
        "build_seconds": 1.5,
        "peak_rss_mb": 300.0,
        "tegrastats": None,
        "plan_bytes": plan.stat().st_size,
        "plan_sha256": hashlib.sha256(plan.read_bytes()).hexdigest(),  # what a sidecar may check the engine with
    }
    (folder / "s.plan.json").write_text(json.dumps(record, indent=2))


TEGRA_LINES = [
    "07-14-2025 10:29:36 RAM 2147/7620MB (lfb 2x4MB) SWAP 1476/3810MB (cached 1MB) CPU [0%@729,off,off,off,1%@729,"
    "0%@729] EMC_FREQ 0%@2133 GR3D_FREQ 62%@612 cpu@47.687C soc2@46.5C VDD_IN 4556mW/4556mW VDD_CPU_GPU_CV "
    "483mW/483mW VDD_SOC 1289mW/1289mW",
    "07-14-2025 10:29:37 RAM 2150/7620MB (lfb 2x4MB) SWAP 1476/3810MB (cached 1MB) CPU [3%@729,off,off,off,1%@729,"
    "0%@729] EMC_FREQ 1%@2133 GR3D_FREQ 70%@612 cpu@47.9C soc2@46.6C VDD_IN 4700mW/4628mW VDD_CPU_GPU_CV "
    "520mW/501mW VDD_SOC 1300mW/1294mW",
]


#################################################################################
#                              File surgery helpers                             #
#################################################################################


def st_read(path: Path) -> tuple[dict, bytes]:
    """(header, data) of a safetensors file (8-byte little-endian length, JSON header, data)."""
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def st_write(path: Path, header: dict, data: bytes) -> None:
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)


def st_edit_metadata(path: Path, edit: Callable[[dict], None]) -> None:
    header, data = st_read(path)
    meta = header.setdefault("__metadata__", {})
    edit(meta)
    st_write(path, header, data)


def jedit(meta: dict, key: str, edit: Callable) -> None:
    """Decode a JSON-valued metadata entry, edit it (in place, or by returning a new value), encode it."""
    value = json.loads(meta[key])
    new = edit(value)
    meta[key] = json.dumps(value if new is None else new)


def onnx_edit_metadata(source: Path, dest: Path, edit: Callable[[dict], None]) -> None:
    """Copy an ONNX file with its metadata_props edited (a dict key -> string value)."""
    import onnx

    model = onnx.load(str(source), load_external_data=False)
    meta = {p.key: p.value for p in model.metadata_props}
    edit(meta)
    del model.metadata_props[:]
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(dest))


def deep_json(depth: int = 100_000) -> str:
    """Valid JSON nested `depth` levels deep: a stack bomb for a recursive parser."""
    return "[" * depth + "]" * depth


def sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


#################################################################################
#                              ONNX metadata                                    #
#################################################################################


def _meta(key: str, edit: Callable) -> Callable[[dict], None]:
    return lambda m: jedit(m, "edgedit." + key, edit)


def _put(key: str, value) -> Callable[[dict], None]:
    def edit(m: dict) -> None:
        m["edgedit." + key] = value if isinstance(value, str) else json.dumps(value)

    return edit


def _first(key: str, field: str, value=None, drop: bool = False) -> Callable[[dict], None]:
    """Set (or drop) a field of the first input/output spec."""

    def edit(specs: list) -> None:
        if drop:
            specs[0].pop(field)
        else:
            specs[0][field] = value

    return _meta(key, edit)


def _set(key: str, field: str, value=None, drop: bool = False) -> Callable[[dict], None]:
    def edit(record: dict) -> None:
        if drop:
            record.pop(field)
        else:
            record[field] = value

    return _meta(key, edit)


def _both_shapes(shape: list) -> Callable[[dict], None]:
    def edit(m: dict) -> None:
        _first("inputs", "shape", shape)(m)
        _first("outputs", "shape", shape)(m)

    return edit


SAMPLE_ONE = ("-n", "1", "--batch", "1")
ONNX_COMMANDS = {
    "info": lambda f: ("info", f),
    "models": lambda f: ("models", f),
    "sample": lambda f: ("sample", f, *SAMPLE_ONE),
    "bench": lambda f: ("bench", f, "--iters", "1", "--warmup", "0"),
    "build-engine": lambda f: ("build-engine", f, "--dry-run"),
    "quantize": lambda f: ("quantize", f, "--calib-samples", "1", "--heldout-samples", "1"),
    "calib-data": lambda f: ("calib-data", f, "-n", "1", "-o", "c.npz"),
}
EVERY = tuple(ONNX_COMMANDS)
DEVICE = ("info", "sample", "bench", "build-engine")
FEW = ("info", "sample", "build-engine")

# (id, source export, edit of the `edgedit.*` metadata, commands)
METADATA = [
    ("batch-list", "s.onnx", _put("batch", [1, 2, 4]), FEW),
    ("batch-min-0", "s.onnx", _set("batch", "min", 0), EVERY),
    ("batch-min-over-max", "s.onnx", _put("batch", {"min": 4, "opt": 2, "max": 1}), ("sample", "build-engine")),
    ("batch-max-1e12", "s.onnx", _set("batch", "max", 10**12), (*FEW, "quantize")),
    ("batch-bool", "s.onnx", _set("batch", "min", True), ("build-engine",)),
    ("batch-string", "s.onnx", _set("batch", "max", "4"), ("sample",)),
    ("outputs-empty", "s.onnx", _put("outputs", []), EVERY),
    ("inputs-empty", "s.onnx", _put("inputs", []), FEW),
    ("input-no-dtype", "s.onnx", _first("inputs", "dtype", drop=True), (*DEVICE, "quantize")),
    ("input-dtype-bogus", "s.onnx", _first("inputs", "dtype", "float128x"), ("sample", "build-engine")),
    ("config-mlp-ratio-inf", "s.onnx", _set("config", "mlp_ratio", math.inf), EVERY),
    ("config-mlp-ratio-nan", "s.onnx", _set("config", "mlp_ratio", math.nan), ("info", "models")),
    ("config-depth-string", "s.onnx", _set("config", "depth", "2"), ("info", "models")),
    ("config-depth-1e6", "s.onnx", _set("config", "depth", 10**6), ("info", "models", "sample")),
    ("config-classes-bool", "s.onnx", _set("config", "num_classes", True), ("info", "sample")),
    ("config-deep-nesting", "s.onnx", _put("config", deep_json()), ("info", "build-engine")),
    ("shape-disagrees-with-graph", "s.onnx", _first("inputs", "shape", ["N", 3, 16, 16]), (*DEVICE, "calib-data")),
    ("shape-1e5-cubed", "s.onnx", _both_shapes(["N", 100000, 100000, 100000]), EVERY),
    ("shape-negative", "s.onnx", _first("inputs", "shape", ["N", -1, 16, 16]), ("sample", "build-engine")),
    ("shape-string-dims", "s.onnx", _first("inputs", "shape", ["N", "1", "16", "16"]), ("sample", "build-engine")),
    ("source-list", "s.onnx", _put("source", [1, 2]), ("info", "bench")),
    ("parity-string", "s.onnx", _put("parity", "fine"), ("info",)),
    ("quantization-list", "s.onnx", _put("quantization", []), ("info",)),
    ("precision-unknown", "s.onnx", _put("precision", "fp8"), ("info", "build-engine")),
    ("sampler-type-unknown", "s.onnx", _set("sampler", "type", "magic"), ("info", "sample")),
    (
        "edm-sampler-no-sigma-min",
        "teacher.onnx",
        _set("sampler", "sigma_min", drop=True),
        ("info", "sample", "calib-data"),
    ),
    ("edm-sampler-steps-negative", "teacher.onnx", _set("sampler", "steps", -3), ("sample", "calib-data")),
    ("edm-sampler-steps-string", "teacher.onnx", _set("sampler", "steps", "18"), ("sample",)),
    ("edm-sampler-sigma-max-nan", "teacher.onnx", _set("sampler", "sigma_max", math.nan), ("sample",)),
    ("edm-sampler-steps-1e9", "teacher.onnx", _set("sampler", "steps", 10**9), ("sample",)),
]


def _onnx_case(source: str, edit: Callable[[dict], None]) -> Callable[[Path, Base], None]:
    def build(folder: Path, base: Base) -> None:
        onnx_edit_metadata(base.folder / source, folder / "m.onnx", edit)

    return build


def metadata_cases() -> list[Case]:
    cases = []
    for name, source, edit, commands in METADATA:
        for command in commands:
            argv = ONNX_COMMANDS[command]("m.onnx")
            cases.append(Case(f"metadata/{name}/{command}", "metadata", _onnx_case(source, edit), argv, ("m.onnx",)))
    return cases


#################################################################################
#                                  Checkpoints                                  #
#################################################################################


def _ckpt_config(field: str, value=None, drop: bool = False) -> Callable[[dict], None]:
    def edit(meta: dict) -> None:
        config = json.loads(meta["edgedit.config"])
        if drop:
            config.pop(field)
        else:
            config[field] = value
        meta["edgedit.config"] = json.dumps(config)

    return edit


def _ckpt_put(key: str, text: str) -> Callable[[dict], None]:
    def edit(meta: dict) -> None:
        meta[key] = text

    return edit


def _bit_flip(folder: Path, base: Base) -> None:
    base.copy(folder, "s.safetensors")
    path = folder / "s.safetensors"
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0x10  # one bit of the last tensor's data: same shapes, different weights
    path.write_bytes(bytes(raw))


def _truncated(folder: Path, base: Base) -> None:
    base.copy(folder, "s.safetensors")
    path = folder / "s.safetensors"
    path.write_bytes(path.read_bytes()[:-100])


def _header_length_huge(folder: Path, base: Base) -> None:
    base.copy(folder, "s.safetensors")
    path = folder / "s.safetensors"
    raw = path.read_bytes()
    path.write_bytes(struct.pack("<Q", 2**62) + raw[8:])


def _tensor_shape_huge(folder: Path, base: Base) -> None:
    base.copy(folder, "s.safetensors")
    path = folder / "s.safetensors"
    header, data = st_read(path)
    name = next(k for k in header if k != "__metadata__")
    header[name]["shape"] = [100000, 100000, 100000]
    st_write(path, header, data)


def _ckpt_meta_case(edit: Callable[[dict], None]) -> Callable[[Path, Base], None]:
    def build(folder: Path, base: Base) -> None:
        base.copy(folder, "s.safetensors")
        st_edit_metadata(folder / "s.safetensors", edit)

    return build


CKPT_COMMANDS = {
    "info": ("info", "s.safetensors"),
    "models": ("models", "s.safetensors"),
    "export": ("export", "s.safetensors", "-o", "out.onnx"),
    "sample": ("sample", "s.safetensors", *SAMPLE_ONE),
    "eval": ("eval", "s.safetensors", "-n", "2", "--batch", "2"),
}
CKPT_EVERY = tuple(CKPT_COMMANDS)

CHECKPOINT = [
    ("mlp-ratio-string", _ckpt_meta_case(_ckpt_config("mlp_ratio", "4.0")), CKPT_EVERY),
    ("class-dropout-string", _ckpt_meta_case(_ckpt_config("class_dropout_prob", "0.0")), CKPT_EVERY),
    ("mlp-ratio-inf", _ckpt_meta_case(_ckpt_config("mlp_ratio", math.inf)), ("info", "sample")),
    ("depth-1e6", _ckpt_meta_case(_ckpt_config("depth", 10**6)), CKPT_EVERY),
    ("classes-bool", _ckpt_meta_case(_ckpt_config("num_classes", True)), ("info",)),
    ("diffusion-missing", _ckpt_meta_case(_ckpt_config("diffusion", drop=True)), ("info",)),
    ("provenance-list", _ckpt_meta_case(_ckpt_put("edgedit.provenance", "[1, 2]")), ("info", "export")),
    ("provenance-deep-nesting", _ckpt_meta_case(_ckpt_put("edgedit.provenance", deep_json())), ("info",)),
    ("config-deep-nesting", _ckpt_meta_case(_ckpt_put("edgedit.config", deep_json())), ("models",)),
    ("tensor-bit-flipped", _bit_flip, CKPT_EVERY),
    ("truncated", _truncated, ("sample",)),
    ("header-length-2e62", _header_length_huge, ("info",)),
    ("tensor-shape-1e5-cubed", _tensor_shape_huge, ("info",)),
]


def checkpoint_cases() -> list[Case]:
    return [
        Case(
            f"checkpoint/{name}/{command}",
            "checkpoint",
            build,
            CKPT_COMMANDS[command],
            ("s.safetensors",),
            timeout=90 if command == "export" else None,
        )
        for name, build, commands in CHECKPOINT
        for command in commands
    ]


#################################################################################
#                           Training states on --resume                         #
#################################################################################

RESUME = {
    "teacher": (
        "teacher.train-state.safetensors",
        ("teacher.safetensors", "teacher.train-state.safetensors"),
        ("teacher", "train", "-o", "teacher.safetensors", "--steps", "3", *TEACHER_TRAIN, "--resume"),
    ),
    "distill": (
        "s.train-state.safetensors",
        ("hpairs", "s.safetensors", "s.train-state.safetensors"),
        ("distill", "-o", "s.safetensors", "--steps", "3", *STUDENT_TRAIN, "--resume"),
    ),
}


def _state_meta(key: str, value: str | None) -> Callable[[dict], None]:
    def edit(meta: dict) -> None:
        if value is None:
            meta.pop(key)
        else:
            meta[key] = value

    return edit


def _state_json(key: str, edit: Callable) -> Callable[[dict], None]:
    return lambda meta: jedit(meta, key, edit)


def _groups_without_params(groups: list) -> None:
    for group in groups:
        group.pop("params")


def _drop_tensor(folder: Path, state: str) -> None:
    path = folder / state
    header, data = st_read(path)
    name = next(k for k in header if k.startswith("ema."))
    header.pop(name)
    st_write(path, header, data)


TRAIN_STATE = [
    ("run-missing", _state_meta("run", None)),
    ("run-not-json", _state_meta("run", "{not json")),
    ("step-negative", _state_meta("step", "-5")),
    ("step-string", _state_meta("step", "two")),
    ("step-past-steps", _state_meta("step", "1000000")),
    ("optimizer-groups-without-params", _state_json("optim_groups", _groups_without_params)),
    ("settings-missing", _state_json("run", lambda run: run.pop("settings"))),
    ("tensor-missing", None),
]


def _state_case(kind: str, edit: Callable[[dict], None] | None) -> Callable[[Path, Base], None]:
    state, files, _ = RESUME[kind]

    def build(folder: Path, base: Base) -> None:
        base.copy(folder, *files)
        if edit is None:
            _drop_tensor(folder, state)
        else:
            st_edit_metadata(folder / state, edit)

    return build


def train_state_cases() -> list[Case]:
    return [
        Case(
            f"train-state/{name}/{kind}",
            "train-state",
            _state_case(kind, edit),
            RESUME[kind][2],
            (RESUME[kind][0], "--resume"),
            timeout=60,
        )
        for name, edit in TRAIN_STATE
        for kind in RESUME
    ]


#################################################################################
#                                Engine sidecars                                #
#################################################################################


def _sidecar_case(edit: Callable[[dict], object] | None) -> Callable[[Path, Base], None]:
    def build(folder: Path, base: Base) -> None:
        base.copy(folder, "s.plan", "s.plan.json")
        if edit is None:  # another engine of the same size
            (folder / "s.plan").write_bytes((folder / "s.plan").read_bytes()[::-1])
            return
        record = json.loads((folder / "s.plan.json").read_text())
        new = edit(record)
        text = new if isinstance(new, str) else json.dumps(record if new is None else new)
        (folder / "s.plan.json").write_text(text)

    return build


def _sidecar_meta(edit: Callable[[dict], None]) -> Callable[[dict], None]:
    return lambda record: edit(record["onnx"]["metadata"])


SIDECAR = [
    ("list-not-object", lambda r: [r]),
    ("no-device", lambda r: _drop(r, "device")),
    ("no-builder", lambda r: _drop(r, "builder")),
    ("no-onnx-metadata", lambda r: _drop(r["onnx"], "metadata")),
    ("onnx-not-object", lambda r: r.update(onnx="s.onnx")),
    ("batch-1e12", _sidecar_meta(_set("batch", "max", 10**12))),
    ("metadata-mlp-ratio-inf", _sidecar_meta(_set("config", "mlp_ratio", math.inf))),
    ("build-seconds-string", lambda r: r.update(build_seconds="fast")),
    ("precision-number", lambda r: r.update(precision=16)),
    ("device-tensorrt-list", lambda r: r["device"].update(tensorrt=[10, 3])),
    ("deep-nesting", lambda r: deep_json()),
    ("engine-bytes-replaced", None),  # the sidecar is intact; the engine it describes is not
]
SIDECAR_COMMANDS = {
    "info": ("info", "s.plan"),
    "models": ("models", "s.plan"),
    "sample": ("sample", "s.plan", *SAMPLE_ONE),
    "bench": ("bench", "s.plan", "--iters", "1", "--warmup", "0"),
}


SIDECAR_USE = {
    "list-not-object": ("info", "sample", "bench"),
    "no-device": ("info", "sample", "bench"),
    "no-onnx-metadata": ("info", "sample", "bench"),
    "onnx-not-object": ("info", "sample"),
    "batch-1e12": ("info", "models", "sample", "bench"),
    "metadata-mlp-ratio-inf": ("info", "models"),
    "precision-number": ("info", "sample"),
    "device-tensorrt-list": ("info", "sample"),
    "deep-nesting": ("info", "models", "sample"),
    "engine-bytes-replaced": ("info", "sample"),
}


def sidecar_cases() -> list[Case]:
    cases = []
    for name, edit in SIDECAR:
        for command in SIDECAR_USE.get(name, ("info",)):
            # Without TensorRT, sample and bench may refuse for that instead: exit 2 and one line either way.
            names = ("s.plan",) if command in ("info", "models") else ("s.plan", "TensorRT", "tensorrt")
            cases.append(
                Case(f"sidecar/{name}/{command}", "sidecar", _sidecar_case(edit), SIDECAR_COMMANDS[command], names)
            )
    return cases


#################################################################################
#                                  Pairs stores                                 #
#################################################################################


def _manifest(folder: Path) -> Path:
    return folder / "hpairs" / "manifest.json"


def _edit_manifest(edit: Callable[[dict], object]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        path = _manifest(folder)
        manifest = json.loads(path.read_text())
        new = edit(manifest)
        path.write_text(new if isinstance(new, str) else json.dumps(manifest if new is None else new, indent=2))

    return apply


def replace_array(folder: Path, shard: int, name: str, writer: Callable[[Path], None]) -> None:
    """Replace one array file of a shard and record its new checksum in meta.json and the
    manifest, as a consistent (checksum-valid) but hostile store."""
    shard_dir = folder / "hpairs" / f"shard-{shard:06d}"
    writer(shard_dir / f"{name}.npy")
    digest = sha256(shard_dir / f"{name}.npy")
    meta_path = shard_dir / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["sha256"][name] = digest
    meta_path.write_text(json.dumps(meta, indent=2))
    manifest = json.loads(_manifest(folder).read_text())
    for entry in manifest["shards"]:
        if entry["name"] == shard_dir.name:
            entry["sha256"][name] = digest
    _manifest(folder).write_text(json.dumps(manifest, indent=2))


def _npy(array_fn: Callable[[], object], allow_pickle: bool = False) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        import numpy as np

        np.save(path, array_fn(), allow_pickle=allow_pickle)

    return write


def _truncate_npy(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-200])


class Canary:
    """Unpickling it creates the file PWNED-by-pickle in the current folder: the run's folder
    check sees it if anything ever unpickles a shard."""

    def __reduce__(self):
        return (open, ("PWNED-by-pickle", "w"))


def _pickled_z():
    import numpy as np

    array = np.empty((4,), dtype=object)
    array[:] = [Canary(), 1, 2, 3]
    return array


def _labels(values):
    def make():
        import numpy as np

        return np.asarray(values, dtype=np.int64)

    return make


def _wrong_image():
    import numpy as np

    return np.zeros((4, 3, 16, 16), np.float16)


def _traversal(folder: Path) -> None:
    outside = folder / "x"
    shutil.copytree(folder / "hpairs" / "shard-000000", outside)
    _edit_manifest(lambda m: m["shards"][0].update(name="../x"))(folder)


def _array_case(shard: int, name: str, writer: Callable[[Path], None]) -> Callable[[Path], None]:
    return lambda folder: replace_array(folder, shard, name, writer)


def _meta_json_list(folder: Path) -> None:
    (folder / "hpairs" / "shard-000000" / "meta.json").write_text("[1, 2]")


def _drop(record: dict, key: str) -> None:
    record.pop(key)


def _zero_sha(m: dict) -> None:
    m["shards"][0]["sha256"]["z"] = "0" * 64


PAIRS = [
    # (id, edit of the copied store, commands)
    ("shard-path-traversal", _traversal, ("distill", "design-sweep")),
    ("wrong-shard-sha256", _edit_manifest(_zero_sha), ("distill", "design-sweep")),
    ("count-1e12", _edit_manifest(lambda m: m["seeds"].update(count=10**12)), ("distill", "verify")),
    ("expected-shards-1e12", _edit_manifest(lambda m: m.update(expected_shards=10**12)), ("verify",)),
    ("expected-shards-string", _edit_manifest(lambda m: m.update(expected_shards="two")), ("verify",)),
    ("labels-over-classes", _array_case(0, "label", _npy(_labels([10, 11, 12, 99]))), ("distill", "design-sweep")),
    ("no-complete", _edit_manifest(lambda m: _drop(m, "complete")), ("distill", "design-sweep")),
    ("empty-shard-list", _edit_manifest(lambda m: m.update(shards=[])), ("distill", "design-sweep")),
    ("pickled-shard", _array_case(0, "z", _npy(_pickled_z, allow_pickle=True)), ("distill", "design-sweep")),
    ("truncated-z", _array_case(1, "z", _truncate_npy), ("distill",)),
    ("wrong-shaped-image", _array_case(0, "image", _npy(_wrong_image)), ("distill", "design-sweep")),
    ("manifest-list", _edit_manifest(lambda m: [m]), ("distill", "verify")),
    ("manifest-deep-nesting", _edit_manifest(lambda m: deep_json()), ("distill", "verify")),
    ("manifest-format-foreign", _edit_manifest(lambda m: m.update(format="someone.else/9")), ("verify",)),
    ("shape-1e5", _edit_manifest(lambda m: m.update(shape=[1, 100000, 100000])), ("distill", "verify")),
    ("classes-negative", _edit_manifest(lambda m: m.update(num_classes=-3)), ("distill", "verify")),
    ("classes-string", _edit_manifest(lambda m: m.update(num_classes="10")), ("verify",)),
    ("shard-meta-list", _meta_json_list, ("distill",)),
]
PAIRS_COMMANDS = {
    "distill": ("distill", "-o", "student.safetensors", "--steps", "1", *STUDENT_TRAIN),
    "design-sweep": (
        "design",
        "sweep",
        "--pairs",
        "hpairs",
        "--budget",
        "11.5k",
        "--depths",
        "2",
        "--widths",
        "16",
        "--heads",
        "2",
        "--steps",
        "1",
        "--batch",
        "2",
        "--eval-samples",
        "2",
        "-o",
        "sweep",
    ),
    "verify": ("pairs", "verify", "hpairs"),
}


def _pairs_case(edit: Callable[[Path], None]) -> Callable[[Path, Base], None]:
    def build(folder: Path, base: Base) -> None:
        base.copy(folder, "hpairs")
        edit(folder)

    return build


def pairs_cases() -> list[Case]:
    return [
        Case(
            f"pairs/{name}/{command}",
            "pairs",
            _pairs_case(edit),
            PAIRS_COMMANDS[command],
            ("hpairs",),
            timeout=90 if command == "design-sweep" else 60,
        )
        for name, edit, commands in PAIRS
        for command in commands
    ]


#################################################################################
#                                    Data                                       #
#################################################################################

TINY_TEACHER = ("-o", "t.safetensors", "--steps", "1", *TEACHER_TRAIN)


def _png(path: Path, value: int = 128, size: int = 8) -> None:
    from PIL import Image

    Image.new("L", (size, size), value).save(path)


def _image_folder(folder: Path, extra: Callable[[Path], None]) -> None:
    for label in ("a", "b"):
        (folder / "imgs" / label).mkdir(parents=True)
        for k in range(2):
            _png(folder / "imgs" / label / f"{k}.png", 60 * k + 10)
    extra(folder / "imgs")


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(side: int = 100_000) -> bytes:
    """A PNG of a few hundred bytes declaring side x side grey pixels (a decompression bomb)."""
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    data = zlib.compress(b"\x00" * (side + 1) * 4)  # a few rows: enough for a reader that trusts the header
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")


def _folder_case(extra: Callable[[Path], None]) -> Callable[[Path, Base], None]:
    return lambda folder, base: _image_folder(folder, extra)


def cifar_batch(n: int, seed: int, labels=None) -> dict:
    """The CIFAR-10 python-format batch layout (as tests/data/test_datasets.py builds it)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"training batch",
        b"labels": list(labels) if labels is not None else [i % 10 for i in range(n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [b"x.png"] * n,
    }


def _cifar_case(labels) -> Callable[[Path, Base], None]:
    def build(folder: Path, base: Base) -> None:
        root = folder / "cifar" / "cifar-10-batches-py"
        root.mkdir(parents=True)
        for i in range(1, 6):
            (root / f"data_batch_{i}").write_bytes(pickle.dumps(cifar_batch(4, i, labels), protocol=2))
        (root / "test_batch").write_bytes(pickle.dumps(cifar_batch(4, 9), protocol=2))

    return build


def _npz_images(images_fn: Callable[[], dict]) -> Callable[[Path, Base], None]:
    def build(folder: Path, base: Base) -> None:
        import numpy as np

        np.savez(folder / "imgs.npz", **images_fn())

    return build


def _nan_images() -> dict:
    import numpy as np

    images = np.zeros((4, 1, 8, 8), np.float32)
    images[0, 0, 0, 0] = np.nan
    return {"images": images}


def _huge_labels() -> dict:
    import numpy as np

    return {"images": np.zeros((4, 1, 8, 8), np.uint8), "labels": np.asarray([0, 1, 2, 10**12], np.int64)}


def _get_case(name: str) -> Callable[[Path, Base], None]:
    def build(folder: Path, base: Base) -> None:
        import torch

        for kind in ("image", "latent"):
            (folder / "get" / kind).mkdir(parents=True)
            torch.save(torch.zeros(2, 3, 4, 4), folder / "get" / kind / name)

    return build


DATA_TRAIN = ("teacher", "train", *TINY_TEACHER)
DATA = [
    Case(
        "data/folder-zero-byte-png/teacher",
        "data",
        _folder_case(lambda d: (d / "a" / "2.png").write_bytes(b"")),
        (*DATA_TRAIN, "--data", "folder:imgs"),
        ("2.png",),
    ),
    Case(
        "data/folder-text-as-png/teacher",
        "data",
        _folder_case(lambda d: (d / "b" / "notes.png").write_text("these are notes, not pixels\n")),
        (*DATA_TRAIN, "--data", "folder:imgs"),
        ("notes.png",),
    ),
    Case(
        "data/folder-decompression-bomb/teacher",
        "data",
        _folder_case(lambda d: (d / "a" / "bomb.png").write_bytes(bomb_png())),
        (*DATA_TRAIN, "--data", "folder:imgs"),
        ("bomb.png",),
    ),
    Case(
        "data/folder-decompression-bomb/eval",
        "data",
        lambda folder, base: (
            _image_folder(folder, lambda d: (d / "a" / "bomb.png").write_bytes(bomb_png())),
            base.copy(folder, "s.safetensors"),
        ),
        ("eval", "s.safetensors", "--data", "folder:imgs", "-n", "2", "--batch", "2"),
        ("bomb.png",),
    ),
    Case(
        "data/cifar-labels-beyond-classes/teacher",
        "data",
        _cifar_case([10, 11, 42, 99]),
        (*DATA_TRAIN, "--data", "cifar10:cifar"),
        ("data_batch_1", "cifar"),
    ),
    Case(
        "data/cifar-labels-negative/teacher",
        "data",
        _cifar_case([-1, 0, 1, 2]),
        (*DATA_TRAIN, "--data", "cifar10:cifar"),
        ("data_batch_1", "cifar"),
    ),
    Case(
        "data/cifar-labels-bytes/teacher",
        "data",
        _cifar_case([b"cat", b"dog", b"cat", b"dog"]),
        (*DATA_TRAIN, "--data", "cifar10:cifar"),
        ("data_batch_1", "cifar"),
    ),
    Case(
        "data/npz-nan-images/teacher",
        "data",
        _npz_images(_nan_images),
        (*DATA_TRAIN, "--data", "npz:imgs.npz"),
        ("imgs.npz",),
    ),
    Case(
        "data/npz-labels-1e12/teacher",
        "data",
        _npz_images(_huge_labels),
        (*DATA_TRAIN, "--data", "npz:imgs.npz"),
        ("imgs.npz",),
    ),
    Case(
        "data/import-get-non-numeric-name",
        "data",
        _get_case("abc.pkl"),
        ("pairs", "import-get", "get", "-o", "out-pairs"),
        ("abc.pkl",),
    ),
]


#################################################################################
#                                  tegrastats                                   #
#################################################################################


def _tegra(lines: list[str]) -> Callable[[Path, Base], None]:
    def build(folder: Path, base: Base) -> None:
        (folder / "t.log").write_text("\n".join(lines) + "\n")

    return build


DIGITS = "5" * 5000
TEGRASTATS = [
    Case(
        "tegrastats/ram-5000-digits",
        "tegrastats",
        _tegra([TEGRA_LINES[0].replace("RAM 2147/", f"RAM {DIGITS}/")]),
        ("tegrastats", "t.log"),
        ("t.log",),
    ),
    Case(
        "tegrastats/ram-total-5000-digits",
        "tegrastats",
        _tegra([TEGRA_LINES[0].replace("/7620MB", f"/{DIGITS}MB")]),
        ("tegrastats", "t.log", "--json"),
        ("t.log",),
    ),
] + [
    Case(
        f"tegrastats/interval-ms-{label}",
        "tegrastats",
        _tegra(TEGRA_LINES),
        ("tegrastats", "t.log", "--interval-ms", value),
        ("--interval-ms",),
    )
    for label, value in (("negative", "-5"), ("minus-100", "-100"), ("zero", "0"), ("nan", "nan"), ("inf", "inf"))
]


#################################################################################
#                               Calibration .npz                                #
#################################################################################


def _calib(edit: Callable[[dict], None]) -> Callable[[Path, Base], None]:
    def build(folder: Path, base: Base) -> None:
        import numpy as np

        base.copy(folder, "s.onnx")
        with np.load(base.folder / "calib.npz") as npz:
            arrays = {k: npz[k] for k in npz.files}
        edit(arrays)
        np.savez(folder / "c.npz", **arrays)

    return build


def _poke(name: str, value) -> Callable[[dict], None]:
    def edit(arrays: dict) -> None:
        arrays[name] = arrays[name].copy()
        arrays[name].flat[0] = value

    return edit


def zip_bomb(path: Path, rows: int) -> None:
    """An .npz whose z.npy holds rows x 1 x 16 x 16 float32 zeros (rows KiB; y.npy the labels) in
    about a thousandth of that: deflate of a full-flushed 1 MiB block of zeros is the same bytes every
    time, so the stream is one compressed block repeated (fast to make) and the CRC is of zeros."""
    import numpy as np

    header = np.lib.format.header_data_from_array_1_0(np.zeros((0, 1, 16, 16), np.float32))
    header["shape"] = (rows, 1, 16, 16)
    prefix = _npy_header(header)
    chunk, body = 1 << 20, rows * 1024
    assert body % chunk == 0
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = comp.compress(prefix) + comp.flush(zlib.Z_FULL_FLUSH)
    block = comp.compress(b"\x00" * chunk) + comp.flush(zlib.Z_FULL_FLUSH)
    compressed = head + block * (body // chunk) + comp.flush()
    crc, zeros = zlib.crc32(prefix), b"\x00" * chunk
    for _ in range(body // chunk):
        crc = zlib.crc32(zeros, crc)
    size, name = len(prefix) + body, b"z.npy"
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(compressed), size, len(name), 0)
    central = struct.pack(
        "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21, crc, len(compressed), size, len(name), 0, 0, 0, 0, 0, 0
    )
    offset = len(local) + len(name) + len(compressed)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central) + len(name), offset, 0)
    path.write_bytes(local + name + compressed + central + name + end)
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as npz:  # the labels, as many rows (honestly compressed)
        npz.writestr(
            "y.npy", _npy_header(np.lib.format.header_data_from_array_1_0(np.zeros(rows, np.int32))) + bytes(rows * 4)
        )
    with zipfile.ZipFile(path) as check:  # the bomb is a well-formed zip
        assert check.getinfo("z.npy").file_size == size


def _npy_header(header: dict) -> bytes:
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def _zip_bomb_case(folder: Path, base: Base) -> None:
    base.copy(folder, "s.onnx")
    zip_bomb(folder / "c.npz", rows=1 << 20)  # 1 GiB of zeros in about 1 MB


QUANTIZE_CALIB = ("quantize", "s.onnx", "--calib", "c.npz", "--heldout-samples", "1")
CALIBRATION = [
    Case("calibration/nan", "calibration", _calib(_poke("z", math.nan)), QUANTIZE_CALIB, ("c.npz",)),
    Case("calibration/inf", "calibration", _calib(_poke("z", math.inf)), QUANTIZE_CALIB, ("c.npz",)),
    Case("calibration/negative-labels", "calibration", _calib(_poke("y", -1)), QUANTIZE_CALIB, ("c.npz",)),
    Case("calibration/labels-over-classes", "calibration", _calib(_poke("y", 99)), QUANTIZE_CALIB, ("c.npz",)),
    Case("calibration/zip-bomb", "calibration", _zip_bomb_case, QUANTIZE_CALIB, ("c.npz",), timeout=60),
    Case(
        "calibration/zip-bomb/build-engine",
        "calibration",
        _zip_bomb_case,
        ("build-engine", "s.onnx", "--precision", "int8", "--calib", "c.npz", "-o", "s.int8.plan"),
        ("c.npz",),
        timeout=60,
    ),
]


#################################################################################
#                              ONNX header bomb                                 #
#################################################################################

# opset_import {version 18}, then metadata_props {key: a varint field claiming ~3 GB, value: empty}.
VARINT_BOMB = b"\x42\x02\x10\x12\x72\x08\x08\x80\xbc\xc1\x96\x0b\x12\x00"
# The same in the value (field 2) of the entry.
VARINT_BOMB_VALUE = b"\x42\x02\x10\x12\x72\x08\x0a\x00\x10\x80\xbc\xc1\x96\x0b"


def _bytes_file(name: str, data: bytes) -> Callable[[Path, Base], None]:
    return lambda folder, base: (folder / name).write_bytes(data)


HEADER_BOMB = [
    Case(f"header-bomb/varint-key/{command}", "header-bomb", _bytes_file("b.onnx", VARINT_BOMB), argv, ("b.onnx",))
    for command, argv in (
        ("build-engine", ("build-engine", "b.onnx", "--dry-run")),
        ("info", ("info", "b.onnx")),
        ("models", ("models", "b.onnx")),
        ("sample", ("sample", "b.onnx", *SAMPLE_ONE)),
    )
] + [
    Case(
        "header-bomb/varint-value/build-engine",
        "header-bomb",
        _bytes_file("b.onnx", VARINT_BOMB_VALUE),
        ("build-engine", "b.onnx", "--dry-run"),
        ("b.onnx",),
    ),
    Case(
        "header-bomb/length-2e62/build-engine",
        "header-bomb",
        _bytes_file("b.onnx", b"\x42\x02\x10\x12\x72\x80\x80\x80\x80\x80\x80\x80\x80\x40"),
        ("build-engine", "b.onnx", "--dry-run"),
        ("b.onnx",),
    ),
]


#################################################################################
#                                 Absurd arguments                              #
#################################################################################


def _with(*names: str) -> Callable[[Path, Base], None]:
    return lambda folder, base: base.copy(folder, *names)


def _nothing(folder: Path, base: Base) -> None:
    pass


TWO_64 = str(2**64)
TEACHER = ("teacher", "train", "-o", "t.safetensors", "--steps", "1")
DISTILL = ("distill", "-o", "student.safetensors", "--steps", "1", *STUDENT_TRAIN)
ABSURD = [
    # (id, builder, argv, the option that is absurd)
    ("teacher-width-1e6", _nothing, (*TEACHER, "--width", "1000000", "--heads", "8", "--depth", "1"), "--width"),
    ("teacher-depth-1e6", _nothing, (*TEACHER, "--depth", "1000000", "--width", "16", "--heads", "2"), "--depth"),
    ("teacher-batch-1e9", _nothing, (*TEACHER, *TEACHER_TRAIN[:6], "--batch", "1000000000"), "--batch"),
    ("teacher-seed-2e64", _nothing, (*TEACHER, *TEACHER_TRAIN, "--seed", TWO_64), "--seed"),
    ("teacher-lr-negative", _nothing, (*TEACHER, *TEACHER_TRAIN, "--lr", "-0.001"), "--lr"),
    ("teacher-lr-zero", _nothing, (*TEACHER, *TEACHER_TRAIN, "--lr", "0"), "--lr"),
    ("teacher-lr-nan", _nothing, (*TEACHER, *TEACHER_TRAIN, "--lr", "nan"), "--lr"),
    ("teacher-ema-nan", _nothing, (*TEACHER, *TEACHER_TRAIN, "--ema", "nan"), "--ema"),
    ("teacher-width-below-min", _nothing, (*TEACHER, "--width", "2"), "--width"),
    ("distill-lr-negative", _with("hpairs"), (*DISTILL, "--lr", "-1"), "--lr"),
    ("distill-seed-2e64", _with("hpairs"), (*DISTILL, "--seed", TWO_64), "--seed"),
    (
        "export-dynamic-batch-1e8",
        _with("s.safetensors"),
        ("export", "s.safetensors", "-o", "out.onnx", "--dynamic-batch", "1:1:100000000"),
        "--dynamic-batch",
    ),
    ("sample-seed-2e64", _with("s.onnx"), ("sample", "s.onnx", *SAMPLE_ONE, "--seed", TWO_64), "--seed"),
    ("sample-n-1e9", _with("s.onnx"), ("sample", "s.onnx", "-n", "1000000000", "--batch", "4"), "-n"),
    (
        "sample-steps-1e9",
        _with("teacher.onnx"),
        ("sample", "teacher.onnx", *SAMPLE_ONE, "--steps", "1000000000"),
        "--steps",
    ),
    ("calib-data-n-1e9", _with("s.onnx"), ("calib-data", "s.onnx", "-n", "1000000000", "-o", "c.npz"), "-n"),
    (
        "calib-data-seed-2e64",
        _with("s.onnx"),
        ("calib-data", "s.onnx", "-n", "1", "--seed", TWO_64, "-o", "c.npz"),
        "--seed",
    ),
    (
        "pairs-first-seed-2e64",
        _with("teacher.safetensors"),
        (
            "pairs",
            "generate",
            "teacher.safetensors",
            "-n",
            "2",
            "-o",
            "newpairs",
            "--steps",
            "2",
            "--first-seed",
            TWO_64,
        ),
        "--first-seed",
    ),
    ("bench-duration-nan", _with("s.onnx"), ("bench", "s.onnx", "--duration", "nan"), "--duration"),
    ("bench-duration-negative", _with("s.onnx"), ("bench", "s.onnx", "--duration", "-1"), "--duration"),
    ("bench-duration-inf", _with("s.onnx"), ("bench", "s.onnx", "--duration", "inf"), "--duration"),
    (
        "quantize-min-psnr-nan",
        _with("s.onnx"),
        ("quantize", "s.onnx", "--calib-samples", "1", "--heldout-samples", "1", "--min-psnr", "nan"),
        "--min-psnr",
    ),
    ("models-depth-1e9", _nothing, ("models", "DiT-Nano-S/2", "--depth", "1000000000"), "--depth"),
    ("eval-n-1e9", _with("s.safetensors"), ("eval", "s.safetensors", "-n", "1000000000", "--batch", "2"), "-n"),
    (
        "design-budget-inf",
        _with("hpairs"),
        ("design", "sweep", "--pairs", "hpairs", "--budget", "inf", "--steps", "1", "-o", "sweep"),
        "--budget",
    ),
    (
        "design-budget-negative",
        _with("hpairs"),
        ("design", "sweep", "--pairs", "hpairs", "--budget", "-5k", "--steps", "1", "-o", "sweep"),
        "--budget",
    ),
]


ALIASES = {"-n": ("--num", "--samples")}  # an error line names an option by its long name


def absurd_cases() -> list[Case]:
    cases = []
    for name, build, argv, option in ABSURD:
        value = argv[len(argv) - 1 - argv[::-1].index(option) + 1] if option in argv else ""
        bare = option.lstrip("-")
        names = (
            option,
            *ALIASES.get(option, ()),
            *((bare,) if len(bare) >= 4 else ()),
            *((value,) if len(value) > 3 else ()),
        )
        cases.append(Case(f"absurd-args/{name}", "absurd-args", build, argv, names, timeout=60))
    return cases


#################################################################################
#                               Output over an input                            #
#################################################################################


def _npz_file(folder: Path, base: Base) -> None:
    import numpy as np

    np.savez(folder / "c.npz", z=np.zeros((2, 1, 16, 16), np.float32))


def _also(*builders: Callable[[Path, Base], None]) -> Callable[[Path, Base], None]:
    def build(folder: Path, base: Base) -> None:
        for builder in builders:
            builder(folder, base)

    return build


OUTPUT = [
    (
        "export-over-its-checkpoint",
        ("s.safetensors",),
        ("export", "s.safetensors", "-o", "s.safetensors"),
        "s.safetensors",
    ),
    (
        "export-onnx-over-another-checkpoint",
        ("s.safetensors", "teacher.safetensors"),
        ("export", "s.safetensors", "-o", "teacher.safetensors"),
        "teacher.safetensors",
    ),
    ("quantize-over-its-onnx", ("s.onnx",), ("quantize", "s.onnx", "-o", "s.onnx"), "s.onnx"),
    (
        "quantize-over-a-checkpoint",
        ("s.onnx", "s.safetensors"),
        ("quantize", "s.onnx", "-o", "s.safetensors", "--calib-samples", "1", "--heldout-samples", "1"),
        "s.safetensors",
    ),
    ("calib-data-over-its-onnx", ("s.onnx",), ("calib-data", "s.onnx", "-n", "1", "-o", "s.onnx"), "s.onnx"),
    (
        "calib-data-over-a-checkpoint",
        ("s.onnx", "s.safetensors"),
        ("calib-data", "s.onnx", "-n", "1", "-o", "s.safetensors"),
        "s.safetensors",
    ),
    (
        "sample-npz-over-a-checkpoint",
        ("s.onnx", "s.safetensors"),
        ("sample", "s.onnx", *SAMPLE_ONE, "--npz", "s.safetensors"),
        "s.safetensors",
    ),
    ("sample-grid-over-its-onnx", ("s.onnx",), ("sample", "s.onnx", *SAMPLE_ONE, "-o", "s.onnx"), "s.onnx"),
    (
        "sample-grid-over-a-checkpoint",
        ("s.onnx", "s.safetensors"),
        ("sample", "s.onnx", *SAMPLE_ONE, "-o", "s.safetensors"),
        "s.safetensors",
    ),
    (
        "bench-json-over-its-onnx",
        ("s.onnx",),
        ("bench", "s.onnx", "--iters", "1", "--warmup", "0", "--json", "s.onnx"),
        "s.onnx",
    ),
    (
        "bench-csv-over-a-checkpoint",
        ("s.onnx", "s.safetensors"),
        ("bench", "s.onnx", "--iters", "1", "--warmup", "0", "--csv", "s.safetensors"),
        "s.safetensors",
    ),
    (
        "bench-report-over-a-checkpoint",
        ("bench.json", "s.safetensors"),
        ("bench", "report", "bench.json", "-o", "s.safetensors"),
        "s.safetensors",
    ),
    (
        "bench-report-csv-over-its-input",
        ("bench.json",),
        ("bench", "report", "bench.json", "--csv", "bench.json"),
        "bench.json",
    ),
    (
        "distill-over-the-teacher",
        ("hpairs", "teacher.safetensors"),
        ("distill", "-o", "teacher.safetensors", "--steps", "1", *STUDENT_TRAIN),
        "teacher.safetensors",
    ),
    ("teacher-over-an-npz", (), ("teacher", "train", "-o", "c.npz", "--steps", "1", *TEACHER_TRAIN), "c.npz"),
    (
        "pairs-folder-over-a-checkpoint",
        ("teacher.safetensors",),
        ("pairs", "generate", "teacher.safetensors", "-n", "2", "-o", "teacher.safetensors", "--steps", "2"),
        "teacher.safetensors",
    ),
]


def output_cases() -> list[Case]:
    cases = []
    for name, files, argv, target in OUTPUT:
        build = _also(_with(*files), _npz_file) if target == "c.npz" else _with(*files)
        timeout = 90 if argv[0] in ("export", "quantize", "distill", "teacher") else None
        cases.append(Case(f"output-over-input/{name}", "output-over-input", build, argv, (target,), timeout=timeout))
    return cases


#################################################################################
#             The last mile (issue 22): the sweep's remaining findings           #
#################################################################################


def _onnx_weight_bit_flip(folder: Path, base: Base) -> None:
    """One flipped bit in the largest weight of s.onnx: the output would move by ~1e-8, unnoticed."""
    import onnx

    model = onnx.load(base.folder / "s.onnx")
    weight = max(model.graph.initializer, key=lambda t: len(t.raw_data))
    data = bytearray(weight.raw_data)
    data[len(data) // 2] ^= 1
    weight.raw_data = bytes(data)
    onnx.save(model, folder / "m.onnx")


def _fifo(folder: Path, base: Base) -> None:
    import os

    os.mkfifo(folder / "m.onnx")


def _directory(folder: Path, base: Base) -> None:
    (folder / "m.onnx").mkdir()


def _symlink_loop(folder: Path, base: Base) -> None:
    (folder / "m.onnx").symlink_to("loop.onnx")
    (folder / "loop.onnx").symlink_to("m.onnx")


def _huge_calibration(folder: Path, base: Base) -> None:
    import numpy as np

    base.copy(folder, "s.onnx")
    np.savez(folder / "c.npz", z=np.full((2, 1, 16, 16), 3e38, np.float32), y=np.zeros(2, np.int32))


def _calibration_npz(folder: Path, base: Base) -> None:
    base.copy(folder, "s.onnx")
    _npz_file(folder, base)


def _poisoned_pt(name: str) -> Callable[[Path, Base], None]:
    def build(folder: Path, base: Base) -> None:
        import torch

        torch.save({"w": torch.zeros(2), "x": _Pwn()}, folder / name)

    return build


def _poisoned_get(folder: Path, base: Base) -> None:
    """GET's layout (image/*.pkl, latent/*.pkl) holding plain pickles that would run code."""
    import pickle

    for part in ("image", "latent"):
        (folder / "get" / part).mkdir(parents=True)
        (folder / "get" / part / "0.pkl").write_bytes(pickle.dumps(_Pwn(), protocol=4))


def _timing_cache_over_calibration(folder: Path, base: Base) -> None:
    base.copy(folder, "s.onnx")
    _npz_file(folder, base)


class _Pwn:
    def __reduce__(self):
        return (open, ("PWNED-by-pickle", "w"))


LONG_NAME = "a" * 300 + ".png"
LAST_MILE = [
    Case(
        "last-mile/preset-as-teacher",
        "last-mile",
        _nothing,
        ("pairs", "generate", "DiT-Teacher-Digits/2", "-n", "4", "--steps", "2", "-o", "newpairs"),
        ("is a preset",),
    ),
    Case(
        "last-mile/bench-threads-1e5",
        "last-mile",
        _with("s.onnx"),
        ("bench", "s.onnx", "--threads", "100000"),
        ("--threads",),
        timeout=60,
    ),
    Case(
        "last-mile/calibration-3e38",
        "last-mile",
        _huge_calibration,
        ("quantize", "s.onnx", "--calib", "c.npz", "--heldout-samples", "1"),
        ("c.npz",),
    ),
    Case(
        "last-mile/classes-claimed-1000",
        "last-mile",
        _onnx_case("s.onnx", _set("config", "num_classes", 1000)),
        ("sample", "m.onnx", *SAMPLE_ONE, "--class-label", "500"),
        ("m.onnx",),
    ),
    Case(
        "last-mile/output-name-too-long",
        "last-mile",
        _with("s.onnx"),
        ("sample", "s.onnx", *SAMPLE_ONE, "-o", LONG_NAME),
        ("file name too long",),
    ),
    Case(
        "last-mile/sample-npz-over-calibration",
        "last-mile",
        _calibration_npz,
        ("sample", "s.onnx", *SAMPLE_ONE, "--npz", "c.npz"),
        ("--npz",),
    ),
    Case(
        "last-mile/convert-dit-poisoned-pickle",
        "last-mile",
        _poisoned_pt("DiT-XL-2-256x256.pt"),
        ("convert-dit", "DiT-XL-2-256x256.pt", "-o", "dit.safetensors"),
        ("refused pickle global",),
    ),
    Case(
        "last-mile/import-get-plain-pickles",
        "last-mile",
        _poisoned_get,
        ("pairs", "import-get", "get", "-o", "got"),
        ("refused pickle global",),
    ),
    Case(
        "last-mile/timing-cache-over-calibration",
        "last-mile",
        _timing_cache_over_calibration,
        ("build-engine", "s.onnx", "--timing-cache", "c.npz", "-o", "s.plan"),
        ("--timing-cache",),
    ),
    Case(
        "last-mile/workspace-1e9-mb",
        "last-mile",
        _with("s.onnx"),
        ("build-engine", "s.onnx", "--workspace-mb", "1000000000", "--dry-run"),
        ("--workspace-mb",),
    ),
    Case(
        "last-mile/bench-batch-list-100",
        "last-mile",
        _with("s.onnx"),
        ("bench", "s.onnx", "--batch", ",".join(str(b) for b in range(1, 101))),
        ("--batch",),
    ),
    *[
        Case(f"last-mile/{what}/{command}", "last-mile", build, ONNX_COMMANDS[command]("m.onnx"), (words,))
        for what, build, words in (
            ("fifo", _fifo, "is a FIFO"),
            ("directory", _directory, "is a directory"),
            ("symlink-loop", _symlink_loop, "symlink loop"),
            ("onnx-weight-bit-flip", _onnx_weight_bit_flip, "content hash"),
        )
        for command in ("info", "sample", "bench", "build-engine")
    ],
    *[
        Case(
            f"last-mile/dev-zero/{command}",
            "last-mile",
            _nothing,
            ONNX_COMMANDS[command]("/dev/zero"),
            ("is a device",),
        )
        for command in ("sample", "info")
    ],
]


#################################################################################
#                                   All cases                                   #
#################################################################################


def all_cases() -> list[Case]:
    cases = [
        *metadata_cases(),
        *checkpoint_cases(),
        *train_state_cases(),
        *sidecar_cases(),
        *pairs_cases(),
        *DATA,
        *TEGRASTATS,
        *CALIBRATION,
        *HEADER_BOMB,
        *absurd_cases(),
        *output_cases(),
        *LAST_MILE,
    ]
    ids = [c.id for c in cases]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicated, f"duplicate case ids: {duplicated}"
    assert {c.cls for c in cases} == set(CLASSES), "every class has cases"
    return cases


CASES = all_cases()
