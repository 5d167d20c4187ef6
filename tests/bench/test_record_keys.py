"""Every key a consumer of bench records reads is one a producer writes or the schema declares.

The records `edgedit bench` makes are handed, wrapped so that every key read is noted, to each
consumer: the comparison rows and their CSV, the Markdown report, the terminal table, the plot, the
demo's student-vs-teacher section and the device calibration. A key read that no producer writes and
BenchRecord does not declare is drift: a consumer waiting for a number that never comes."""

from typing import Any

import pytest

from edgedit.bench.harness import BenchSettings, csv_row, run_bench
from edgedit.bench.records import BenchRecord, EnvironmentRecord, LatencyRecord, markdown


class Watched(dict):
    """A dict that notes each key read (item, get, in), under the path of the record it belongs to."""

    def __init__(self, data: dict, path: str, reads: set[str]):
        super().__init__({k: watch(v, f"{path}.{k}" if path else k, reads) for k, v in data.items()})
        self.path, self.reads = path, reads

    def _note(self, key: Any) -> None:
        self.reads.add(f"{self.path}.{key}" if self.path else str(key))

    def __getitem__(self, key):
        self._note(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self._note(key)
        return super().get(key, default)

    def __contains__(self, key):
        self._note(key)
        return super().__contains__(key)


def watch(value: Any, path: str, reads: set[str]) -> Any:
    if isinstance(value, dict) and not isinstance(value, Watched):
        return Watched(value, path, reads)
    return value


def declared() -> set[str]:
    """The keys the schema declares, nested records by their dotted path."""
    keys = set(BenchRecord.model_fields)
    keys |= {f"latency_ms.{k}" for k in LatencyRecord.model_fields} | {
        f"gpu_ms.{k}" for k in LatencyRecord.model_fields
    }
    keys |= {f"env.{k}" for k in EnvironmentRecord.model_fields}
    return keys


def written(records: list[dict]) -> set[str]:
    keys: set[str] = set()

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                keys.add(f"{path}.{k}" if path else k)
                walk(v, f"{path}.{k}" if path else k)

    for r in records:
        walk(r, "")
    return keys


@pytest.fixture(scope="module")
def records(exported) -> list[dict]:
    measured, _ = run_bench(
        [str(exported["onestep-cond"][0])], ["onnxruntime"], BenchSettings([1, 2], warmup=0, iters=6, duration_s=None)
    )
    return measured


def consumers():
    import edgedit.bench.harness
    from edgedit.bench import plots
    from edgedit.cli.deploy import print_bench_table
    from edgedit.cost.fit import device_points

    return {
        "comparison rows + CSV": lambda rs: [csv_row(r) for r in edgedit.bench.harness.comparison_rows(rs)],
        "markdown": markdown,
        "terminal table": print_bench_table,
        "latency plot": lambda rs: plots.latency_distribution("latency.png", rs),  # in the test's own folder
        "trade-off points": plots.points_of,
        "device calibration": lambda rs: device_points(rs, "test"),
    }


@pytest.mark.parametrize("consumer", list(consumers()))
def test_every_key_read_is_written_or_declared(consumer, records, tmp_path, monkeypatch):
    import edgedit.bench.harness
    import edgedit.bench.records

    monkeypatch.chdir(tmp_path)
    reads: set[str] = set()
    rows = edgedit.bench.harness.comparison_rows  # its rows are records too: watch what is read of them

    def watched_rows(rs):
        return [watch(dict(r), "", reads) for r in rows(rs)]

    monkeypatch.setattr(edgedit.bench.harness, "comparison_rows", watched_rows)
    monkeypatch.setattr(edgedit.bench.records, "comparison_rows", watched_rows)
    # comparison_rows adds the ratio keys: a producer too
    produced = written(records) | written(rows(records)) | declared()
    consumers()[consumer]([watch(dict(r), "", reads) for r in records])
    assert reads, "the consumer read nothing: the test watches the wrong objects"
    stray = sorted(k for k in reads if k not in produced and not k.startswith(("tegrastats.", "gpu_memory.")))
    assert not stray, f"{consumer} reads keys no producer writes: {stray}"


def test_the_watch_catches_a_key_nobody_writes(records):
    reads: set[str] = set()
    watched = watch(dict(records[0]), "", reads)
    watched.get("eval_18_step_heun_1000_samples")  # the demo once read this; nothing wrote it
    assert "eval_18_step_heun_1000_samples" in reads
    assert "eval_18_step_heun_1000_samples" not in written(records) | declared()
