import onnx
import pytest

from edgedit.contract.errors import EdgeditError
from edgedit.contract.onnx_header import read_onnx_header


@pytest.mark.parametrize("name", ["onestep-uncond", "onestep-cond", "edm-cond"])
def test_reads_what_onnx_reads(exported, name):
    path = exported[name][0]
    model = onnx.load(path)
    metadata, opsets = read_onnx_header(path)
    assert metadata == {p.key: p.value for p in model.metadata_props}
    assert opsets == {o.domain or "ai.onnx": o.version for o in model.opset_import}


def test_external_data_models_and_garbage(tmp_path, exported):
    model = onnx.load(exported["onestep-cond"][0])
    onnx.save_model(model, tmp_path / "big.onnx", save_as_external_data=True, location="big.onnx.data",
                    size_threshold=0)
    metadata, _ = read_onnx_header(tmp_path / "big.onnx")
    assert metadata["edgedit.format"] == "edgedit.onnx/1"
    (tmp_path / "junk.onnx").write_bytes(b"\xff" * 64)
    with pytest.raises(EdgeditError, match="not a readable ONNX model"):
        read_onnx_header(tmp_path / "junk.onnx")
    (tmp_path / "text.onnx").write_text("hello world")
    with pytest.raises(EdgeditError, match="junk|not"):
        read_onnx_header(tmp_path / "text.onnx")
    with pytest.raises(EdgeditError, match="no such file"):
        read_onnx_header(tmp_path / "missing.onnx")
