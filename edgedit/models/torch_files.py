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
from pathlib import Path

from edgedit.contract.deps import require
from edgedit.contract.errors import EdgeditError


def load_tensors(path: str | os.PathLike, what: str = "PyTorch file", trusted_hint: str = "") -> object:
    """The file's tensors and containers; `trusted_hint` says what to do with a file that holds more."""
    torch = require("torch", extra="train")
    path = Path(path)
    if not path.is_file():
        raise EdgeditError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol of files it then refuses
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
        if not found:  # not a pickle stream at all
            raise EdgeditError(f"{path}: not a readable {what}, truncated or of another format") from err
        raise EdgeditError(f"{path}: refused: the file holds Python objects besides tensors ({found.group(1)}), and "
                           f"edgedit never unpickles them{'; ' + trusted_hint if trusted_hint else ''}") from err
    except (EOFError, RuntimeError, OSError, ValueError) as err:
        reason = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise EdgeditError(f"{path}: not a readable {what}, truncated or of another format ({reason})") from err
