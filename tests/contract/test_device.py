"""Available memory honours a container's cgroup limit (v1 and v2), on fake /proc and /sys trees."""

from pathlib import Path

import pytest

from edgedit.contract.device import available_memory_bytes, cgroup_memory_headroom

GIB = 1 << 30


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def machine(tmp_path):
    """8 GiB available on the host (MemAvailable), no cgroup files yet."""
    write(tmp_path / "meminfo", f"MemTotal: {16 * GIB // 1024} kB\nMemAvailable: {8 * GIB // 1024} kB\n")
    return tmp_path


def available(machine: Path) -> int | None:
    return available_memory_bytes(machine / "meminfo", machine / "sys", machine / "self-cgroup")


def test_without_cgroup_files_it_is_memavailable(machine):
    assert available(machine) == 8 * GIB


def test_cgroup_v2_limit_minus_working_set(machine):
    """docker run --memory=2g: memory.max 2 GiB, 1 GiB charged of which 256 MiB inactive file cache."""
    write(machine / "self-cgroup", "0::/\n")
    write(machine / "sys/memory.max", f"{2 * GIB}\n")
    write(machine / "sys/memory.current", f"{GIB}\n")
    write(machine / "sys/memory.stat", f"anon 700000000\ninactive_file {GIB // 4}\nactive_file 1000\n")
    assert available(machine) == 2 * GIB - (GIB - GIB // 4)
    write(machine / "sys/memory.max", "max\n")  # no limit: the host's answer
    assert available(machine) == 8 * GIB


def test_cgroup_v2_the_tightest_ancestor_wins(machine):
    write(machine / "self-cgroup", "0::/system.slice/edgedit.service\n")
    write(machine / "sys/system.slice/memory.max", f"{3 * GIB}\n")
    write(machine / "sys/system.slice/memory.current", f"{2 * GIB}\n")
    write(machine / "sys/system.slice/edgedit.service/memory.max", "max\n")
    write(machine / "sys/system.slice/edgedit.service/memory.current", f"{GIB}\n")
    assert available(machine) == GIB


def test_cgroup_v1_limit_and_its_unlimited_value(machine):
    write(machine / "self-cgroup", "12:pids:/docker/abc\n5:memory:/docker/abc\n1:name=systemd:/docker/abc\n")
    # inside the container's namespace the memory mount's root is its own cgroup: /docker/abc is not there
    write(machine / "sys/memory/memory.limit_in_bytes", f"{GIB}\n")
    write(machine / "sys/memory/memory.usage_in_bytes", f"{GIB // 2}\n")
    write(machine / "sys/memory/memory.stat", f"cache 1\ntotal_inactive_file {GIB // 8}\n")
    assert available(machine) == GIB - (GIB // 2 - GIB // 8)
    write(machine / "sys/memory/memory.limit_in_bytes", "9223372036854771712\n")
    assert available(machine) == 8 * GIB


def test_a_usage_over_the_limit_leaves_nothing_and_garbage_is_ignored(machine):
    write(machine / "self-cgroup", "0::/\n")
    write(machine / "sys/memory.max", f"{GIB}\n")
    write(machine / "sys/memory.current", f"{2 * GIB}\n")
    assert available(machine) == 0
    write(machine / "sys/memory.max", "lots\n")
    assert available(machine) == 8 * GIB
    write(machine / "self-cgroup", "not a cgroup line\n")
    assert cgroup_memory_headroom(machine / "sys", machine / "self-cgroup") is None


def test_this_machine_gives_a_plausible_answer():
    assert 0 < available_memory_bytes() < 1 << 50
