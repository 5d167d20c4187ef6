"""List the CUDA driver API of a released cuda.h: the functions it declares, the symbols the shared
library exports for them (cuda.h maps some names to versioned symbols, e.g. cuStreamBeginCapture ->
cuStreamBeginCapture_v2) and its enum constants. edgedit calls the driver API through ctypes, so the
symbol names are what must exist.

    python tests/fakes/released/extract_cuda_driver_names.py nvidia_cuda_runtime_cu12-12.6.77-...whl \
        -o tests/fakes/released/cuda-12.6.77.driver-api.txt

The wheel is NVIDIA's `nvidia-cuda-runtime-cu12` from PyPI (it carries include/cuda.h); JetPack 6.1 /
6.2 ship CUDA 12.6. Stdlib only.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import zipfile
from pathlib import Path

DECLARED = re.compile(r"\bCUresult\s+CUDAAPI\s+(cu\w+)\s*\(")
# "#define cuStreamBeginCapture __CUDA_API_PTSZ(cuStreamBeginCapture_v2)" or "#define cuX cuX_v2"
MAPPED = re.compile(r"^\s*#define\s+(cu\w+)\s+(?:__CUDA_API_PTSZ\((cu\w+)\)|__CUDA_API_PTDS\((cu\w+)\)|(cu\w+))\s*$",
                    re.MULTILINE)
CONSTANT = re.compile(r"^\s+(CU_[A-Z0-9_]+)\s*=", re.MULTILINE)


def extract(header: str) -> tuple[set[str], set[str], set[str]]:
    declared = set(DECLARED.findall(header))
    symbols = set(declared)
    for name, *targets in MAPPED.findall(header):
        target = next(t for t in targets if t)
        if name in declared:
            symbols.add(target)  # the library exports the mapped (versioned) symbol
    return declared, symbols, set(CONSTANT.findall(header))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("wheel", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    with zipfile.ZipFile(args.wheel) as wheel:
        member = next(n for n in wheel.namelist() if n.endswith("include/cuda.h"))
        header = wheel.read(member).decode()
    declared, symbols, constants = extract(header)
    digest = hashlib.sha256(args.wheel.read_bytes()).hexdigest()
    name, version = args.wheel.name.split("-")[:2]
    lines = [f"# wheel: {args.wheel.name}", f"# sha256: {digest}",
             f"# source: https://pypi.org/project/{name.replace('_', '-')}/{version}/ ({member})",
             "# extracted by tests/fakes/released/extract_cuda_driver_names.py",
             f"# {len(declared)} declared functions, {len(symbols)} exported symbols, {len(constants)} enum constants",
             "## symbols", *sorted(symbols), "## constants", *sorted(constants)]
    args.output.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
