"""Load test of `edgedit serve` on the shipped student (ONNX Runtime CPU), against 127.0.0.1 only,
bounded in requests and time. Results: benchmarks/results/serve_load.json, tables in docs/serve.md.

    python benchmarks/serve_load.py                  # all: levels, overhead, overload, soak (~15 min)
    python benchmarks/serve_load.py --soak-s 60      # a shorter soak

1. Concurrency: 1, 2, 4, 8 and 16 closed-loop clients, each asking for one image at a time (PNG),
   against two servers started side by side, dynamic batching on and off; the levels and the two
   servers interleaved in rounds (each round: every level on both, in a shuffled order), so that
   drift of this machine lands on both alike. Throughput = images answered / seconds; p50/p99 of
   the client-side request time.
2. Overhead: requests of 8 images, one at a time: the client-side time minus the model's own time
   for that call (the X-Edgedit-Model-Ms header), as a share of the model's time: HTTP, queue and
   PNG encoding together.
3. Overload: open-loop arrivals at twice the batching server's best throughput for 20 s, with a
   small queue: counts of 200, 503 and anything else, and every image answered checked against the
   reference image of its seed (no lost or mixed-up responses).
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


def overload(url: str, rate: float, seconds: float, reference) -> dict:
    """Open loop: a request every 1/rate s whatever the answers; each image checked against its seed."""
    codes, mixed, lock = {}, [], threading.Lock()

    def one(seed: int) -> None:
        try:
            answer = httpx.post(f"{url}/v1/generate", json={"seed": seed, "format": "npy"}, timeout=60)
        except httpx.TransportError as err:
            with lock:
                codes[type(err).__name__] = codes.get(type(err).__name__, 0) + 1
            return
        with lock:
            codes[answer.status_code] = codes.get(answer.status_code, 0) + 1
        if answer.status_code == 200:
            image = np.load(io.BytesIO(answer.content), allow_pickle=False)[0]
            if answer.headers["x-edgedit-seeds"] != str(seed) or np.abs(image - reference(seed)).max() > 1e-4:
                with lock:
                    mixed.append(seed)

    count = int(rate * seconds)
    with ThreadPoolExecutor(64) as pool:
        started = time.monotonic()
        for k in range(count):
            delay = started + k / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(one, 5 * 10**8 + k)
    answered = {str(k): v for k, v in codes.items()}
    return {"offered_per_s": rate, "seconds": seconds, "requests": count, "codes": answered, "mixed_up": len(mixed)}


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0, help="per level and round")
    parser.add_argument("--soak-s", type=float, default=600.0)
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "benchmarks/results/serve_load.json")
    args = parser.parse_args()

    from edgedit.assets import STUDENT_DIGITS
    from edgedit.serve.service import ServeOptions, Service

    work = Path(tempfile.mkdtemp(prefix="serve-load-"))
    onnx = work / "student.onnx"
    subprocess.run(
        [sys.executable, "-m", "edgedit", "export", str(STUDENT_DIGITS), "-o", str(onnx), "--dynamic-batch", "1:8:16"],
        check=True,
        capture_output=True,
    )
    result_waits = waits(onnx, args.rounds, args.seconds)
    servers = {"batching": start_server(onnx), "no batching": start_server(onnx, "--no-batching")}
    urls = {mode: url for mode, (_, url) in servers.items()}
    result = {"machine": f"{os.cpu_count()} cores", "model": "shipped digits student, ONNX Runtime CPU FP32"}
    result["waits_at_8_clients"] = result_waits
    try:
        for url in urls.values():  # warm: sessions, thread pools, connections
            closed_loop(url, 4, 2.0, first_seed=9 * 10**8)
        result["levels"] = levels(urls, args.rounds, args.seconds)
        result["overhead"] = overhead(urls["batching"])
        service = Service(onnx, ServeOptions(backend="onnxruntime", provider="cpu"))
        best = max(v["images_per_s"] for v in result["levels"]["batching"].values())
        servers["no batching"][0].terminate()
        small, small_url = start_server(onnx, "--max-queue", "16")
        servers["small queue"] = (small, small_url)
        result["overload"] = overload(small_url, 2 * best, 20.0, lambda seed: service.run([seed], None)[0])
        pid = servers["batching"][0].pid
        result["soak"] = soak(urls["batching"], pid, args.soak_s)
    finally:
        for process, _ in servers.values():
            process.terminate()
            result.setdefault("exit_codes", []).append(process.wait(timeout=60))
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "soak"}, indent=1))
    print(f"soak: RSS {result['soak']['rss_first_mb']:.0f} -> {result['soak']['rss_last_mb']:.0f} MB")


if __name__ == "__main__":
    main()
