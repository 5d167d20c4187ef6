"""`edgedit serve`: a model (ONNX or TensorRT engine) as a real-time generation service.

`batcher` gathers concurrent requests into network calls, `app` is the HTTP API and the live page,
`telemetry` the Prometheus counters and the device's RAM and power, `service` loads the model and
starts uvicorn. Torch-free: the `serve` extra (Starlette, uvicorn, prometheus-client) beside the
device side.
"""
