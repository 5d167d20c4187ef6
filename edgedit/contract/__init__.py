"""The contract between the workstation and the device: what both worlds agree on, and nothing else.

The model config (`config`), the ONNX I/O contract and its metadata (`spec`, `onnx_header`), the
diffusion schedules (`schedules`), engine sidecars (`sidecar`), the INT8 layer set
(`quantization`), the deployment targets (`hardware`) and the facts of the machine (`device`,
`jetson`), with the errors, file writing and lazy imports every package uses. Torch- and onnx-free,
and it imports nothing else of edgedit's (tests/test_architecture.py).
"""
