"""The hostile-input sweep (issue 12): run every case of tests/hostile/cases.py against whatever
`edgedit` this interpreter imports, and tally per class how each ended.

    .venv/bin/python benchmarks/hostile_sweep.py --json hostile-now.json
    PYTHONPATH=/path/to/old/checkout .venv/bin/python benchmarks/hostile_sweep.py --json hostile-before.json

Commands go through edgedit's console-script entry point only (in forks of tests/hostile/zygote.py),
and the valid artefacts the cases start from are made by that edgedit's own command line, so an
old checkout is swept with exactly the same cases. Per class: exit 0 / 1 / 2 / hang / crash, and
the promises broken (internal error, traceback, more than one stderr line, no `edgedit: error:`
line, culprit not named, wrote files, changed inputs, memory), with the ids of the cases.
Exit status: 0 when every case kept every promise, 1 otherwise.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HOSTILE = Path(__file__).resolve().parent.parent / "tests" / "hostile"


def _load(name: str, path: Path):
    """Import a module by file (never by putting the repository on sys.path, which would shadow
    the edgedit under test for anything imported after it)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def tally(verdicts: list, classes: tuple[str, ...]) -> dict:
    out = {}
    for cls in classes:
        mine = [v for v in verdicts if v.cls == cls]
        if not mine:
            continue
        exits = Counter(
            "other"
            if v.exit not in ("0", "1", "2", "hang") and not v.exit.startswith("signal")
            else ("crash" if v.exit.startswith("signal") else v.exit)
            for v in mine
        )
        flags: dict[str, list[str]] = {}
        for v in mine:
            for flag in dict.fromkeys(v.flags):
                flags.setdefault(flag, []).append(v.case_id)
        out[cls] = {
            "cases": len(mine),
            "ok": sum(v.ok for v in mine),
            "exit": {k: exits.get(k, 0) for k in ("0", "1", "2", "hang", "crash", "other")},
            "flags": {k: flags[k] for k in sorted(flags)},
        }
    return out


FLAG_COLUMNS = ("internal-error", "traceback", "not-one-line", "unnamed", "wrote-files", "changed-inputs", "memory")


def print_tally(table: dict) -> None:
    head = (
        f"{'class':<18} {'cases':>5} {'ok':>4} | {'ex0':>4} {'ex1':>4} {'ex2':>4} {'hang':>4} {'crash':>5} | "
        + " ".join(f"{c[:8]:>8}" for c in FLAG_COLUMNS)
    )
    print(head)
    print("-" * len(head))
    totals = Counter()
    for cls, row in table.items():
        e, f = row["exit"], row["flags"]
        cells = [len(f.get(c, [])) for c in FLAG_COLUMNS]
        print(
            f"{cls:<18} {row['cases']:>5} {row['ok']:>4} | {e['0']:>4} {e['1']:>4} {e['2']:>4} {e['hang']:>4} "
            f"{e['crash']:>5} | " + " ".join(f"{n:>8}" for n in cells)
        )
        totals.update({"cases": row["cases"], "ok": row["ok"], **e, **dict(zip(FLAG_COLUMNS, cells))})
    print("-" * len(head))
    print(
        f"{'all':<18} {totals['cases']:>5} {totals['ok']:>4} | {totals['0']:>4} {totals['1']:>4} {totals['2']:>4} "
        f"{totals['hang']:>4} {totals['crash']:>5} | " + " ".join(f"{totals[c]:>8}" for c in FLAG_COLUMNS)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="Write the tally and every case's verdict here.")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help="Run the cases whose id starts with this (repeatable), e.g. metadata/ or pairs/labels.",
    )
    parser.add_argument("--timeout-scale", type=float, default=1.0, help="Multiply every case's time limit.")
    parser.add_argument("--keep", type=Path, help="Keep the case folders (and the valid artefacts) under this folder.")
    parser.add_argument("--quiet", action="store_true", help="No line per case.")
    parser.add_argument("--explain", action="store_true", help="Show each failing case's problems and stderr.")
    args = parser.parse_args(argv)

    cases_module = _load("hostile_cases", HOSTILE / "cases.py")
    runner = _load("hostile_runner", HOSTILE / "runner.py")
    cases = [c for c in cases_module.CASES if not args.only or any(c.id.startswith(p) for p in args.only)]
    work = args.keep or Path(tempfile.mkdtemp(prefix="edgedit-hostile-"))
    work.mkdir(parents=True, exist_ok=True)
    zygote = runner.Zygote()
    start = time.monotonic()
    try:
        hello = zygote.hello
        print(
            f"edgedit {hello.get('version')} from {hello['edgedit']} (Python {hello['python']}); {len(cases)} cases",
            file=sys.stderr,
        )
        base = cases_module.build_base(work / "base", zygote.run)
        print(f"valid artefacts made in {time.monotonic() - start:.0f} s", file=sys.stderr)
        verdicts = []
        for index, case in enumerate(cases):
            folder = work / "cases" / case.id.replace("/", "__")
            verdict = runner.run_case(case, base, zygote, folder, args.timeout_scale)
            verdicts.append(verdict)
            if not args.keep:
                shutil.rmtree(folder, ignore_errors=True)
            if not args.quiet:
                status = "ok" if verdict.ok else ",".join(dict.fromkeys(verdict.flags))
                print(
                    f"[{index + 1}/{len(cases)}] {case.id}: exit {verdict.exit} {verdict.seconds:.1f}s {status} | "
                    f"{verdict.message[:160]}",
                    file=sys.stderr,
                    flush=True,
                )
            if args.explain and not verdict.ok:
                print(verdict.explain(), file=sys.stderr, flush=True)
    finally:
        zygote.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    seconds = time.monotonic() - start
    table = tally(verdicts, cases_module.CLASSES)
    print_tally(table)
    print(f"{len(verdicts)} cases in {seconds:.0f} s against {hello['edgedit']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "edgedit": hello["edgedit"],
                    "version": hello.get("version"),
                    "python": hello["python"],
                    "memory_limit_mb": hello.get("memory_limit_mb"),
                    "cases": len(verdicts),
                    "seconds": round(seconds, 1),
                    "classes": table,
                    "results": [v.to_dict() for v in verdicts],
                },
                indent=2,
            )
        )
        print(f"wrote {args.json}")
    return 0 if all(v.ok for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
