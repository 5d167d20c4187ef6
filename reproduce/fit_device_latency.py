"""Fit the device latency model to the public measurements and write the shipped calibration.

    python reproduce/fit_device_latency.py      # writes edgedit/cost/data/fit.json and the fit section
                                                 # of docs/device-latency.md

The points and their sources: edgedit/cost/data/public-measurements.json. The model and its
assumptions: docs/device-latency.md. `edgedit models --calibrate BENCH.json ...` runs the same fit
with a Jetson's own measurements added.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgedit.contract.staging import write_text_atomic
from edgedit.cost.fit import calibrate, fit_table, load_points, loo_error

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fit", type=Path, default=ROOT / "edgedit/cost/data/fit.json")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs/device-latency.md")
    args = parser.parse_args()
    fit = calibrate(load_points())
    write_text_atomic(args.fit, json.dumps(fit.to_dict(), indent=1) + "\n")
    error = loo_error(fit)
    lines = [
        "Constants: "
        + ", ".join(f"{k} = {v:.4g}" for k, v in fit.constants.to_dict().items())
        + " (launch_us is not fitted, see above).",
        "",
        f"Leave-one-out over {error['points']} points: median error x{error['median_factor']:.2f}, "
        f"worst x{error['max_factor']:.2f}, RMS of log ratios {error['rms_log']:.3f}. Estimates show the point "
        f"and the range x{fit.range_ratios[0]:.2f}..x{fit.range_ratios[1]:.2f} (10th-90th percentile of the "
        "leave-one-out ratios measured / predicted).",
        "",
        fit_table(fit),
    ]
    doc = args.doc.read_text()
    begin, end = "<!-- fit:begin -->", "<!-- fit:end -->"
    head, rest = doc.split(begin)
    write_text_atomic(args.doc, head + begin + "\n" + "\n".join(lines) + "\n" + end + rest.split(end)[1])
    print("\n".join(lines))


if __name__ == "__main__":
    main()
