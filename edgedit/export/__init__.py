"""Workstation: a trained model to the files the device runs: ONNX export with parity checks, INT8
calibration data and Q/DQ quantization."""
