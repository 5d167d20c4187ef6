"""What a network costs: exact parameters, MACs and memory (`accounting`), the kernels TensorRT runs
for it (`kernels`), and its estimated latency on a Jetson Orin Nano (`latency`, calibrated by
`calibration` on public measurements and the user's own device runs). Torch-free."""
