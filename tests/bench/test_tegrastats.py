"""tegrastats logs in the formats of real releases. The first Orin Nano line is quoted from a public
L4T r36.4.3 log (a Jetson AI course log of an Orin Nano Super, MAXN_SUPER); the others follow the published r35
AGX Orin and legacy Nano (POM_ rails, no units) formats, with values made up."""

from pathlib import Path

import pytest

from edgedit.bench.tegrastats import TegrastatsSampler, parse_line, summarize, summarize_log
from edgedit.contract.errors import EdgeditError

DATA = Path(__file__).parent.parent / "fixtures"


def test_orin_nano_r36_log():
    summary = summarize((DATA / "tegrastats_orin_nano_r36.log").read_text().splitlines()).model_dump()
    assert summary["samples"] == 4 and summary["bad_lines"] == 1
    assert summary["ram_used_mb"] == {"mean": (2147 + 2210 + 2302 + 2290) / 4, "peak": 2302}
    assert summary["ram_total_mb"] == 7620
    assert summary["gr3d_pct"] == {"mean": (0 + 62 + 26 + 0) / 4, "peak": 62}
    assert summary["emc_pct"] == {"mean": 5.0, "peak": 10}  # only two lines report EMC: absent is not 0
    # VDD_IN is missing from the last line: unavailable there, not zero.
    assert summary["power_mw"]["VDD_IN"] == {"mean": (4556 + 7120 + 6100) / 3, "peak": 7120}
    assert summary["power_mw"]["VDD_CPU_GPU_CV"]["peak"] == 2480
    assert summary["period_s"] == 1.0  # from the 1-second timestamps
    assert summary["energy_rail"] == "VDD_IN"
    # float64: an integer sum of mW, / 1000, x the period; rounding only (~1e-16), so rel 1e-12
    assert summary["energy_j"] == pytest.approx((4556 + 7120 + 6100) / 1000 * 1.0, rel=1e-12)


def test_agx_orin_r35_log_without_timestamps():
    summary = summarize((DATA / "tegrastats_agx_r35.log").read_text().splitlines(), interval_ms=100).model_dump()
    assert summary["samples"] == 2 and summary["bad_lines"] == 0
    assert summary["gr3d_pct"]["peak"] == 97
    assert set(summary["power_mw"]) == {"VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "VDDQ_VDD2_1V8AO"}
    assert summary["energy_rail"] == "VIN_SYS_5V0"
    assert summary["energy_j"] == pytest.approx((3519 + 4100) / 1000 * 0.1, rel=1e-12)  # as above


def test_legacy_nano_rails_without_units():
    summary = summarize((DATA / "tegrastats_nano_legacy.log").read_text().splitlines()).model_dump()
    assert summary["samples"] == 2 and summary["bad_lines"] == 1
    assert summary["power_mw"]["POM_5V_IN"] == {"mean": (2125 + 5110) / 2, "peak": 5110}
    assert summary["energy_rail"] == "POM_5V_IN"
    assert summary["energy_j"] is None  # no timestamps and no interval: energy is unknown, not 0


def test_fields_of_one_line():
    line = (DATA / "tegrastats_orin_nano_r36.log").read_text().splitlines()[2]
    sample = parse_line(line)
    assert (sample.gr3d_pct, sample.gr3d_mhz, sample.emc_pct, sample.swap_used_mb) == (26, 306, 10, 1476)
    assert sample.temperature_c["gpu"] == 50.0 and sample.timestamp.second == 38
    assert "RAM" not in sample.power_mw and "SWAP" not in sample.power_mw


@pytest.mark.parametrize(
    "line", ["", "RAM", "RAM x/yMB", "GR3D_FREQ 50%", "\x00\xff garbage", "RAM 10/20MB VDD_IN abcmW/1mW"]
)
def test_malformed_input_never_crashes(line):
    summary = summarize([line, "RAM 100/200MB VDD_IN 1000mW/1000mW"], interval_ms=50).model_dump()
    assert summary["samples"] >= 1 and summary["power_mw"]["VDD_IN"]["peak"] == 1000


def test_empty_log():
    summary = summarize([]).model_dump()
    assert summary["samples"] == 0 and summary["ram_used_mb"] is None and summary["energy_j"] is None


def test_sampler_runs_a_tegrastats_executable(tmp_path):
    fake = tmp_path / "tegrastats"
    line = (DATA / "tegrastats_orin_nano_r36.log").read_text().splitlines()[1]
    fake.write_text(f"#!/bin/sh\nwhile true; do echo '{line}'; sleep 0.05; done\n")
    fake.chmod(0o755)
    import time

    with TegrastatsSampler(interval_ms=50, executable=str(fake)) as sampler:
        deadline = time.monotonic() + 5
        while len(sampler.samples) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    summary = sampler.summary().model_dump()
    assert summary["samples"] >= 3 and summary["power_mw"]["VDD_IN"]["peak"] == 7120
    assert summary["period_s"] > 0 and summary["energy_j"] > 0


def test_sampler_without_tegrastats_reports_nothing():
    sampler = TegrastatsSampler(executable="no-such-tegrastats")
    with sampler:
        pass
    assert not sampler.available() and sampler.summary() is None


def test_absurd_numbers_make_a_line_malformed_not_a_crash(tmp_path):
    good = (DATA / "tegrastats_orin_nano_r36.log").read_text().splitlines()[0]
    huge = good.replace("VDD_IN ", "VDD_IN " + "9" * 5000, 1)
    log = tmp_path / "t.log"
    log.write_text(good + "\n" + good.replace("RAM ", "RAM " + "7" * 5000, 1) + "\n")
    summary = summarize_log(log).model_dump()
    assert summary["samples"] == 1 and summary["bad_lines"] == 1
    # An absurd rail reading makes its whole line malformed: energy from a line without its total
    # rail would be silently low.
    assert summarize([good, huge]).samples == 1 and summarize([huge]).bad_lines == 1


@pytest.mark.parametrize("interval", [-100.0, 0.0, float("nan"), float("inf")])
def test_the_interval_must_be_a_positive_finite_number(interval):
    with pytest.raises(EdgeditError, match="`interval_ms` must be a number of milliseconds"):
        summarize_log(DATA / "tegrastats_orin_nano_r36.log", interval)
