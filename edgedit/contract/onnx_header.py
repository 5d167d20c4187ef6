"""Read an ONNX file without the onnx package: its metadata_props and opsets (`read_onnx_header`),
and the skeleton of its graph (`read_onnx_graph`: nodes, inputs and outputs, and where each weight's
bytes lie), from which the weights' content hash is computed (`weights_sha256`). Torch-free, onnx-free.

The device side must not import onnx (design: it never does), yet `build-engine` needs the
`edgedit.*` metadata of the file it builds, and every reader checks the metadata against the graph
and the weights against their recorded hash. Messages are read with the protobuf wire format
(https://protobuf.dev/programming-guides/encoding/); weight bytes are never held in memory, only
located and, for the hash, streamed. Fields (onnx.proto, https://github.com/onnx/onnx/blob/main/onnx/onnx.proto):
ModelProto 7 graph, 8 opset_import {1 domain, 2 version}, 14 metadata_props {1 key, 2 value};
GraphProto 1 node {1 input, 2 output, 3 name, 4 op_type, 7 domain}, 5 initializer, 11 input,
12 output; TensorProto 1 dims, 2 data_type, 4-7 and 9-11 data, 8 name, 13 external_data, 14
data_location; ValueInfoProto 1 name, 2 type {1 tensor_type {1 elem_type, 2 shape {1 dim {1 value,
2 param}}}}.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from edgedit.contract.errors import EdgeditError
from edgedit.contract.fileio import regular_file

GRAPH, OPSET_IMPORT, METADATA_PROPS = 7, 8, 14
VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5
MAX_ENTRY_BYTES = 16 << 20  # one metadata entry or opset record; edgedit's are a few kB


def _varint(read) -> int | None:
    result, shift = 0, 0
    while True:
        byte = read(1)
        if not byte:
            return None if shift == 0 else _corrupt()
        result |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return result
        shift += 7
        if shift > 63:
            _corrupt()


def _corrupt():
    raise ValueError("malformed protobuf")


def _fields(data: bytes) -> list[tuple[int, int, bytes | int]]:
    """(field number, wire type, value) of a small embedded message."""
    stream, out = io.BytesIO(data), []
    read = stream.read
    while stream.tell() < len(data):
        key = _varint(read)
        number, wire = key >> 3, key & 7
        if wire == VARINT:
            out.append((number, wire, _varint(read)))
        elif wire == LENGTH:
            size = _varint(read)
            out.append((number, wire, read(size)))
        elif wire in (FIXED64, FIXED32):
            read(8 if wire == FIXED64 else 4)
        else:
            _corrupt()
    return out


def _string(fields: dict[int, tuple[int, bytes | int]], number: int) -> str:
    """A string field: length-delimited on the wire (any other wire type is a malformed file)."""
    wire, value = fields.get(number, (LENGTH, b""))
    if wire != LENGTH or not isinstance(value, bytes):
        _corrupt()
    return value.decode()


def _top_level(f: BinaryIO, size: int, wanted: set[int]):
    """Yield (field, bytes) for the wanted length-delimited top-level fields; seek over the rest."""
    while f.tell() < size:
        key = _varint(f.read)
        if key is None:
            return
        number, wire = key >> 3, key & 7
        if wire == VARINT:
            _varint(f.read)
        elif wire == LENGTH:
            length = _varint(f.read)
            if length is None or f.tell() + length > size:
                _corrupt()
            if number in wanted:
                if length > MAX_ENTRY_BYTES:
                    raise ValueError(f"a field {number} record of {length} bytes (at most {MAX_ENTRY_BYTES})")
                yield number, f.read(length)
            else:
                f.seek(length, os.SEEK_CUR)
        elif wire in (FIXED64, FIXED32):
            f.seek(8 if wire == FIXED64 else 4, os.SEEK_CUR)
        else:
            _corrupt()


def read_onnx_header(path: str | os.PathLike) -> tuple[dict[str, str], dict[str, int]]:
    """(metadata_props, {opset domain: version}) of an ONNX file; one-line errors otherwise."""
    metadata: dict[str, str] = {}
    opsets: dict[str, int] = {}
    regular_file(path)
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            for number, payload in _top_level(f, size, {OPSET_IMPORT, METADATA_PROPS}):
                fields = {n: (wire, v) for n, wire, v in _fields(payload)}
                if number == METADATA_PROPS:  # {1 key, 2 value}: both strings
                    metadata[_string(fields, 1)] = _string(fields, 2)
                else:  # {1 domain string, 2 version int64}
                    wire, version = fields.get(2, (VARINT, 0))
                    if wire != VARINT:
                        _corrupt()
                    opsets[_string(fields, 1) or "ai.onnx"] = int(version)
    except FileNotFoundError:
        raise EdgeditError(f"{path}: no such file") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise EdgeditError(f"{path}: not a readable ONNX model ({err})") from err
    if not opsets:
        raise EdgeditError(f"{path}: not an ONNX model (no opset_import)")
    return metadata, opsets


#################################################################################
#                          The graph, without onnx                              #
#################################################################################

MAX_NODES = 1_000_000  # edgedit's largest export (DiT-XL/2) has about 3,000
TENSOR_DATA_FIELDS = (4, 5, 6, 7, 9, 10, 11)  # float, int32, string, int64, raw, double, uint64 data


@dataclass(frozen=True)
class Weight:
    """An initializer, its bytes located, not read: spans of this file, or external data."""

    name: str
    data_type: int
    dims: tuple[int, ...]
    spans: tuple[tuple[int, int], ...]  # (offset, length) of its data fields in the .onnx
    external: tuple[str, int, int | None] | None = None  # (location, offset, length) in a data file


@dataclass(frozen=True)
class Value:
    """A graph input or output: name, ONNX element type, dims (an int, or a symbol like "N")."""

    name: str
    elem_type: int
    dims: tuple[int | str, ...]


@dataclass(frozen=True)
class Node:
    op_type: str
    name: str
    inputs: tuple[str, ...]
    domain: str = ""


@dataclass
class OnnxGraph:
    path: Path
    metadata: dict[str, str]
    opsets: dict[str, int]
    nodes: list[Node] = field(default_factory=list)
    weights: dict[str, Weight] = field(default_factory=dict)
    inputs: list[Value] = field(default_factory=list)  # graph inputs that are not weights
    outputs: list[Value] = field(default_factory=list)
    producer: str = ""  # "NAME VERSION" of the tool that wrote it


def _entries(f: BinaryIO, end: int):
    """(field, wire type, value) of the message ending at `end`: varints as ints, length-delimited
    fields as (offset, length), seeking past each once the caller is done with it."""
    while f.tell() < end:
        key = _varint(f.read)
        if key is None:
            _corrupt()
        number, wire = key >> 3, key & 7
        if wire == VARINT:
            yield number, wire, _varint(f.read)
        elif wire == LENGTH:
            length, start = _varint(f.read), f.tell()
            if length is None or start + length > end:
                _corrupt()
            yield number, wire, (start, length)
            f.seek(start + length)
        elif wire in (FIXED64, FIXED32):
            f.seek(8 if wire == FIXED64 else 4, os.SEEK_CUR)
        else:
            _corrupt()
    if f.tell() != end:
        _corrupt()


def _read(f: BinaryIO, span: tuple[int, int]) -> bytes:
    offset, length = span
    if length > MAX_ENTRY_BYTES:
        raise ValueError(f"a record of {length} bytes (at most {MAX_ENTRY_BYTES})")
    f.seek(offset)
    return f.read(length)


def _packed_varints(data: bytes) -> list[int]:
    stream, out = io.BytesIO(data), []
    while stream.tell() < len(data):
        out.append(_varint(stream.read))
    return out


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value  # int64 on the wire


def _weight(f: BinaryIO, start: int, end: int) -> Weight:
    dims: list[int] = []
    data_type, name, spans, external, location = 0, "", [], {}, 0
    f.seek(start)
    for number, wire, value in _entries(f, end):
        if number == 1:
            dims += [value] if wire == VARINT else _packed_varints(_read(f, value))
        elif number == 2 and wire == VARINT:
            data_type = value
        elif number == 8 and wire == LENGTH:
            name = _read(f, value).decode()
        elif number in TENSOR_DATA_FIELDS and wire == LENGTH:
            spans.append(value)
        elif number in TENSOR_DATA_FIELDS:  # unpacked repeated numbers: not what onnx writes
            _corrupt()
        elif number == 13 and wire == LENGTH:
            entry = {n: v for n, _, v in _fields(_read(f, value))}
            external[entry.get(1, b"").decode()] = entry.get(2, b"").decode()
        elif number == 14 and wire == VARINT:
            location = value
    if any(d < 0 or d >= 1 << 62 for d in dims):
        _corrupt()
    ext = None
    if location == 1:  # EXTERNAL: {location, offset, length}
        where = external.get("location", "")
        if not where or os.path.isabs(where) or ".." in Path(where).parts:
            raise ValueError(f"weight {name!r} names external data {where!r} outside the model's folder")
        ext = (where, int(external.get("offset", 0) or 0), int(external["length"]) if external.get("length") else None)
    return Weight(name, data_type, tuple(dims), tuple(spans), ext)


def _value(data: bytes) -> Value:
    fields = {n: v for n, _, v in _fields(data)}
    elem_type, dims = 0, []
    tensor = {n: v for n, _, v in _fields(fields.get(2, b""))}.get(1, b"")
    for number, _, value in _fields(tensor):
        if number == 1:
            elem_type = value
        elif number == 2:
            for _, _, dim in (f for f in _fields(value) if f[0] == 1):
                d = {n: v for n, _, v in _fields(dim)}
                dims.append(_signed(d[1]) if 1 in d else d.get(2, b"?").decode())
    return Value(fields.get(1, b"").decode(), elem_type, tuple(dims))


def _node(data: bytes) -> Node:
    inputs, name, op_type, domain = [], "", "", ""
    for number, wire, value in _fields(data):
        if wire != LENGTH:
            continue
        if number == 1:
            inputs.append(value.decode())
        elif number == 3:
            name = value.decode()
        elif number == 4:
            op_type = value.decode()
        elif number == 7:
            domain = value.decode()
    return Node(op_type, name, tuple(inputs), domain)


def read_onnx_graph(path: str | os.PathLike) -> OnnxGraph:
    """The header and the graph's skeleton; one-line errors for anything that is not an ONNX model."""
    metadata, opsets = read_onnx_header(path)
    path = Path(path)
    graph = OnnxGraph(path, metadata, opsets)
    inputs: list[Value] = []
    try:
        with open(path, "rb") as f:
            size = os.path.getsize(path)
            for number, wire, value in _entries(f, size):
                if number in (2, 3) and wire == LENGTH:  # producer_name, producer_version
                    graph.producer = f"{graph.producer} {_read(f, value).decode()}".strip()
                if number != GRAPH or wire != LENGTH:
                    continue
                start, length = value
                for item, kind, span in _entries(f, start + length):
                    if kind != LENGTH:
                        continue
                    if item == 1:
                        if len(graph.nodes) >= MAX_NODES:
                            raise ValueError(f"more than {MAX_NODES} nodes")
                        graph.nodes.append(_node(_read(f, span)))
                    elif item == 5:
                        here = f.tell()
                        weight = _weight(f, span[0], span[0] + span[1])
                        graph.weights[weight.name] = weight
                        f.seek(here)
                    elif item in (11, 12):
                        (inputs if item == 11 else graph.outputs).append(_value(_read(f, span)))
    except (ValueError, UnicodeDecodeError, KeyError) as err:
        raise EdgeditError(f"{path}: not a readable ONNX model ({err})") from err
    if not graph.nodes:
        raise EdgeditError(f"{path}: not an ONNX model (no graph nodes)")
    graph.inputs = [v for v in inputs if v.name not in graph.weights]
    return graph


def weights_sha256(graph: OnnxGraph, chunk: int = 1 << 20) -> str:
    """sha256 over every weight (name, type, dims, then its data bytes), in name order: what a bit flip
    in a weight changes, and nothing the metadata holds, so the hash can be written into the metadata.
    External data is read from its file beside the model."""
    digest = hashlib.sha256()
    for name in sorted(graph.weights):
        w = graph.weights[name]
        digest.update(f"{name}\0{w.data_type}\0{','.join(map(str, w.dims))}\0".encode())
        sources = [(graph.path, offset, length) for offset, length in w.spans]
        if w.external is not None:
            sources.append((graph.path.parent / w.external[0], w.external[1], w.external[2]))
        for file, offset, length in sources:
            try:
                with open(file, "rb") as f:
                    f.seek(offset)
                    left = length if length is not None else os.path.getsize(file) - offset
                    while left > 0:
                        block = f.read(min(chunk, left))
                        if not block:
                            raise EdgeditError(
                                f"{graph.path}: weight {name!r} ends past the end of {file.name} (truncated)"
                            )
                        digest.update(block)
                        left -= len(block)
            except OSError as err:
                raise EdgeditError(
                    f"{graph.path}: weight {name!r} cannot be read from {file.name} ({err.strerror})"
                ) from None
    return digest.hexdigest()
