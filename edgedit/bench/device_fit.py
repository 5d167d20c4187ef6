"""Bench records made on a Jetson as calibration points of the device latency model
(`edgedit models --calibrate`): TensorRT rows of one network call with their CUDA-event GPU time,
fitted together with the shipped public points. Torch-free."""

from __future__ import annotations

from edgedit.bench.records import BenchRecord
from edgedit.contract.errors import EdgeditError
from edgedit.cost.fit import FITTED, DiTNetwork, Fit, Point, calibrate, load_points


def device_points(records: list[BenchRecord], where: str) -> tuple[list[Point], list[str]]:
    """Calibration points from `edgedit bench` records made on a Jetson: TensorRT rows of one network
    call with CUDA-event GPU times. Returns (points, reasons rows were skipped)."""
    from edgedit.contract.hardware import device_for_mode

    points, skipped = [], []
    for i, r in enumerate(records):
        label = f"{where} row {i + 1} ({r.model}, {r.backend}, batch {r.batch})"
        if r.backend != "tensorrt" or r.what != "model":
            skipped.append(f"{label}: not a TensorRT network call")
            continue
        jet = r.env.jetson
        mode = jet.nvpmodel.name if jet and jet.nvpmodel else None
        spec = device_for_mode(jet.model if jet else None, mode)
        if spec is None:
            skipped.append(f"{label}: not an Orin Nano power mode edgedit knows ({jet.model if jet else None}, {mode})")
            continue
        if r.gpu_ms is None:
            skipped.append(f"{label}: no GPU time (record made by an older edgedit?)")
            continue
        if jet.jetson_clocks is False:
            skipped.append(f"{label}: clocks were not pinned (run `sudo jetson_clocks` before benchmarking)")
            continue
        gpu = r.gpu_ms.p50
        points.append(
            Point(
                id=f"device:{r.model}:{r.precision}:b{r.batch}{':graph' if r.cuda_graph else ''}",
                use="fit",
                network=DiTNetwork(family="dit", config=r.config.to_dict()),
                device=spec.key,
                precision=r.precision,
                batch=r.batch,
                cuda_graph=r.cuda_graph,
                timing="gpu",
                measured_ms=gpu,
                source=where,
                power_mode=str(mode),
                jetpack=f"L4T {jet.l4t}",
                tensorrt=r.env.packages.get("tensorrt", ""),
                quote=f"edgedit bench: TensorRT gpu_ms p50 {gpu:.4f} ms",
            )
        )
    return points, skipped


def calibrate_with_device(records: dict[str, list[BenchRecord]]) -> tuple[Fit, list[str]]:
    """The public points plus a Jetson's `edgedit bench` records ({file: records}). With both
    CUDA-graph and plain rows, the launch cost is fitted too (the public points cannot separate it
    from the floor)."""
    points, skipped = [], []
    for where, rows in records.items():
        found, why = device_points(rows, where)
        points += found
        skipped += why
    if not points:
        raise EdgeditError(
            "no usable device measurements: a calibration needs `edgedit bench --json` files recorded on "
            "a Jetson Orin Nano with TensorRT engines (" + "; ".join(skipped[:3]) + ")"
        )
    graphs = {p.cuda_graph for p in points}
    fitted = FITTED + (("launch_us",) if graphs == {True, False} else ())
    return calibrate(load_points() + points, fitted=fitted), skipped
