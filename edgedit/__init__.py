"""edgedit: design, distil and deploy small diffusion transformers (DiT-Nano) to a Jetson Orin Nano.

The package has two worlds (see README): the workstation side (torch: models, training, export)
and the device side (numpy + ONNX Runtime / TensorRT: runtime, engines, bench). Modules of the
device side never import torch or onnx; heavy dependencies are imported lazily where used.
"""

__version__ = "0.1.0"
