from edgedit.assets import TEACHER_DIGITS
from edgedit.checkpoint import read_checkpoint
from edgedit.config import get_preset


def test_the_shipped_digits_teacher_is_the_documented_model():
    info = read_checkpoint(TEACHER_DIGITS)  # validates every tensor against the config
    assert info.config == get_preset("DiT-Teacher-Digits/2").config
    assert info.num_params == 5_507_908 and {dtype for dtype, _ in info.tensors.values()} == {"F16"}
    assert info.provenance["steps"] == 1800 and info.provenance["data"] == "digits"
    assert info.provenance["eval_18_step_heun_1000_samples"]["FID"] > 0
