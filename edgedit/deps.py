"""Lazy imports of optional heavy dependencies, with an install hint when one is missing.

Device-side modules must not import torch or onnx at module level; workstation code calls
`require("torch", extra="train")` inside the function that needs it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from edgedit.errors import MissingDependency


def require(module: str, extra: str) -> ModuleType:
    """Import `module`, or raise MissingDependency naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        top = module.split(".")[0]
        raise MissingDependency(
            f"this needs the Python package '{top}', which is not importable ({err}); "
            f"install it with: pip install 'edgedit[{extra}]'"
        ) from err
