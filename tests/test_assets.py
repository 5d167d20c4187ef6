import numpy as np

from edgedit.assets import STUDENT_DIGITS, TEACHER_DIGITS
from edgedit.contract.config import get_preset
from edgedit.contract.fileio import sha256_file
from edgedit.eval.digits_classifier import embed
from edgedit.eval.evaluate import evaluate
from edgedit.export.exporter import BatchSpec, export_onnx
from edgedit.models.checkpoint import load_model, read_checkpoint
from edgedit.runtime.backends import load_backend
from edgedit.runtime.samplers import default_labels, generate


def test_the_shipped_digits_teacher_is_the_documented_model():
    info = read_checkpoint(TEACHER_DIGITS)  # validates every tensor against the config
    assert info.config == get_preset("DiT-Teacher-Digits/2").config
    assert info.num_params == 5_507_908 and {dtype for dtype, _ in info.tensors.values()} == {"F16"}
    assert info.provenance["steps"] == 1800 and info.provenance["data"] == "digits"
    # its evaluation by `edgedit eval --save`, on the seeds the shipped student's evaluation uses (the demo
    # compares the two records)
    student = read_checkpoint(STUDENT_DIGITS).provenance
    assert info.provenance["eval"]["FID"] > 0 and info.provenance["eval_seeds"] == student["eval_seeds"]
    assert info.provenance["eval_sampling"].startswith("EDM heun, 18 steps")


def test_the_shipped_digits_student_is_a_small_one_step_model_of_that_teacher(tmp_path):
    teacher, student = read_checkpoint(TEACHER_DIGITS), read_checkpoint(STUDENT_DIGITS)
    assert student.config.diffusion == "one-step" and student.num_params <= 0.1 * teacher.num_params
    assert (student.config.input_size, student.config.in_channels) == (
        teacher.config.input_size,
        teacher.config.in_channels,
    )
    # distilled from pairs of this teacher: its tensors where the teacher file was re-saved since, else the file
    record = student.provenance["teacher"]
    if "tensors_sha256" in record:
        assert record["tensors_sha256"] == teacher.metadata["edgedit.tensors_sha256"]
    else:
        assert record["sha256"] == sha256_file(TEACHER_DIGITS)
    assert record["config"] == teacher.config.to_dict()


def test_the_shipped_student_scores_what_its_provenance_claims():
    """The README's FID is the file's own `edgedit eval --save` record: re-measured, it must agree."""
    claimed = read_checkpoint(STUDENT_DIGITS).provenance
    first, last = claimed["eval_seeds"]
    assert claimed["eval_samples"] == last - first + 1 == 1000
    report = evaluate(STUDENT_DIGITS, "digits", n=1000, seed=first)
    assert report.noise == claimed["eval_noise"]
    measured = {m.metric: m.value for m in report.metrics}
    # The claim is recorded to 6 significant digits (FID ~86: 5e-5). Kernel paths move the float32 images by
    # ~4e-6 and FID by ~1e-5, KID (~1e-3) by ~1e-9. Label agreement is a count out of 1000: < 1e-3 is the same
    # count (the closest call has top-2 probabilities 1.2e-2 apart; kernel paths move probabilities by ~5e-6).
    for metric, tolerance in (("FID", 1e-3), ("KID", 1e-4), ("label agreement", 1e-3)):
        assert abs(measured[metric] - claimed["eval"][metric]) < tolerance, metric


def test_the_shipped_student_makes_the_digits_it_is_asked_for_in_torch_and_onnx_alike(tmp_path):
    torch_backend = load_backend(STUDENT_DIGITS)
    net, _ = load_model(STUDENT_DIGITS)
    onnx = export_onnx(net, tmp_path / "student.onnx", {"checkpoint": STUDENT_DIGITS.name}, BatchSpec.static(10)).path
    seeds = list(range(100))
    images = generate(torch_backend, seeds, batch=10)
    exported = generate(load_backend(onnx), seeds, batch=10)
    # the same images through ONNX Runtime: float32, 2.3e-6 measured on |image| < 1.2; 1e-4 = export parity bound
    assert np.abs(images - exported).max() < 1e-4
    _, probs = embed(images)
    agreement = float((probs.argmax(1) == default_labels(seeds, 10)).mean())
    # The classifier reads the asked-for digit about as often as the sweep measured on 1000 samples.
    assert agreement >= read_checkpoint(STUDENT_DIGITS).provenance["eval"]["label agreement"] - 0.15
