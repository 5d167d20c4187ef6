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

OPSET_IMPORT, METADATA_PROPS = 8, 14
VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5


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
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            for number, payload in _top_level(f, size, {OPSET_IMPORT, METADATA_PROPS}):
                fields = {n: v for n, _, v in _fields(payload)}
                if number == METADATA_PROPS:
                    metadata[bytes(fields.get(1, b"")).decode()] = bytes(fields.get(2, b"")).decode()
                else:
                    opsets[bytes(fields.get(1, b"")).decode() or "ai.onnx"] = int(fields.get(2, 0))
    except FileNotFoundError:
        raise EdgeditError(f"{path}: no such file") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise EdgeditError(f"{path}: not a readable ONNX model ({err})") from err
    if not opsets:
        raise EdgeditError(f"{path}: not an ONNX model (no opset_import)")
    return metadata, opsets
