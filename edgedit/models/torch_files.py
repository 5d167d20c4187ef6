"""The one way edgedit reads a `torch.save` file: tensors and plain containers only.

`torch.load(weights_only=True)` refuses any pickled global that is not a tensor type, so a
poisoned file cannot run code (https://pytorch.org/docs/stable/generated/torch.load.html).
Every refusal is one line naming the file; nothing else in edgedit calls `torch.load`.
"""

from __future__ import annotations

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
        if found:
            raise EdgeditError(f"{path}: refused pickle global {found.group(1)}: the file holds Python objects "
                               f"besides tensors, and edgedit never unpickles them{hint}") from err
        raise EdgeditError(f"{path}: not a readable {what}, truncated or of another format") from err
    except (EOFError, RuntimeError, OSError, ValueError) as err:
        reason = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise EdgeditError(f"{path}: not a readable {what}, truncated or of another format ({reason})") from err
