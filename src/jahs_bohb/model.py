"""The seed's CNN: conv blocks, optional global average pooling, FC layers, classifier."""

from __future__ import annotations

from torch import nn

IMAGE_SIZE, IN_CHANNELS, NUM_CLASSES = 28, 1, 10

# A strong configuration from the region the seed found best (BN without global average pooling,
# mid-size filters and batches, one FC layer); the seed does not publish its incumbents' exact values.
# The benchmarks train it with Adam lr 1e-3, batch 128, flip and rotation on.
REFERENCE_CONFIG = {
    "n_conv_layers": 2,
    "n_filters_1": 32,
    "n_filters_2": 64,
    "kernel_size": 5,
    "batch_norm": True,
    "global_avg_pooling": False,
    "n_fc_layers": 1,
    "n_neurons_1": 1024,
    "dropout": 0.3,
}


def conv_block(in_channels: int, out_channels: int, kernel_size: int, batch_norm: bool) -> nn.Sequential:
    """conv -> ReLU -> BatchNorm (optional) -> 2x2 max-pool; 'same' padding keeps the size until the pool."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
        nn.ReLU(inplace=True),
    ]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class FashionCNN(nn.Sequential):
    """The seed's search-space CNN; one constructor argument per field of its Table 1.

    Filters and neurons are one field per layer so a sweeper can sample each one; the fields of layers
    beyond `n_conv_layers` / `n_fc_layers` are ignored.
    """

    def __init__(
        self,
        n_conv_layers: int = 3,
        n_filters_1: int = 16,
        n_filters_2: int = 32,
        n_filters_3: int = 64,
        kernel_size: int = 3,
        batch_norm: bool = True,
        global_avg_pooling: bool = False,
        n_fc_layers: int = 0,
        n_neurons_1: int = 512,
        n_neurons_2: int = 512,
        dropout: float = 0.2,
    ) -> None:
        filters = [n_filters_1, n_filters_2, n_filters_3][:n_conv_layers]
        neurons = [n_neurons_1, n_neurons_2][:n_fc_layers]
        layers: list[nn.Module] = []
        channels, size = IN_CHANNELS, IMAGE_SIZE
        for out_channels in filters:
            layers.append(conv_block(channels, out_channels, kernel_size, batch_norm))
            channels, size = out_channels, size // 2
        if global_avg_pooling:
            layers.append(nn.AdaptiveAvgPool2d(1))
            size = 1
        layers.append(nn.Flatten())
        features = channels * size * size
        for width in neurons:
            layers += [nn.Linear(features, width), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            features = width
        layers.append(nn.Linear(features, NUM_CLASSES))
        super().__init__(*layers)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
