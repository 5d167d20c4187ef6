import random

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
    onnx.save_model(
        model, tmp_path / "big.onnx", save_as_external_data=True, location="big.onnx.data", size_threshold=0
    )
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


def test_a_length_in_the_wrong_wire_type_is_malformed_not_a_3_gb_allocation(tmp_path):
    """A 14-byte file whose metadata key is a varint of 3e9: it once went straight into bytes(n)."""
    bomb = tmp_path / "b.onnx"
    bomb.write_bytes(b"\x42\x02\x10\x12\x72\x08\x08\x80\xbc\xc1\x96\x0b\x12\x00")
    with pytest.raises(EdgeditError, match="b.onnx: not a readable ONNX model"):
        read_onnx_header(bomb)


def test_an_oversized_metadata_entry_is_refused_before_it_is_read(tmp_path):
    huge = tmp_path / "h.onnx"
    huge.write_bytes(b"\x42\x02\x10\x12" + b"\x72\x80\x80\x80\x10" + b"\x00" * 64)  # declares 32 MiB
    with pytest.raises(EdgeditError, match="h.onnx: not a readable ONNX model"):
        read_onnx_header(huge)


def test_random_bytes_are_refused_in_one_line(tmp_path):
    rng = random.Random(0)
    path = tmp_path / "fuzz.onnx"
    for _ in range(300):
        path.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))))
        try:
            read_onnx_header(path)
        except EdgeditError as err:
            assert "\n" not in str(err)


@pytest.mark.parametrize("name", ["onestep-uncond", "onestep-cond", "edm-cond"])
def test_the_graph_reads_as_onnx_reads_it(exported, name):
    from edgedit.contract.onnx_header import read_onnx_graph

    path = exported[name][0]
    model, graph = onnx.load(path), read_onnx_graph(path)
    assert [(n.op_type, n.name, tuple(n.input)) for n in model.graph.node] == [
        (n.op_type, n.name, n.inputs) for n in graph.nodes
    ]
    assert {t.name: (t.data_type, tuple(t.dims)) for t in model.graph.initializer} == {
        w.name: (w.data_type, w.dims) for w in graph.weights.values()
    }
    dims = lambda v: tuple(d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim)  # noqa: E731
    assert [(v.name, v.type.tensor_type.elem_type, dims(v)) for v in model.graph.output] == [
        (v.name, v.elem_type, v.dims) for v in graph.outputs
    ]
    assert graph.producer == f"{model.producer_name} {model.producer_version}".strip()


def test_the_weights_hash_covers_the_weights_not_the_metadata_or_the_layout(exported, tmp_path):
    """A bit flip in any weight changes it; new metadata or weights moved to an external file do not."""
    from edgedit.contract.onnx_header import read_onnx_graph, weights_sha256

    path = exported["onestep-cond"][0]
    reference = weights_sha256(read_onnx_graph(path))
    model = onnx.load(path)
    entry = model.metadata_props.add()
    entry.key, entry.value = "note", "anything"
    onnx.save_model(model, tmp_path / "meta.onnx")
    onnx.save_model(
        model, tmp_path / "ext.onnx", save_as_external_data=True, location="ext.onnx.data", size_threshold=0
    )
    assert weights_sha256(read_onnx_graph(tmp_path / "meta.onnx")) == reference
    assert weights_sha256(read_onnx_graph(tmp_path / "ext.onnx")) == reference
    model = onnx.load(path)  # saving with external data moved the weights out of the one in memory
    for weight in model.graph.initializer:
        if len(weight.raw_data) > 16:
            data = bytearray(weight.raw_data)
            data[7] ^= 0x10
            weight.raw_data = bytes(data)
            break
    onnx.save_model(model, tmp_path / "flip.onnx")
    assert weights_sha256(read_onnx_graph(tmp_path / "flip.onnx")) != reference
    (tmp_path / "ext.onnx.data").write_bytes((tmp_path / "ext.onnx.data").read_bytes()[:-8])  # truncated
    with pytest.raises(EdgeditError, match="ends past the end of ext.onnx.data"):
        weights_sha256(read_onnx_graph(tmp_path / "ext.onnx"))


def test_external_data_outside_the_models_folder_is_refused(exported, tmp_path):
    from edgedit.contract.onnx_header import read_onnx_graph

    model = onnx.load(exported["onestep-cond"][0])
    onnx.save_model(model, tmp_path / "e.onnx", save_as_external_data=True, location="e.onnx.data", size_threshold=0)
    raw = (tmp_path / "e.onnx").read_bytes().replace(b"e.onnx.data", b"../../etc/x")
    (tmp_path / "evil.onnx").write_bytes(raw)
    with pytest.raises(EdgeditError, match="outside the model's folder"):
        read_onnx_graph(tmp_path / "evil.onnx")
