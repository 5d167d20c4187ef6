import numpy as np
import pytest

from edgedit.bench.harness import settle
from edgedit.bench.stats import LatencyStats


def test_statistics_of_known_samples():
    stats = LatencyStats.from_samples(np.arange(1.0, 1001.0))
    assert (stats.n, stats.min, stats.max, stats.mean) == (1000, 1.0, 1000.0, 500.5)
    # float64: numpy interpolates between two neighbouring integers, a few roundings (~1e-16): rel 1e-12
    assert stats.p50 == pytest.approx(500.5, rel=1e-12) and stats.p90 == pytest.approx(900.1, rel=1e-12)
    assert stats.p99 == pytest.approx(990.01, rel=1e-12)


@pytest.mark.parametrize(
    "n, p90, p99", [(3, False, False), (99, False, False), (100, True, False), (999, True, False), (1000, True, True)]
)
def test_tail_percentiles_need_ten_calls_beyond_them(n, p90, p99):
    stats = LatencyStats.from_samples(np.ones(n))
    assert (stats.p90 is not None, stats.p99 is not None) == (p90, p99)


class FakeClock:
    def __init__(self, durations):
        self.now, self.durations = 0.0, iter(durations)

    def __call__(self) -> float:
        return self.now

    def work(self) -> None:
        self.now += next(self.durations)


def test_warm_up_runs_until_two_window_medians_agree():
    clock = FakeClock([0.050] * 7 + [0.002] * 100)  # a slow start, then steady
    warm = settle(clock.work, calls=3, max_seconds=60, window=5, tolerance=0.05, clock=clock)
    seconds = pytest.approx(7 * 0.05 + 8 * 0.002, rel=1e-12)  # 15 float64 adds on the fake clock: ~1e-15
    assert (warm.calls, warm.seconds, warm.settled) == (15, seconds, True)


def test_warm_up_is_bounded_in_time_and_honours_its_minimum():
    clock = FakeClock([0.5, 1.0] * 50)  # never settles
    warm = settle(clock.work, calls=2, max_seconds=3.0, window=5, clock=clock)
    assert not warm.settled and warm.calls == 4  # 0.5 + 1 + 0.5 + 1 = 3 s
    assert settle(FakeClock([]).work, calls=0, max_seconds=0).calls == 0  # nothing asked, nothing run
