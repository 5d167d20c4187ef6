from edgedit.contract import jetson

ORIN_NANO_SUPER_CONF = """
< PM_CONFIG DEFAULT=1 >
< POWER_MODEL ID=0 NAME=15W >
CPU_ONLINE CORE_0 1
< POWER_MODEL ID=1 NAME=25W >
< POWER_MODEL ID=2 NAME=MAXN_SUPER >
"""


def fake_jetson(root, gpu=(306000000, 1020000000), cpu=(729600, 1728000)):
    (root / "proc/device-tree").mkdir(parents=True)
    (root / "proc/device-tree/model").write_bytes(
        b"NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super\x00"
    )
    (root / "etc").mkdir()
    (root / "etc/nv_tegra_release").write_text(
        "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, "
        "DATE: Wed Jan  8 01:49:37 UTC 2025\n"
    )
    (root / "etc/nvpmodel.conf").write_text(ORIN_NANO_SUPER_CONF)
    (root / "var/lib/nvpmodel").mkdir(parents=True)
    (root / "var/lib/nvpmodel/status").write_text("pmode:0002 fmode:quiet\n")
    gpu_dir = root / "sys/class/devfreq/17000000.gpu"
    gpu_dir.mkdir(parents=True)
    (gpu_dir / "min_freq").write_text(f"{gpu[0]}\n")
    (gpu_dir / "max_freq").write_text(f"{gpu[1]}\n")
    cpu_dir = root / "sys/devices/system/cpu/cpu0/cpufreq"
    cpu_dir.mkdir(parents=True)
    (cpu_dir / "scaling_min_freq").write_text(f"{cpu[0]}\n")
    (cpu_dir / "scaling_max_freq").write_text(f"{cpu[1]}\n")
    return root


def test_probe_reads_model_l4t_power_mode_and_clocks(tmp_path):
    facts = jetson.probe(fake_jetson(tmp_path), run_nvpmodel=False)
    assert facts.model_dump() == {
        "model": "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super",
        "l4t": "36.4.3",
        "nvpmodel": {"name": "MAXN_SUPER", "id": 2},
        "jetson_clocks": False,
    }


def test_jetson_clocks_is_on_when_minimum_equals_maximum(tmp_path):
    root = fake_jetson(tmp_path, gpu=(1020000000, 1020000000), cpu=(1728000, 1728000))
    assert jetson.jetson_clocks_enabled(root) is True


def test_not_a_jetson_gives_none(tmp_path):
    assert jetson.probe(tmp_path) is None
    assert jetson.jetson_clocks_enabled(tmp_path) is None
    assert jetson.nvpmodel_mode(tmp_path, run_nvpmodel=False) is None


def test_nvpmodel_query_output_is_parsed():
    assert jetson.parse_nvpmodel_query("NV Fan Mode:quiet\nNV Power Mode: MAXN_SUPER\n2\n") == {
        "name": "MAXN_SUPER",
        "id": 2,
    }
    assert jetson.parse_nvpmodel_query("nvpmodel: permission denied") is None


def test_unknown_mode_id_keeps_the_id(tmp_path):
    root = fake_jetson(tmp_path)
    (root / "var/lib/nvpmodel/status").write_text("pmode:0007\n")
    assert jetson.nvpmodel_mode(root, run_nvpmodel=False) == {"name": None, "id": 7}
