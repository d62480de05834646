"""JAHS-Bench-201's cell-based CNN: NAS-Bench-201's four-node cell, stacked in three stages.

Network: (resize to the resolution) -> 3x3 conv stem + batch norm -> N cells at width W -> residual
block, stride 2 -> N cells at 2W -> residual block, stride 2 -> N cells at 4W -> batch norm, activation,
global average pooling, linear. As in JAHS-Bench-201's model builder, every cell of a network has the
same six edges, each node is the sum of its incoming edges, and a conv op is activation -> conv -> BN.
One difference: Fashion-MNIST is grayscale here, so the stem has one input channel (JAHS-Bench-201
feeds three copies), 18W fewer parameters.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from jahs_bohb.cell_space import DEFAULT_CELL, EDGES, NODES, OPS, edge_nodes
from jahs_bohb.model import IMAGE_SIZE, IN_CHANNELS, NUM_CLASSES

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "hardswish": nn.Hardswish, "mish": nn.Mish}


class ConvBN(nn.Sequential):
    """activation -> conv (no bias) -> batch norm, as JAHS-Bench-201's ConvBN."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, activation: str) -> None:
        super().__init__(
            ACTIVATIONS[activation](),
            nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(c_out),
        )


def make_op(name: str, channels: int, activation: str) -> nn.Module | None:
    """One edge's operation at a width; None for zero (the edge adds nothing and is not computed)."""
    if name == "skip":
        return nn.Identity()
    if name == "conv3x3":
        return ConvBN(channels, channels, 3, 1, activation)
    if name == "conv1x1":
        return ConvBN(channels, channels, 1, 1, activation)
    if name == "avgpool3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    if name == "zero":
        return None
    raise ValueError(f"unknown cell op {name!r}; allowed: {', '.join(OPS)}")


class Cell(nn.Module):
    """NAS-Bench-201's cell: node j = sum over i < j of op_ij(node i); the output is node 4."""

    def __init__(self, cell: Mapping[str, str], channels: int, activation: str) -> None:
        super().__init__()
        self.ops = nn.ModuleDict()
        for edge in EDGES:
            op = make_op(cell[edge], channels, activation)
            if op is not None:
                self.ops[edge] = op
        self.incoming = {
            head: [e for e in EDGES if edge_nodes(e)[1] == head and e in self.ops] for head in NODES[1:]
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = {1: x}
        for head in NODES[1:]:
            terms = [self.ops[e](nodes[edge_nodes(e)[0]]) for e in self.incoming[head]]
            node = terms[0] if terms else torch.zeros_like(x)
            for term in terms[1:]:
                node = node + term
            nodes[head] = node
        return nodes[4]


class ResidualBlock(nn.Module):
    """NAS-Bench-201's reduction between stages: two ConvBNs (the first with stride 2) plus a 2x2
    average-pooled, 1x1-convolved shortcut."""

    def __init__(self, c_in: int, c_out: int, activation: str) -> None:
        super().__init__()
        self.conv_a = ConvBN(c_in, c_out, 3, 2, activation)
        self.conv_b = ConvBN(c_out, c_out, 3, 1, activation)
        self.shortcut = nn.Sequential(
            nn.AvgPool2d(2, stride=2, ceil_mode=True), nn.Conv2d(c_in, c_out, 1, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class CellNetwork(nn.Module):
    """The cell space's CNN; one constructor argument per dimension of JAHS-Bench-201's space except
    the training ones (learning rate, weight decay, TrivialAugment: conf/optimizer, conf/data)."""

    def __init__(
        self,
        cell: Mapping[str, str] | None = None,
        depth: int = 1,
        width: int = 16,
        activation: str = "relu",
        resolution: float = 1.0,
    ) -> None:
        super().__init__()
        cell = dict(DEFAULT_CELL if cell is None else cell)
        if missing := [e for e in EDGES if e not in cell]:
            raise ValueError(
                f"model.cell lacks {', '.join(missing)}; a cell has the edges {', '.join(EDGES)}"
            )
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; allowed: {', '.join(ACTIVATIONS)}")
        self.size = round(IMAGE_SIZE * resolution)  # 7, 14 or 28 pixels a side
        widths = (width, 2 * width, 4 * width)
        layers: list[nn.Module] = [
            nn.Conv2d(IN_CHANNELS, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
        ]
        for stage, channels in enumerate(widths):
            if stage > 0:
                layers.append(ResidualBlock(widths[stage - 1], channels, activation))
            layers += [Cell(cell, channels, activation) for _ in range(depth)]
        layers += [
            nn.BatchNorm2d(widths[-1]),
            ACTIVATIONS[activation](),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(widths[-1], NUM_CLASSES),
        ]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.size:  # as JAHS-Bench-201's Resize: bilinear, antialiased
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True)
        return self.layers(x)
