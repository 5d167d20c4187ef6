"""Load test of `edgedit serve` on the shipped student (ONNX Runtime CPU), against 127.0.0.1 only,
bounded in requests and time. Results: benchmarks/results/serve_load.json, tables in docs/serve.md.

    python benchmarks/serve_load.py                  # all: levels, overhead, overload, soak (~15 min)
    python benchmarks/serve_load.py --soak-s 60      # a shorter soak
    python benchmarks/serve_load.py --report benchmarks/results/serve_load.json   # docs/serve.md's tables

1. Concurrency: 1, 2, 4, 8 and 16 closed-loop clients, each asking for one image at a time (PNG),
   against two servers started side by side, dynamic batching on and off; the levels and the two
   servers interleaved in rounds (each round: every level on both, in a shuffled order), so that
   drift of this machine lands on both alike. Throughput = images answered / seconds; p50/p99 of
   the client-side request time.
2. Overhead: requests of 8 images, one at a time: the client-side time minus the model's own time
   for that call (the X-Edgedit-Model-Ms header), as a share of the model's time: HTTP, queue and
   PNG encoding together.
3. Overload: twice the clients at which the batching server's throughput peaked, for 20 s, against
   a queue of 8 images (fewer places than clients): counts of 200, 503 and anything else, and every
   image answered checked against the reference image of its seed (no lost or mixed-up responses).
   (An open-loop generator in Python could not offer more than the server takes on two shared
   cores: it measured its own limits.)
4. Soak: 8 clients for --soak-s seconds against the batching server, its RSS sampled every 5 s.
Clients and servers share this machine's cores: on the 2-core VM the clients take some of the
server's CPU, which the tables say.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LEVELS = (1, 2, 4, 8, 16)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(onnx: Path, *args: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "edgedit", "serve", str(onnx), "--port", str(port), "--provider", "cpu", *args],
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"serve_load: the server did not start: {process.stderr.read()[-500:]}")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def closed_loop(url: str, clients: int, seconds: float, first_seed: int) -> dict:
    """`clients` threads, each sending its next request when the last one is answered."""
    latencies, codes, lock = [], {}, threading.Lock()
    stop = time.monotonic() + seconds

    def client(k: int) -> None:
        seed = first_seed + k * 1_000_000
        with httpx.Client(timeout=30) as http:
            while time.monotonic() < stop:
                started = time.perf_counter()
                answer = http.post(f"{url}/v1/generate", json={"seed": seed})
                elapsed = time.perf_counter() - started
                with lock:
                    codes[answer.status_code] = codes.get(answer.status_code, 0) + 1
                    if answer.status_code == 200:
                        latencies.append(elapsed)
                seed += 1

    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    wall = time.monotonic() - started
    ms = np.array(latencies) * 1e3
    return {
        "clients": clients,
        "images_per_s": len(latencies) / wall,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "requests": len(latencies),
        "codes": {str(k): v for k, v in codes.items()},
    }


def levels(urls: dict[str, str], rounds: int, seconds: float) -> dict:
    runs = {(mode, c): [] for mode in urls for c in LEVELS}
    rng = random.Random(0)
    for r in range(rounds):
        order = list(runs)
        rng.shuffle(order)
        for mode, clients in order:
            runs[(mode, clients)].append(closed_loop(urls[mode], clients, seconds, first_seed=r * 10**8))
            print(
                f"round {r + 1}: {mode} x{clients}: {runs[(mode, clients)][-1]['images_per_s']:.0f} img/s", flush=True
            )
    table = {}
    for (mode, clients), done in runs.items():
        table.setdefault(mode, {})[clients] = {
            "images_per_s": float(np.median([d["images_per_s"] for d in done])),
            "p50_ms": float(np.median([d["p50_ms"] for d in done])),
            "p99_ms": float(np.median([d["p99_ms"] for d in done])),
            "rounds": len(done),
            "codes": {k: sum(d["codes"].get(k, 0) for d in done) for k in {k for d in done for k in d["codes"]}},
        }
    return table


def overhead(url: str, requests: int = 200) -> dict:
    shares, server_shares, totals, servers, models = [], [], [], [], []
    with httpx.Client(timeout=30) as http:
        for i in range(requests):
            started = time.perf_counter()
            answer = http.post(f"{url}/v1/generate", json={"seed": 10**7 + 8 * i, "n": 8})
            total = (time.perf_counter() - started) * 1e3
            model, server = float(answer.headers["x-edgedit-model-ms"]), float(answer.headers["x-edgedit-server-ms"])
            assert answer.status_code == 200 and answer.headers["x-edgedit-batch"] == "8"
            totals.append(total)
            servers.append(server)
            models.append(model)
            shares.append((total - model) / model)
            server_shares.append((server - model) / model)
    return {
        "requests": requests,
        "images_per_request": 8,
        "request_ms_p50": float(np.median(totals)),
        "model_ms_p50": float(np.median(models)),
        "server_ms_p50": float(np.median(servers)),
        "overhead_share_p50": float(np.median(shares)),  # seen by the client: its HTTP stack included
        "server_overhead_share_p50": float(np.median(server_shares)),  # queue, PNG and JSON, in the server
    }


def waits(onnx: Path, rounds: int, seconds: float, clients: int = 8) -> dict:
    """The wait bound at `clients` clients: one server per bound, interleaved in rounds."""
    servers = {w: start_server(onnx, "--max-wait-ms", str(w)) for w in (0.0, 1.0, 2.0, 5.0)}
    try:
        runs = {w: [] for w in servers}
        for r in range(rounds):
            for w in random.Random(r).sample(list(servers), len(servers)):
                runs[w].append(closed_loop(servers[w][1], clients, seconds, first_seed=3 * 10**8 + r * 10**7))
        return {
            str(w): {k: float(np.median([d[k] for d in done])) for k in ("images_per_s", "p50_ms", "p99_ms")}
            for w, done in runs.items()
        }
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(timeout=60)


def overload(url: str, clients: int, seconds: float, reference) -> dict:
    """Twice the clients at which throughput stops growing, against a small queue: closed-loop
    clients (each asks again as soon as it is answered, a 503 included), every image answered then
    checked against the reference image of its seed."""
    answers, lock = [], threading.Lock()
    stop = time.monotonic() + seconds

    def client(k: int) -> None:
        seed = 5 * 10**8 + k * 10**6
        with httpx.Client(timeout=60) as http:
            while time.monotonic() < stop:
                try:
                    answer = http.post(f"{url}/v1/generate", json={"seed": seed, "format": "npy"})
                    got = (seed, answer.status_code, answer.headers.get("x-edgedit-seeds"), answer.content)
                except httpx.TransportError as err:
                    got = (seed, type(err).__name__, None, b"")
                with lock:
                    answers.append(got)
                seed += 1

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    codes, mixed = {}, 0
    for seed, code, seeds, content in answers:
        codes[str(code)] = codes.get(str(code), 0) + 1
        if code == 200:
            image = np.load(io.BytesIO(content), allow_pickle=False)[0]
            mixed += seeds != str(seed) or np.abs(image - reference(seed)).max() > 1e-4
    return {"clients": clients, "seconds": seconds, "requests": len(answers), "codes": codes, "mixed_up": int(mixed)}


def soak(url: str, pid: int, seconds: float) -> dict:
    samples, stop = [], threading.Event()

    def sample() -> None:
        started = time.monotonic()
        while not stop.is_set():
            samples.append((round(time.monotonic() - started, 1), rss_mb(pid)))
            stop.wait(5)

    sampler = threading.Thread(target=sample)
    sampler.start()
    load = closed_loop(url, 8, seconds, first_seed=7 * 10**8)
    stop.set()
    sampler.join()
    return {
        "seconds": seconds,
        "load": load,
        "rss_mb": samples,
        "rss_first_mb": samples[0][1],
        "rss_last_mb": samples[-1][1],
    }


def markdown(result: dict) -> str:
    """The tables docs/serve.md shows, from a results file."""
    levels, single = result["levels"], result["levels"]["no batching"]["1"]
    lines = [
        "| clients | batching: img/s | p50 ms | p99 ms | no batching: img/s | p50 ms | p99 ms "
        "| batching / sequential b1 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for clients in map(str, LEVELS):
        on, off = levels["batching"][clients], levels["no batching"][clients]
        lines.append(
            f"| {clients} | {on['images_per_s']:.0f} | {on['p50_ms']:.2f} | {on['p99_ms']:.2f} | "
            f"{off['images_per_s']:.0f} | {off['p50_ms']:.2f} | {off['p99_ms']:.2f} | "
            f"{on['images_per_s'] / single['images_per_s']:.2f}x |"
        )
    lines += ["", "| --max-wait-ms (8 clients) | img/s | p50 ms | p99 ms |", "|---|---|---|---|"]
    lines += [
        f"| {w} | {v['images_per_s']:.0f} | {v['p50_ms']:.2f} | {v['p99_ms']:.2f} |"
        for w, v in result["waits_at_8_clients"].items()
    ]
    o, q, k = result["overhead"], result["overload"], result["soak"]
    lines += [
        "",
        f"Overhead at batch 8 (requests of 8 images, one at a time, p50 of {o['requests']}): model "
        f"{o['model_ms_p50']:.2f} ms, server {o['server_ms_p50']:.2f} ms (arrival to response built: "
        f"+{o['server_overhead_share_p50']:.0%} of the model's time), client {o['request_ms_p50']:.2f} ms "
        f"(+{o['overhead_share_p50']:.0%}, its own HTTP stack included).",
        "",
        f"Overload: {q['clients']} closed-loop clients for {q['seconds']:.0f} s (twice the clients of the best "
        f"throughput above) against a server whose queue holds 8 images, {q['requests']} requests: "
        + ", ".join(f"{n} x {code}" for code, n in sorted(q["codes"].items()))
        + f"; images not those of their seed: {q['mixed_up']}.",
        "",
        f"Soak: {k['seconds']:.0f} s at 8 clients, {k['load']['images_per_s']:.0f} img/s (p50 {k['load']['p50_ms']:.2f}"
        f" ms, p99 {k['load']['p99_ms']:.2f} ms); server RSS first {k['rss_first_mb']:.1f} MB, last "
        f"{k['rss_last_mb']:.1f} MB, highest {max(r for _, r in k['rss_mb']):.1f} MB ({len(k['rss_mb'])} samples).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, help="Print docs/serve.md's tables from this results file and stop.")
    parser.add_argument(
        "--parts", default="waits,levels,overhead,overload,soak", help="Which to run (the others are kept from -o)."
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0, help="per level and round")
    parser.add_argument("--soak-s", type=float, default=600.0)
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "benchmarks/results/serve_load.json")
    args = parser.parse_args()
    if args.report:
        print(markdown(json.loads(args.report.read_text())), end="")
        return

    from edgedit.assets import STUDENT_DIGITS
    from edgedit.serve.service import ServeOptions, Service

    work = Path(tempfile.mkdtemp(prefix="serve-load-"))
    onnx = work / "student.onnx"
    subprocess.run(
        [sys.executable, "-m", "edgedit", "export", str(STUDENT_DIGITS), "-o", str(onnx), "--dynamic-batch", "1:8:16"],
        check=True,
        capture_output=True,
    )
    parts = set(args.parts.split(","))
    result = json.loads(args.output.read_text()) if args.output.exists() else {}
    result.update(machine=f"{os.cpu_count()} cores", model="shipped digits student, ONNX Runtime CPU FP32")
    if "waits" in parts:
        result["waits_at_8_clients"] = waits(onnx, args.rounds, args.seconds)
    servers = {"batching": start_server(onnx), "no batching": start_server(onnx, "--no-batching")}
    urls = {mode: url for mode, (_, url) in servers.items()}
    result["exit_codes"] = []
    try:
        for url in urls.values():  # warm: sessions, thread pools, connections
            closed_loop(url, 4, 2.0, first_seed=9 * 10**8)
        if "levels" in parts:
            result["levels"] = levels(urls, args.rounds, args.seconds)
        if "overhead" in parts:
            result["overhead"] = overhead(urls["batching"])
        servers["no batching"][0].terminate()
        if "overload" in parts:
            service = Service(onnx, ServeOptions(backend="onnxruntime", provider="cpu"))
            saturated = max(result["levels"]["batching"], key=lambda c: result["levels"]["batching"][c]["images_per_s"])
            servers["small queue"] = start_server(onnx, "--max-queue", "8")  # fewer places than clients
            reference = lambda seed: service.run([seed], None)[0]  # noqa: E731
            result["overload"] = overload(servers["small queue"][1], 2 * int(saturated), 20.0, reference)
        if "soak" in parts:
            result["soak"] = soak(urls["batching"], servers["batching"][0].pid, args.soak_s)
    finally:
        for process, _ in servers.values():
            process.terminate()
            result["exit_codes"].append(process.wait(timeout=60))
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(result), end="")


if __name__ == "__main__":
    main()
