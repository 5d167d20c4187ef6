"""Schemas for every record edgedit reads from a file, and the one way they are checked. Torch-free.

A record (ONNX metadata, a checkpoint's config and provenance, an engine sidecar, a train state,
a pairs manifest, a bench record, a latency calibration ...) is a pydantic model (https://docs.pydantic.dev)
in the module that owns its format. `Record` makes them strict: unknown fields, a boolean where an
integer belongs, a string where a number belongs, NaN and infinity are all refused. `parse` turns
the first violation into one line naming the file, the field, what was expected and what was found.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import typing
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from edgedit.contract.errors import EdgeditError

R = TypeVar("R", bound=BaseModel)

# Bounds shared by several records: generous for any real model, small enough that a hostile file
# cannot make a reader allocate much before the memory check sees it.
MAX_BATCH = 4096
MAX_SIDE = 4096  # image side, pixels or latents
MAX_CHANNELS = 64
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
PositiveInt = Annotated[int, Field(ge=1)]
Name = Annotated[str, Field(min_length=1, max_length=256)]


class Record(BaseModel):
    """Strict and closed: unknown fields, coercions and non-finite numbers are refused."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class OpenRecord(Record):
    """A record that later versions may extend: unknown fields are kept, not refused."""

    model_config = ConfigDict(extra="allow")


def first_problem(err: ValidationError) -> str:
    """'field a.b: <what was expected> (got <value>)', and how many more problems there are."""
    e = err.errors(include_url=False)[0]
    more = err.error_count() - 1
    if not e["loc"] and e["type"] in ("model_type", "dict_type", "model_attributes_type", "list_type"):
        expected = "list" if e["type"] == "list_type" else "object"
        return f"expected a JSON {expected}, got {type(e.get('input')).__name__}"
    # pydantic names union members in the location ('constrained-int', 'function-after[...]'): drop them
    loc = [str(x) for x in e["loc"] if not (isinstance(x, str) and ("[" in x or x.startswith("constrained-")))]
    field = ".".join(loc) or "(the record)"
    if e["type"] in ("model_type", "dict_type", "model_attributes_type"):
        return f"field '{field}': expected a JSON object, got {type(e.get('input')).__name__}"
    got = "" if e["type"] == "missing" else f" (got {_short(e.get('input'))})"
    message = e["msg"].removeprefix("Value error, ")  # a model validator's own words
    return f"field '{field}': {message[0].lower()}{message[1:]}{got}" + (f"; and {more} more" if more else "")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse(schema: type[R], data: Any, where: str | os.PathLike, what: str, fix: str = "") -> R:
    """`data` (already decoded) checked against `schema`, or one line: 'WHERE: not a valid WHAT: field
    ...; FIX'."""
    try:
        return schema.model_validate(data)
    except ValidationError as err:
        raise EdgeditError(f"{where}: not a valid {what}: {first_problem(err)}" + (f"; {fix}" if fix else "")) from None


def load_json(path: str | os.PathLike, what: str, fix: str = "", max_bytes: int = 64 << 20) -> Any:
    """A JSON file's value, refusing an oversized file or non-JSON (NaN and Infinity included) in one line."""
    try:
        size = os.path.getsize(path)
        if size > max_bytes:
            raise EdgeditError(f"{path}: {size} bytes is too large for a {what} (at most {max_bytes})")
        with open(path, "rb") as f:
            text = f.read()
    except FileNotFoundError:
        raise EdgeditError(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise EdgeditError(f"{path}: is a folder, not a {what}") from None
    except OSError as err:
        raise EdgeditError(f"{path}: cannot read it ({err.strerror})") from None
    return loads(text, path, what, fix)


def loads(text: str | bytes, where: str | os.PathLike, what: str, fix: str = "") -> Any:
    """Strict JSON: NaN, Infinity and duplicate keys are refused, not silently accepted."""

    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate key {next(k for k in keys if keys.count(k) > 1)!r}")
        return dict(pairs)

    try:
        return json.loads(text, parse_constant=no_constants, object_pairs_hook=no_duplicates)
    except (ValueError, RecursionError) as err:
        reason = str(err).splitlines()[0][:100] if not isinstance(err, RecursionError) else "nested too deeply"
        raise EdgeditError(f"{where}: not a valid {what}: not JSON ({reason})" + (f"; {fix}" if fix else "")) from None


@functools.cache
def fields_record(cls: type) -> type[Record]:
    """A strict record of the fields of dataclass `cls`, with the bounds its Annotated types carry:
    the dataclass declares each field once (type, bound, default) and validates itself against this."""
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = {f.name: (hints[f.name], ...) for f in dataclasses.fields(cls)}
    return create_model(f"{cls.__name__}Fields", __base__=Record, **fields)


def check_shard(shard: tuple[int, int]) -> tuple[int, int]:
    """A worker's share I/N of a job split over N workers: 0 <= I < N (the one rule every sharded job uses)."""
    worker, workers = shard
    if not 0 <= worker < workers:
        raise EdgeditError(f"`shard` {worker}/{workers}: need 0 <= I < N")
    return worker, workers
