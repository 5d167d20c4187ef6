"""serve/telemetry.py: the device's RAM and power in /metrics, from tegrastats (jtop where its socket
is; neither off a Jetson), keeping only the latest sample however long the server runs."""

import time
from pathlib import Path

from edgedit.serve.telemetry import DeviceStats, Metrics

LOG = Path(__file__).parents[1] / "fixtures" / "tegrastats_orin_nano_r36.log"


def test_tegrastats_feeds_the_device_gauges(tmp_path, monkeypatch):
    fake = tmp_path / "tegrastats"
    line = LOG.read_text().splitlines()[1]
    fake.write_text(f"#!/bin/sh\nwhile true; do echo '{line}'; sleep 0.05; done\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    monkeypatch.setattr("edgedit.serve.telemetry.JTOP_SOCKET", str(tmp_path / "no-jtop.sock"))
    metrics = Metrics(DeviceStats(interval_ms=50))
    metrics.start()
    try:
        deadline = time.monotonic() + 5
        while metrics.device.latest is None and time.monotonic() < deadline:
            time.sleep(0.05)
        text = metrics.render()[0].decode()
    finally:
        metrics.stop()
    assert metrics.device.source == "tegrastats"
    assert 'edgedit_device_power_milliwatts{rail="VDD_IN"} 7120.0' in text
    assert "edgedit_device_ram_used_megabytes " in text


def test_off_a_jetson_the_device_gauges_stay_empty(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no tegrastats
    monkeypatch.setattr("edgedit.serve.telemetry.JTOP_SOCKET", str(tmp_path / "no-jtop.sock"))
    metrics = Metrics()
    metrics.start()
    text = metrics.render()[0].decode()
    metrics.stop()
    assert metrics.device.source is None and "edgedit_device_power_milliwatts{" not in text
