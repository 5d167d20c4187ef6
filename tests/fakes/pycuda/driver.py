"""Fake `pycuda.driver`: device memory is a dict of byte arrays keyed by address; a stream runs its
work when synchronized (or hands it to a CUDA graph being captured: tests/fakes/libcuda.py).
Every public name is pycuda's own (checked against tests/fakes/released/pycuda-2026.1.names.txt)."""

import itertools

import numpy as np

_MEMORY = {}
_STREAMS = {}
_DEVICE_NAME = "Orin (fake)"
_addresses = itertools.count(0x1000, 0x1000)
_handles = itertools.count(1)


class Device:
    def __init__(self, ordinal):
        self._ordinal = ordinal

    def name(self):
        return _DEVICE_NAME


class DeviceAllocation(int):
    def free(self):
        _MEMORY.pop(int(self), None)


def mem_alloc(nbytes):
    address = DeviceAllocation(next(_addresses))
    _MEMORY[int(address)] = np.zeros(nbytes, np.uint8)
    return address


def pagelocked_empty(shape, dtype, order="C", mem_flags=0):
    return np.empty(shape, dtype, order=order)


def mem_get_info():
    used = sum(buffer.nbytes for buffer in _MEMORY.values())
    return 7_000_000_000 - used, 7_600_000_000


class Stream:
    def __init__(self, flags=0):
        self.handle = next(_handles)
        _STREAMS[self.handle] = self
        self._pending, self._capture = [], None  # work to run; a graph's work list while capturing

    def _enqueue(self, work):
        (self._capture if self._capture is not None else self._pending).append(work)

    def synchronize(self):
        work, self._pending = self._pending, []
        for item in work:
            item()


def memcpy_htod_async(dest, src, stream=None):
    raw = np.ascontiguousarray(src).view(np.uint8).ravel()
    stream._enqueue(lambda: _MEMORY[int(dest)].__setitem__(slice(0, raw.size), raw.copy()))


def memcpy_dtoh_async(dest, src, stream=None):
    def copy():
        flat = dest.reshape(-1).view(np.uint8)
        flat[:] = _MEMORY[int(src)][: flat.size]

    stream._enqueue(copy)


class Event:
    def __init__(self, flags=0):
        pass

    def record(self, stream=None):
        return self

    def time_till(self, end):
        return 0.25  # fake milliseconds
