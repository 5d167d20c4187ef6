"""Read an ONNX file's metadata_props and opsets without the onnx package. Torch-free, onnx-free.

The device side must not import onnx (design: it never does), yet `build-engine` needs the
`edgedit.*` metadata of the file it builds. ModelProto's top-level fields are read with the
protobuf wire format (https://protobuf.dev/programming-guides/encoding/) and everything else,
the graph with its weights included, is skipped by seeking over it: a 2 GB model costs a few reads.
Fields (onnx.proto): 8 opset_import {1 domain, 2 version}, 14 metadata_props {1 key, 2 value}.
"""

from __future__ import annotations

import os
from typing import BinaryIO

from edgedit.contract.errors import EdgeditError
from edgedit.contract.fileio import regular_file

OPSET_IMPORT, METADATA_PROPS = 8, 14
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
    view, out, pos = memoryview(data), [], 0

    def read(n: int) -> bytes:
        nonlocal pos
        chunk = bytes(view[pos:pos + n])
        pos += len(chunk)
        return chunk

    while pos < len(data):
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
