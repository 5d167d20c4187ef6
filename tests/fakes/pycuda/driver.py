"""Fake `pycuda.driver`: device memory is a dict of byte arrays keyed by address; a stream runs
its work when synchronized, or records it while capturing a graph."""

import itertools

import numpy as np

MEMORY = {}
STREAMS = {}
DEVICE_NAME = "Orin (fake)"
_addresses = itertools.count(0x1000, 0x1000)
_handles = itertools.count(1)


class Device:
    def __init__(self, ordinal):
        self.ordinal = ordinal

    def name(self):
        return DEVICE_NAME


class DeviceAllocation(int):
    pass


def mem_alloc(nbytes):
    address = DeviceAllocation(next(_addresses))
    MEMORY[int(address)] = np.zeros(nbytes, np.uint8)
    return address


def pagelocked_empty(shape, dtype):
    return np.empty(shape, dtype)


def mem_get_info():
    used = sum(buffer.nbytes for buffer in MEMORY.values())
    return 7_000_000_000 - used, 7_600_000_000


class Stream:
    def __init__(self):
        self.handle = next(_handles)
        STREAMS[self.handle] = self
        self.pending, self.capturing, self.captured = [], False, []

    def enqueue(self, work):
        (self.captured if self.capturing else self.pending).append(work)

    def synchronize(self):
        work, self.pending = self.pending, []
        for item in work:
            item()

    def begin_capture(self):
        self.capturing, self.captured = True, []

    def end_capture(self):
        self.capturing = False
        return _Graph(list(self.captured))


class _Graph:
    def __init__(self, work):
        self.work = work

    def instantiate(self):
        return _GraphExec(self.work)


class _GraphExec:
    launches = 0

    def __init__(self, work):
        self.work = work

    def launch(self, stream=None):
        _GraphExec.launches += 1
        for item in self.work:
            stream.enqueue(item)


def memcpy_htod_async(dest, src, stream=None):
    raw = np.ascontiguousarray(src).view(np.uint8).ravel()
    stream.enqueue(lambda: MEMORY[int(dest)].__setitem__(slice(0, raw.size), raw.copy()))


def memcpy_dtoh_async(dest, src, stream=None):
    def copy():
        flat = dest.reshape(-1).view(np.uint8)
        flat[:] = MEMORY[int(src)][: flat.size]

    stream.enqueue(copy)


class Event:
    def record(self, stream=None):
        pass

    def time_till(self, other):
        return 0.25  # fake milliseconds
