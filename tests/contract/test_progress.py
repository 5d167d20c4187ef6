"""contract/progress.py: long work reports what it does and how far it got, to whoever listens."""

import contextlib

import numpy as np

from edgedit.contract.progress import reporting, task
from edgedit.runtime.backends import load_backend
from edgedit.runtime.samplers import generate


class Recorder:
    def __init__(self):
        self.tasks = []  # [label, total, done, depth at start]
        self.depth = 0

    @contextlib.contextmanager
    def __call__(self, label, total):
        entry = [label, total, 0, self.depth]
        self.tasks.append(entry)
        self.depth += 1
        try:
            yield lambda k=1: entry.__setitem__(2, entry[2] + k)
        finally:
            self.depth -= 1


def test_without_a_reporter_a_task_is_free():
    with task("anything", 10) as advance:
        advance(3)  # nothing listens: nothing happens, nothing fails


def test_sampling_reports_every_image_once(exported):
    backend = load_backend(str(exported["onestep-cond"][0]))
    recorder = Recorder()
    with reporting(recorder):
        images = generate(backend, range(10), batch=4)
    assert images.shape[0] == 10 and recorder.tasks == [["sampling images", 10, 10, 0]]


def test_tasks_nest_and_each_counts_its_own_units(exported):
    backend = load_backend(str(exported["onestep-cond"][0]))
    recorder = Recorder()
    with reporting(recorder), task("calibration", 2) as advance:
        for first in (0, 3):
            generate(backend, np.arange(first, first + 3), batch=2)
            advance(1)
    assert recorder.tasks == [["calibration", 2, 2, 0], ["sampling images", 3, 3, 1], ["sampling images", 3, 3, 1]]
