"""Fake `polygraphy.backend.trt`: records how it was asked to build; the "engine" is that record."""

import json
from pathlib import Path

CALLS = []


class Profile(dict):
    def add(self, name, min, opt, max):
        self[name] = {"min": list(min), "opt": list(opt), "max": list(max)}
        return self


class NetworkFromOnnxPath:
    def __init__(self, path, flags=None, plugin_instancenorm=None, strongly_typed=None):
        self.path, self.strongly_typed = path, strongly_typed


class CreateConfig:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


def engine_bytes_from_network(network, config=None, save_timing_cache=None):
    kwargs = dict(config.kwargs)
    record = {"onnx": network.path, "strongly_typed": network.strongly_typed,
              "config": {k: v for k, v in kwargs.items() if k not in ("profiles", "memory_pool_limits")},
              "profiles": [dict(p) for p in kwargs.get("profiles", [])],
              "memory_pool_limits": {str(k): v for k, v in (kwargs.get("memory_pool_limits") or {}).items()}}
    CALLS.append(record)
    if save_timing_cache:
        Path(save_timing_cache).write_text("fake timing cache")
    return json.dumps(record).encode()
