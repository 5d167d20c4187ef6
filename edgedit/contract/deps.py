"""Lazy imports of optional heavy dependencies, with an install hint when one is missing.

Device-side modules must not import torch or onnx at module level; workstation code calls
`require("torch", extra="train")` inside the function that needs it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from edgedit.contract.errors import MissingDependency


def require(module: str, extra: str | None = None, hint: str | None = None) -> ModuleType:
    """Import `module`, or raise MissingDependency saying how to install it (an extra, or a hint)."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        top = module.split(".")[0]
        how = hint or f"pip install 'edgedit[{extra}]'"
        raise MissingDependency(
            f"this needs the Python package '{top}', which is not importable ({err}); {how}"
        ) from err
