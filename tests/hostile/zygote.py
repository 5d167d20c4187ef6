"""A pre-warmed process that runs `edgedit` command lines, each in a fresh fork.

Run as a script (`python tests/hostile/zygote.py`) by `runner.Zygote`. It imports whatever
`edgedit` the interpreter finds (so `PYTHONPATH=/old/checkout` tests old code) and the heavy
libraries once, runs no torch operation itself, and then serves requests, one JSON object per
line on stdin, one JSON reply per line on the protocol pipe:

  {"op": "hello"}                                   -> {"edgedit": path, "version": ..., "python": ...}
  {"op": "run", "argv": [...], "cwd": DIR, "timeout": S, "scratch": DIR}
                                                    -> {"rc", "signal", "hang", "stdout", "stderr", "seconds",
                                                        "peak_rss_mb", "baseline_rss_mb"}

Each command runs in a child forked from this warm process, in its own session (so a hang is
killed with everything it started), in `cwd`, with file descriptors 1 and 2 redirected to files
(what a user's terminal would show, C-level library output included), an address-space limit
(a memory bomb fails instead of taking the machine) and `sys.argv = ["edgedit", *argv]`, through
`edgedit.cli.main`, the console script's entry point. Nothing here uses edgedit beyond that.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import resource
import signal
import sys
import time
import traceback

OUTPUT_LIMIT = 64 * 1024  # characters of stdout / stderr kept per run


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _warm() -> None:
    """Import what commands need, so that each fork starts warm. Best effort: a module that does
    not exist in this checkout is simply not pre-imported."""
    for name in (
        "numpy",
        "PIL.Image",
        "PIL.PngImagePlugin",
        "safetensors",
        "safetensors.numpy",
        "safetensors.torch",
        "torch",
        "torch.nn",
        "torch.optim",
        "torch._dynamo",
        "torch.onnx",
        "onnxscript",
        "onnx",
        "onnxruntime",
        "onnxruntime.quantization",
        "sklearn.datasets",
        "rich.progress",
        "rich.table",
    ):
        try:
            importlib.import_module(name)
        except Exception:  # warming only
            continue
    try:  # the command modules: whichever of these this checkout has
        import edgedit
        import edgedit.cli  # noqa: F401

        for name in (
            "edgedit.fileinfo",
            "edgedit.pipeline",
            "edgedit.models.checkpoint",
            "edgedit.models.dit",
            "edgedit.runtime.onnxruntime",
            "edgedit.runtime.tensorrt",
            "edgedit.models.torch_backend",
            "edgedit.train.trainer",
            "edgedit.train.distill",
            "edgedit.train.teacher",
            "edgedit.data.pairs",
            "edgedit.data.datasets",
            "edgedit.bench.harness",
            "edgedit.bench.records",
            "edgedit.bench.tegrastats",
            "edgedit.export.calib_data",
            "edgedit.export.quantize",
            "edgedit.eval.evaluate",
            "edgedit.design.sweep",
            "edgedit.cost.summary",
        ):
            try:
                importlib.import_module(name)
            except Exception:
                continue
    except Exception:  # the report says which edgedit could not be imported
        pass


def _read(path: str) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read(OUTPUT_LIMIT + 1)
    except OSError:
        return ""
    text = data[:OUTPUT_LIMIT].decode("utf-8", errors="replace")
    return text + ("\n[output cut]" if len(data) > OUTPUT_LIMIT else "")


def _child(argv: list[str], cwd: str, out: str, err: str, memory_bytes: int) -> None:
    """In the fork: never returns."""
    code = 1
    try:
        os.setsid()
        for fd, path in ((1, out), (2, err)):
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(handle, fd)
            os.close(handle)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.chdir(cwd)
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if memory_bytes > 0 and (soft == resource.RLIM_INFINITY or soft > memory_bytes):
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, hard))
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sys.argv = ["edgedit", *argv]
        from edgedit.cli import main

        try:
            main()
            code = 0
        except SystemExit as done:  # what the interpreter would do with it
            if done.code is None:
                code = 0
            elif isinstance(done.code, int):
                code = done.code
            else:
                print(done.code, file=sys.stderr)
                code = 1
    except BaseException:  # an uncaught exception: the interpreter would print it and exit 1
        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code & 0xFF)


def _run(request: dict, memory_bytes: int, baseline_kb: int) -> dict:
    scratch = request["scratch"]
    out, err = os.path.join(scratch, "stdout"), os.path.join(scratch, "stderr")
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _child(request["argv"], request["cwd"], out, err, memory_bytes)
    deadline = start + float(request["timeout"])
    hang, status, usage = False, 0, None
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            hang = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            break
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError, PermissionError):  # anything it started in its session
        os.killpg(pid, signal.SIGKILL)
    reply = {
        "rc": os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else None,
        "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        "hang": hang,
        "seconds": round(time.monotonic() - start, 3),
        "stdout": _read(out),
        "stderr": _read(err),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1) if usage else None,
        "baseline_rss_mb": round(baseline_kb / 1024, 1),
    }
    for path in (out, err):
        with contextlib.suppress(OSError):
            os.unlink(path)
    return reply


def main() -> None:
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # stray prints of imported libraries must not reach the protocol pipe
    os.close(devnull)
    _warm()
    baseline_kb = _status_kb("VmRSS")
    headroom_mb = int(os.environ.get("HOSTILE_MEMORY_HEADROOM_MB", "8192"))
    memory_bytes = (_status_kb("VmSize") * 1024 + headroom_mb * 2**20) if headroom_mb > 0 else 0
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "hello":
            try:
                import edgedit

                reply = {"edgedit": edgedit.__file__, "version": getattr(edgedit, "__version__", None)}
            except Exception as err:
                reply = {"edgedit": None, "error": f"{type(err).__name__}: {err}"}
            reply.update(
                python=sys.version.split()[0],
                baseline_rss_mb=round(baseline_kb / 1024, 1),
                memory_limit_mb=memory_bytes // 2**20,
                threads=_status_kb("Threads"),
            )
        elif request["op"] == "run":
            reply = _run(request, memory_bytes, baseline_kb)
        else:
            reply = {"error": f"unknown op {request['op']!r}"}
        protocol.write(json.dumps(reply) + "\n")


if __name__ == "__main__":
    main()
