import time

import numpy as np
import pytest

from edgedit.bench.latency import LatencyStats, measure


def test_statistics_of_known_samples():
    stats = LatencyStats.from_samples(np.arange(1.0, 101.0))
    assert (stats.n, stats.min, stats.max, stats.mean) == (100, 1.0, 100.0, 50.5)
    assert stats.p50 == pytest.approx(50.5) and stats.p90 == pytest.approx(90.1) and stats.p99 == pytest.approx(99.01)


def test_warmup_is_excluded_and_iters_counted(monkeypatch):
    clock = [0]  # a fake clock in ns: warm-up calls take 50 ms, timed calls 2 ms
    monkeypatch.setattr(time, "perf_counter_ns", lambda: clock[0])
    calls = []

    def work():
        calls.append(1)
        clock[0] += 2_000_000 if len(calls) > 3 else 50_000_000

    stats = measure(work, warmup=3, iters=10)
    assert len(calls) == 13 and stats.n == 10
    assert stats.min == stats.max == 2.0


def test_duration_mode_runs_at_least_min_iters():
    stats = measure(lambda: None, warmup=0, duration_s=0.01, min_iters=5)
    assert stats.n >= 5
    with pytest.raises(ValueError):
        measure(lambda: None, iters=3, duration_s=1.0)
