"""The device side's runtime: what runs a model on a Jetson. Torch-free and onnx-free.

It imports with neither torch nor onnx installed (a test proves it), so it fits an L4T
container where torch would cost hundreds of MB of the 8 GB shared memory.
"""
