"""Run hostile cases and judge them against edgedit's promises. Shared by tests/hostile/test_hostile.py
and benchmarks/hostile_sweep.py; imports nothing from edgedit (commands run in `zygote.py`).

The promise for bad input: exit code 2, exactly one line on stderr starting `edgedit: error:`
(no traceback, not an internal error) that names the offending file or option, nothing written,
nothing lost (every input file byte for byte, not even rewritten in place), in bounded time and
memory.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_TIMEOUT_S = float(os.environ.get("HOSTILE_TIMEOUT_S", "30"))
# A refusal needs next to no memory: more than this over the warm process is a failure ("memory").
MEMORY_GROWTH_MB = float(os.environ.get("HOSTILE_MEMORY_GROWTH_MB", "512"))


class Zygote:
    """A warm `zygote.py` process: `run(argv, cwd)` forks it for one command line."""

    def __init__(self, python: str = sys.executable, env: dict | None = None):
        env = dict(os.environ if env is None else env)
        # Tiny models on a shared 2-core machine: one intra-op thread is 10-100x faster than a
        # spinning OpenMP pool, and it changes nothing of what a command refuses.
        env.setdefault("OMP_NUM_THREADS", "1")
        env.setdefault("MKL_NUM_THREADS", "1")
        env.setdefault("COLUMNS", "120")
        self.scratch = Path(tempfile.mkdtemp(prefix="edgedit-zygote-"))
        self.log = open(self.scratch / "zygote.log", "w")  # noqa: SIM115  (closed in close())
        self.process = subprocess.Popen(
            [python, str(HERE / "zygote.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            bufsize=1,
            cwd=self.scratch,
            env=env,
        )
        self.lock = threading.Lock()
        self.hello = self._ask({"op": "hello"}, timeout=600)
        if not self.hello.get("edgedit"):
            self.close()
            raise RuntimeError(f"the zygote could not import edgedit: {self.hello}")

    def _ask(self, request: dict, timeout: float) -> dict:
        with self.lock:
            assert self.process.stdin is not None and self.process.stdout is not None
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            ready, _, _ = select.select([self.process.stdout], [], [], timeout)
            if not ready:  # the zygote itself is stuck (it kills hung commands itself): give up on it
                self.process.kill()
                raise RuntimeError(f"the zygote did not answer within {timeout:.0f} s")
            line = self.process.stdout.readline()  # it writes whole lines
        if not line:
            log = (self.scratch / "zygote.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the zygote died (exit {self.process.poll()}): {log}")
        return json.loads(line)

    def run(self, argv: list[str], cwd: str | os.PathLike, timeout: float = DEFAULT_TIMEOUT_S) -> dict:
        request = {
            "op": "run",
            "argv": [str(a) for a in argv],
            "cwd": str(cwd),
            "timeout": timeout,
            "scratch": str(self.scratch),
        }
        return self._ask(request, timeout + 60)

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        shutil.rmtree(self.scratch, ignore_errors=True)


#################################################################################
#                          What a run did to its folder                         #
#################################################################################


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every entry under `folder` (hidden ones included, nothing ignored): files by sha256, size,
    inode and mtime (a rewrite with the same bytes still shows); folders, links and special files
    (a FIFO a case planted: reading it would block) by kind."""
    entries: dict[str, tuple] = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root) / name
            rel = str(path.relative_to(folder))
            if path.is_symlink():
                entries[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                entries[rel] = ("dir",)
            elif not stat.S_ISREG((st := path.stat()).st_mode):
                entries[rel] = ("special", stat.S_IFMT(st.st_mode), st.st_ino)
            else:
                digest = hashlib.sha256()
                with open(path, "rb") as f:
                    while chunk := f.read(1 << 20):
                        digest.update(chunk)
                entries[rel] = ("file", digest.hexdigest(), st.st_size, st.st_ino, st.st_mtime_ns)
    return entries


def _short(names: list[str], limit: int = 4) -> str:
    return ", ".join(names[:limit]) + (f" (+{len(names) - limit})" if len(names) > limit else "")


@dataclass
class Verdict:
    case_id: str
    cls: str
    exit: str  # "0", "1", "2", another code, "hang" or "signal N"
    stderr: str
    stdout: str
    seconds: float
    problems: list[str] = field(default_factory=list)  # empty: every promise kept
    flags: list[str] = field(default_factory=list)  # machine-readable kinds of the problems
    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    peak_growth_mb: float | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def message(self) -> str:
        """The first stderr line (what a user reads), cut to 300 characters."""
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return lines[0][:300] if lines else ""

    def to_dict(self) -> dict:
        return {
            "id": self.case_id,
            "class": self.cls,
            "exit": self.exit,
            "ok": self.ok,
            "flags": self.flags,
            "problems": self.problems,
            "message": self.message,
            "stderr_lines": len(self.stderr.splitlines()),
            "seconds": self.seconds,
            "new": self.new,
            "changed": self.changed,
            "peak_growth_mb": self.peak_growth_mb,
        }

    def explain(self) -> str:
        tail = "\n".join(self.stderr.strip().splitlines()[-12:])
        return (
            f"{self.case_id}: " + "; ".join(self.problems) + f"\n--- exit {self.exit}, {self.seconds:.1f} s, "
            f"stderr ({len(self.stderr.splitlines())} lines, last 12):\n{tail}"
        )


def judge(case, result: dict, before: dict, after: dict) -> Verdict:
    """Check one run of `case` against every promise."""
    stderr, stdout = result["stderr"], result["stdout"]
    if result["hang"]:
        code = "hang"
    elif result["signal"] is not None:
        code = f"signal {result['signal']}"
    else:
        code = str(result["rc"])
    v = Verdict(case.id, case.cls, code, stderr, stdout, result["seconds"])

    def problem(flag: str, text: str) -> None:
        v.flags.append(flag)
        v.problems.append(text)

    if code == "hang":
        problem("hang", f"hang: still running after {result['seconds']:.0f} s (killed)")
    elif code.startswith("signal"):
        problem("crash", f"killed by {code}")
    elif code != "2":
        problem(f"exit-{code}", f"exit code {code}, expected 2")
    if "Traceback (most recent call last)" in stderr:
        problem("traceback", "a traceback on stderr")
    if "internal error" in stderr:
        problem("internal-error", "an internal error (a bug), not a refusal")
    lines = stderr.splitlines()
    if code == "2":  # a refusal: is it the one line the user should read?
        if len(lines) != 1 or not lines[0].strip():
            problem("not-one-line", f"stderr has {len(lines)} lines, expected exactly one")
        first = lines[0] if lines else ""
        if not first.startswith("edgedit: error:"):
            problem("no-error-line", f"stderr does not start with 'edgedit: error:' (starts {first[:80]!r})")
        elif case.names and not any(name in first for name in case.names):
            problem("unnamed", f"the error names none of {', '.join(map(repr, case.names))}")
    v.new = sorted(set(after) - set(before))
    v.changed = sorted(k for k in before if after.get(k) != before[k])
    if v.new:
        problem("wrote-files", f"new in the folder: {_short(v.new)}")
    if v.changed:
        problem("changed-inputs", f"inputs changed, rewritten or removed: {_short(v.changed)}")
    if result.get("peak_rss_mb") is not None:
        v.peak_growth_mb = round(result["peak_rss_mb"] - result["baseline_rss_mb"], 1)
        if v.peak_growth_mb > MEMORY_GROWTH_MB:
            problem("memory", f"peak RSS grew by {v.peak_growth_mb:.0f} MB (over {MEMORY_GROWTH_MB:.0f} MB)")
    return v


def run_case(case, base, zygote: Zygote, folder: Path, timeout_scale: float = 1.0) -> Verdict:
    """Build the case's hostile files in `folder` (empty), run its command there, judge it."""
    folder.mkdir(parents=True, exist_ok=True)
    case.build(folder, base)
    before = snapshot(folder)
    result = zygote.run(list(case.argv), folder, (case.timeout or DEFAULT_TIMEOUT_S) * timeout_scale)
    after = snapshot(folder)
    return judge(case, result, before, after)
