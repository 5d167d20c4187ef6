"""The function a deployed model computes, as a torch module: named inputs in the order of
`edgedit.contract.spec.io_spec`, one output. `edgedit export` traces it and the torch backend
runs it, so torch and ONNX compute exactly the same thing (EDM preconditioning included)."""

from __future__ import annotations

import torch
import torch.nn as nn

from edgedit.contract.spec import io_spec
from edgedit.models.dit import DiT
from edgedit.models.edm import edm_denoise


class DeployableDiT(nn.Module):
    def __init__(self, net: DiT):
        super().__init__()
        self.net = net
        self.input_names = [s.name for s in io_spec(net.config)[0]]

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        args = dict(zip(self.input_names, inputs))
        y = args["y"].long() if "y" in args else None  # int32 at the interface, int64 for nn.Embedding
        diffusion = self.net.config.diffusion
        if diffusion == "one-step":
            return self.net(args["z"], y=y)
        if diffusion == "edm":
            return edm_denoise(self.net, args["x"], args["sigma"], y)
        return self.net(args["x"], args["t"], y)


def example_inputs(net: DiT, batch: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random inputs of the interface's shapes and dtypes; an EDM denoiser gets noisy images at
    noise levels spanning its schedule (0.002 .. 80)."""
    gen = torch.Generator().manual_seed(seed)
    specs = io_spec(net.config)[0]
    values = {}
    for spec in specs:
        shape = spec.concrete(batch)
        if spec.name == "y":
            values["y"] = torch.randint(0, net.config.num_classes, shape, generator=gen, dtype=torch.int32)
        elif spec.name == "sigma":
            values["sigma"] = torch.exp(torch.empty(shape).uniform_(-6.2, 4.4, generator=gen))
        elif spec.name == "t":
            values["t"] = torch.rand(shape, generator=gen) * 999
        else:
            values[spec.name] = torch.randn(shape, generator=gen)
    if "sigma" in values:  # x = image + sigma * noise
        values["x"] = values["x"].clamp(-1, 1) + values["sigma"].reshape(-1, 1, 1, 1) * torch.randn(
            values["x"].shape, generator=gen
        )
    return tuple(values[s.name] for s in specs)
