"""Benchmark harness (device side: torch-free)."""
