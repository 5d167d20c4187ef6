"""`edgedit doctor`: what this machine offers edgedit. Torch-free; every probe tolerates absence."""

from __future__ import annotations

import platform
import sys

from edgedit import __version__
from edgedit.contract import device, jetson


def collect() -> dict:
    return {
        "edgedit": __version__,
        "python": sys.version.split()[0],
        "platform": f"{platform.system()} {platform.machine()}",
        "packages": {dist: device.package_version(dist, module) for dist, module in device.PACKAGES},
        "onnxruntime_providers": device.onnxruntime_providers(),
        "cuda": device.cuda_devices(),
        "jetson": facts.model_dump() if (facts := jetson.probe()) else None,
    }
