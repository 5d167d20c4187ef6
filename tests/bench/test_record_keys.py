"""Every field a consumer of bench records reads is one the producer writes.

Records travel as BenchRecord objects from the harness (or `load_records`) to every consumer: the
comparison rows and their CSV, the Markdown report, the terminal table, the plots, the demo and the
device calibration. A consumer can only read a declared field: anything else is an AttributeError on
what the harness makes (it carries no extra keys). So the harness must set every declared field,
nested records included (a field left at its default is one a consumer would wait on for nothing),
and every consumer runs over real records: a CPU run, and the same as a Jetson's TensorRT run would
hold it (GPU times, the module, tegrastats)."""

import numpy as np
import pytest
from pydantic import BaseModel

from edgedit.bench.harness import BenchSettings, run_bench
from edgedit.bench.records import BenchRecord, RecordTegrastats
from edgedit.bench.stats import LatencyStats
from edgedit.bench.tegrastats import summarize
from edgedit.contract.jetson import JetsonFacts, PowerMode


def unset_fields(record: BaseModel, path: str = "") -> list[str]:
    """Declared fields the record's maker did not set, by dotted path (nested records too)."""
    missing = []
    for name in type(record).model_fields:
        if name not in record.model_fields_set:
            missing.append(path + name)
        value = getattr(record, name)
        if isinstance(value, BaseModel):
            missing += unset_fields(value, f"{path}{name}.")
    return missing


@pytest.fixture(scope="module")
def records(exported) -> list[BenchRecord]:
    measured, _ = run_bench(
        [str(exported["onestep-cond"][0])], ["onnxruntime"], BenchSettings([1, 2], warmup=0, iters=6, duration_s=None)
    )
    return measured


def as_on_a_jetson(record: BenchRecord) -> BenchRecord:
    """The record as a TensorRT run on an Orin Nano Super with tegrastats would hold it."""
    line = "RAM 2300/7620MB SWAP 0/3810MB GR3D_FREQ 50%@612 EMC_FREQ 9%@2133 VDD_IN 5000mW/5000mW"
    summary = summarize([line, line], interval_ms=100)
    facts = JetsonFacts(
        model="NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super",
        l4t="36.4.3",
        nvpmodel=PowerMode(name="MAXN_SUPER", id=2),
        jetson_clocks=True,
    )
    env = record.env.model_copy(update={"jetson": facts, "packages": {"tensorrt": "10.3.0.30"}})
    return BenchRecord.model_validate(
        {
            **dict(record),
            "backend": "tensorrt",
            "precision": "fp16",
            "gpu_ms": LatencyStats.from_samples(np.array([0.5, 0.6, 0.7])),
            "env": env,
            "tegrastats": RecordTegrastats(**dict(summary), ram_delta_mb=300.0, energy_per_image_j=0.01),
        }
    )


def consumers():
    from edgedit.bench import plots
    from edgedit.bench.comparison import comparison_rows, csv_row, markdown
    from edgedit.bench.device_fit import device_points
    from edgedit.cli.bench import print_bench_table
    from edgedit.demo import student_vs_teacher

    return {
        "comparison rows + CSV": lambda rs: [csv_row(row.record) for row in comparison_rows(rs)],
        "markdown": markdown,
        "terminal table": print_bench_table,
        "latency plot": lambda rs: plots.latency_distribution("latency.png", rs),  # in the test's own folder
        "trade-off points": lambda rs: plots.points_of([r.model_copy(update={"fid": 50.0}) for r in rs]),
        "device calibration": lambda rs: device_points(rs, "test"),
        "demo table": lambda rs: student_vs_teacher(demo_rows(rs), {}, {}),
    }


def demo_rows(records: list[BenchRecord]) -> list[BenchRecord]:
    """The rows the demo compares at each of its batch sizes: the student's network call and the
    student's and the teacher's samplers."""
    from edgedit.assets import TEACHER_DIGITS
    from edgedit.demo import BATCHES

    rows = []
    for r in records[:1]:
        for batch in BATCHES:
            rows += [
                r.model_copy(update={"batch": batch}),
                r.model_copy(update={"batch": batch, "what": "sampler"}),
                r.model_copy(update={"batch": batch, "what": "sampler", "model": TEACHER_DIGITS.name}),
            ]
    return rows


def test_the_harness_writes_every_field_the_schema_declares(records):
    for record in records:
        assert not unset_fields(record), f"the harness leaves {unset_fields(record)} at their defaults"
    assert not unset_fields(as_on_a_jetson(records[0]).tegrastats)


@pytest.mark.parametrize("consumer", list(consumers()))
def test_every_consumer_reads_only_what_the_records_hold(consumer, records, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    jetson = [as_on_a_jetson(r) for r in records]
    consumers()[consumer]([*records, *jetson])  # an undeclared read raises here
    if consumer == "device calibration":
        points, skipped = consumers()[consumer](jetson)
        assert len(points) == len(jetson) and not skipped  # the Jetson rows are read whole


def test_a_read_of_a_field_nobody_writes_fails(records):
    with pytest.raises(AttributeError):
        records[0].eval_18_step_heun_1000_samples  # noqa: B018  the demo once read this; nothing wrote it
