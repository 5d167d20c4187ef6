"""The one way edgedit reads a `torch.save` file: tensors and plain containers only.

`torch.load(weights_only=True)` refuses any pickled global that is not a tensor type, so a
poisoned file cannot run code (https://pytorch.org/docs/stable/generated/torch.load.html).
Every refusal is one line naming the file; nothing else in edgedit calls `torch.load`.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import warnings

from edgedit.contract.deps import require
from edgedit.contract.errors import EdgeditError
from edgedit.contract.fileio import regular_file


def load_tensors(path: str | os.PathLike, what: str = "PyTorch file", trusted_hint: str = "") -> object:
    """The file's tensors and containers; `trusted_hint` says what to do with a file that holds more."""
    torch = require("torch", extra="train")
    path = regular_file(path)
    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol of files it then refuses
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        hint = f"{'; ' + trusted_hint if trusted_hint else ''}"
        found = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", str(err))
        name = found.group(1) if found else _first_global(path)
        if name:
            raise EdgeditError(
                f"{path}: refused pickle global {name}: the file holds Python objects "
                f"besides tensors, and edgedit never unpickles them{hint}"
            ) from err
        raise EdgeditError(f"{path}: not a readable {what}, truncated or of another format") from err
    except (EOFError, RuntimeError, OSError, ValueError) as err:
        reason = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise EdgeditError(f"{path}: not a readable {what}, truncated or of another format ({reason})") from err


SCAN_BYTES = 16 << 20  # a plain pickle names its globals before its data: the head is enough


def _first_global(path: str | os.PathLike) -> str | None:
    """The first global a plain pickle (not a torch.save zip, which torch.load names itself) would
    import, read from its opcodes without running any (pickletools only parses them), or None.
    STACK_GLOBAL takes its module and name from the two strings pushed before it."""
    import pickletools

    strings: list[str] = []
    try:
        with open(path, "rb") as f:
            head = io.BytesIO(f.read(SCAN_BYTES))  # a length field cannot make genops read more
        for opcode, arg, _ in pickletools.genops(head):
            if opcode.name == "GLOBAL":
                return str(arg).replace(" ", ".")
            if opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                return ".".join(strings[-2:])
            if isinstance(arg, str) and "UNICODE" in opcode.name:
                strings.append(arg)
    except (ValueError, EOFError, OSError, UnicodeDecodeError):
        return None  # not a pickle at all: the caller says so
    return None
