"""`edgedit serve` on the shipped student through ONNX Runtime CPU: the API's round trips against
`edgedit sample`, hostile requests, overload and drain."""

import base64
import contextlib
import io
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient
from typer.testing import CliRunner

import edgedit.assets
from edgedit.cli import app as cli
from edgedit.runtime.images import to_uint8
from edgedit.serve.app import Limits
from edgedit.serve.service import ServeOptions, make_app

runner = CliRunner()


@pytest.fixture(scope="module")
def student_onnx(tmp_path_factory):
    """The shipped student exported once, with a dynamic batch of 1..16 (`edgedit export --dynamic-batch`)."""
    out = tmp_path_factory.mktemp("serve") / "student.onnx"
    result = runner.invoke(
        cli, ["export", str(edgedit.assets.STUDENT_DIGITS), "-o", str(out), "--dynamic-batch", "1:8:16"]
    )
    assert result.exit_code == 0, result.output
    return out


def sampled(onnx, seed: int, n: int, batch: int, tmp_path) -> np.ndarray:
    """What `edgedit sample --npz` makes of these seeds at this batch size."""
    npz = tmp_path / f"s{seed}-{n}-{batch}.npz"
    args = ["sample", str(onnx), "-n", str(n), "--batch", str(batch), "--seed", str(seed)]
    result = runner.invoke(cli, [*args, "-o", str(tmp_path / "g.png"), "--npz", str(npz)])
    assert result.exit_code == 0, result.output
    return np.load(npz)["images"]


def client(onnx, **options) -> TestClient:
    return TestClient(make_app(onnx, ServeOptions(backend="onnxruntime", provider="cpu", **options))[0])


@contextlib.contextmanager
def served(onnx, **options):
    """A real uvicorn server in a thread (concurrent requests meet in its event loop), its URL."""
    import uvicorn

    port = free_port()
    app = make_app(onnx, ServeOptions(backend="onnxruntime", provider="cpu", **options))[0]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def npy(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.load(io.BytesIO(response.content), allow_pickle=False)


def test_the_same_seed_gives_the_bytes_sample_gives(student_onnx, tmp_path):
    reference = sampled(student_onnx, 40, 4, 4, tmp_path)
    with client(student_onnx) as c:
        images = npy(c.post("/v1/generate", json={"seed": 40, "n": 4, "format": "npy"}))
        assert images.dtype == np.float32 and images.tobytes() == reference.tobytes()  # one call of 4, as sample's
        one = c.post("/v1/generate", json={"seed": 41})
        assert one.headers["content-type"] == "image/png" and one.headers["x-edgedit-seeds"] == "41"
        alone = sampled(student_onnx, 41, 1, 1, tmp_path)
        pixels = np.asarray(Image.open(io.BytesIO(one.content)))
        assert np.array_equal(pixels, to_uint8(alone)[0][..., 0])  # the PNG is sample's conversion of that image
        several = c.post("/v1/generate", json={"seeds": [40, 41, 42, 43]}).json()
        assert several["seeds"] == [40, 41, 42, 43] and several["classes"] == [0, 1, 2, 3]  # seed % 10, as sample
        pngs = [np.asarray(Image.open(io.BytesIO(base64.b64decode(p)))) for p in several["images"]]
        assert np.array_equal(np.stack(pngs), to_uint8(reference)[..., 0])


def test_a_class_is_every_images_class(student_onnx):
    with client(student_onnx) as c:
        body = c.post("/v1/generate", json={"seed": 5, "n": 3, "class": 7}).json()
        assert body["classes"] == [7, 7, 7]
        four = npy(c.post("/v1/generate", json={"seed": 5, "n": 3, "class": 7, "format": "npy"}))
        default = npy(c.post("/v1/generate", json={"seed": 5, "n": 3, "format": "npy"}))
        assert not np.array_equal(four, default)  # the class reached the network


def test_batched_with_strangers_an_image_stays_within_one_grey_level(student_onnx, tmp_path):
    """Dynamic batching puts a request's seeds in a call with other requests' seeds (another batch
    size than `sample` used): the network is per-image, so only the arithmetic's order may differ."""
    with served(student_onnx, max_wait_ms=200) as url, ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda s: httpx.post(f"{url}/v1/generate", json={"seed": s, "format": "npy"}), range(100, 108))
        )
    batches = [int(a.headers["x-edgedit-batch"]) for a in answers]
    assert max(batches) > 1, batches  # they did meet
    alone = sampled(student_onnx, 100, 8, 1, tmp_path)  # each seed in a call of its own
    made = np.concatenate([npy(a) for a in answers])
    assert np.abs(to_uint8(made).astype(int) - to_uint8(alone).astype(int)).max() <= 1
    assert np.abs(made - alone).max() < 1e-4  # float32 rounding of a differently blocked GEMM


@pytest.mark.parametrize(
    "body, headers, status, message",
    [
        (b"{not json", None, 400, "not JSON"),
        (b'{"seed": -1}', None, 400, "seed: Input should be greater than or equal to 0"),
        (b'{"seed": 1, "seeds": [2]}', None, 400, "either 'seed'"),
        (b'{"seeds": []}', None, 400, "seeds"),
        (b'{"seed": 1, "n": 65}', None, 400, "at most 64 per request"),
        (b'{"seed": 1, "class": 10}', None, 400, "outside this model's classes 0..9"),
        (b'{"seed": 1, "format": "gif"}', None, 400, "format"),
        (b'{"seed": 1, "steps": 5}', None, 400, "steps: Extra inputs are not permitted"),
        (b'{"seed": "7"}', None, 400, "seed"),
        (b"[1, 2]", None, 400, "Input should be"),
        (b'{"seed": 9223372036854775807, "n": 2}', None, 400, "seeds end beyond"),
        (b'{"seed": 1}', {"content-type": "text/plain"}, 415, "must be JSON"),
        (b'{"seed": 1, "pad": "' + b"x" * 20_000 + b'"}', None, 413, "over 16384 bytes"),
    ],
)
def test_a_bad_request_is_one_line_and_the_server_stays_up(student_onnx, body, headers, status, message):
    with client(student_onnx) as c:
        answer = c.post("/v1/generate", content=body, headers=headers or {"content-type": "application/json"})
        assert answer.status_code == status and message in answer.text and answer.text.count("\n") == 1
        assert c.post("/v1/generate", json={"seed": 1}).status_code == 200
        assert f'edgedit_requests_total{{code="{status}"}} 1.0' in c.get("/metrics").text


def test_overload_is_503_with_retry_after_and_nothing_is_mixed_up(student_onnx, tmp_path, monkeypatch):
    import edgedit.serve.service

    real = edgedit.serve.service.Service.run

    def slow(self, seeds, labels):
        time.sleep(0.05)  # a slow device: the queue fills
        return real(self, seeds, labels)

    monkeypatch.setattr(edgedit.serve.service.Service, "run", slow)
    with served(student_onnx, max_queue_images=8, max_wait_ms=1) as url, ThreadPoolExecutor(32) as pool:
        answers = list(
            pool.map(
                lambda s: httpx.post(f"{url}/v1/generate", json={"seed": s, "format": "npy"}, timeout=60), range(64)
            )
        )
    codes = [a.status_code for a in answers]
    assert set(codes) == {200, 503} and codes.count(503) > 0, codes
    assert all(int(a.headers["retry-after"]) >= 1 for a in answers if a.status_code == 503)
    reference = sampled(student_onnx, 0, 64, 1, tmp_path)
    for seed, answer in enumerate(answers):  # each image is its own seed's, whichever batch made it
        if answer.status_code == 200:
            assert answer.headers["x-edgedit-seeds"] == str(seed)
            assert np.abs(npy(answer)[0] - reference[seed]).max() < 1e-4


def test_health_metrics_and_the_page(student_onnx):
    with client(student_onnx) as c:
        assert c.get("/healthz").json()["status"] == "ok"
        c.post("/v1/generate", json={"seed": 1, "n": 3})
        metrics = c.get("/metrics")
        assert metrics.headers["content-type"].startswith("text/plain")
        for series in (
            "edgedit_images_total 3.0",
            "edgedit_queue_images 0.0",
            'edgedit_batch_images_bucket{le="4.0"} 1.0',
        ):
            assert series in metrics.text
        assert "edgedit_request_seconds_count 1.0" in metrics.text
        stats = c.get("/v1/stats").json()
        assert stats["batches"] == {"3": 1} and stats["max_batch"] == 16 and stats["requests"] == 1
        page = c.get("/").text
        assert "/v1/generate" in page and "/v1/stats" in page and "http" not in page.split("<script>")[1]  # no CDN


def test_a_model_that_cannot_load_stops_startup_with_one_line(tmp_path):
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    for model in (tmp_path / "missing.onnx", tmp_path / "bad.onnx"):
        result = runner.invoke(cli, ["serve", str(model), "--port", "1"])
        assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.output
        assert str(model) in result.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigterm_drains_in_flight_requests_and_exits_0(student_onnx):
    """Requests waiting in the queue when SIGTERM comes are answered (200), then the server exits 0."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "edgedit", "serve", str(student_onnx), "--port", str(port), "--max-wait-ms", "1000"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        answers = []
        threads = [
            threading.Thread(
                target=lambda s=s: answers.append(httpx.post(f"{url}/v1/generate", json={"seed": s}, timeout=60))
            )
            for s in range(4)
        ]  # 4 images < the batch of 16: they wait up to 1 s for company
        for t in threads:
            t.start()
        while "edgedit_queue_images 4.0" not in httpx.get(f"{url}/metrics").text:
            time.sleep(0.01)
        server.send_signal(signal.SIGTERM)  # all four are queued, none answered yet
        for t in threads:
            t.join(timeout=60)
        assert server.wait(timeout=60) == 0, server.stderr.read()
        assert [a.status_code for a in answers] == [200] * 4  # drained, not dropped
        assert {a.headers["x-edgedit-batch"] for a in answers} == {"4"}
    finally:
        if server.poll() is None:
            server.kill()


def test_the_default_address_is_loopback_only():
    import inspect

    from edgedit.cli.serve import serve_command

    assert inspect.signature(serve_command).parameters["host"].default == "127.0.0.1"
    assert json.dumps(Limits().__dict__)  # the limits are plain numbers the docs quote
