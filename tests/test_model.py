"""FashionCNN: every architecture of the search space builds, maps (B, 1, 28, 28) to (B, 10),
and has exactly the number of parameters its fields imply (computed here from the formulas)."""

from __future__ import annotations

import itertools

import pytest
import torch

from jahs_bohb.model import FashionCNN, count_parameters

FILTERS = (8, 24, 40)  # distinct per layer, so a wrongly wired layer changes the count
NEURONS = (512, 600)


def expected_parameters(
    n_conv_layers: int,
    kernel_size: int,
    batch_norm: bool,
    global_avg_pooling: bool,
    n_fc_layers: int,
    filters: tuple[int, ...] = FILTERS,
    neurons: tuple[int, ...] = NEURONS,
) -> int:
    """Parameter count from first principles, independent of the model code."""
    total = 0
    channels, size = 1, 28
    for out in filters[:n_conv_layers]:
        total += kernel_size * kernel_size * channels * out + out  # conv weight + bias
        if batch_norm:
            total += 2 * out  # BN weight + bias (running stats are buffers, not parameters)
        channels, size = out, size // 2  # 'same' conv, then 2x2 max-pool: 28 -> 14 -> 7 -> 3
    features = channels if global_avg_pooling else channels * size * size
    for width in neurons[:n_fc_layers]:
        total += features * width + width
        features = width
    return total + features * 10 + 10  # the classifier


def test_expected_parameters_formula_by_hand() -> None:
    # One conv 1->8 (k3) + classifier on 8*14*14 features, worked out by hand.
    assert expected_parameters(1, 3, False, False, 0) == (9 * 8 + 8) + (8 * 14 * 14 * 10 + 10)
    # Three convs end at 3x3 (7 // 2), not 4x4.
    flat, gap = (
        expected_parameters(3, 3, False, False, 0),
        expected_parameters(3, 3, False, True, 0),
    )
    assert flat - gap == 40 * 3 * 3 * 10 - 40 * 10


@pytest.mark.parametrize(
    ("n_conv_layers", "kernel_size", "batch_norm", "global_avg_pooling", "n_fc_layers"),
    list(itertools.product((1, 2, 3), (3, 5), (True, False), (True, False), (0, 1, 2))),
)
def test_every_architecture_shape_and_parameter_count(
    n_conv_layers: int,
    kernel_size: int,
    batch_norm: bool,
    global_avg_pooling: bool,
    n_fc_layers: int,
) -> None:
    torch.manual_seed(0)
    net = FashionCNN(
        n_conv_layers=n_conv_layers,
        n_filters_1=FILTERS[0],
        n_filters_2=FILTERS[1],
        n_filters_3=FILTERS[2],
        kernel_size=kernel_size,
        batch_norm=batch_norm,
        global_avg_pooling=global_avg_pooling,
        n_fc_layers=n_fc_layers,
        n_neurons_1=NEURONS[0],
        n_neurons_2=NEURONS[1],
        dropout=0.3,
    )
    x = torch.randn(3, 1, 28, 28)
    out = net(x)  # training mode: BatchNorm uses batch statistics
    assert out.shape == (3, 10)
    assert torch.isfinite(out).all()
    net.eval()
    with torch.no_grad():
        assert net(x[:1]).shape == (1, 10)  # eval mode works on a single image
    assert count_parameters(net) == expected_parameters(
        n_conv_layers, kernel_size, batch_norm, global_avg_pooling, n_fc_layers
    )


def test_fields_of_unused_layers_are_ignored() -> None:
    small = FashionCNN(n_conv_layers=1, n_filters_1=8, n_fc_layers=1, n_neurons_1=512)
    other = FashionCNN(
        n_conv_layers=1, n_filters_1=8, n_filters_2=200, n_filters_3=256, n_fc_layers=1,
        n_neurons_1=512, n_neurons_2=2048,
    )  # fmt: skip
    assert count_parameters(small) == count_parameters(other)


def test_baseline_defaults_build() -> None:
    net = FashionCNN()  # 3 convs 16/32/64, kernel 3, BatchNorm, no GAP, no hidden FC layer
    expected = expected_parameters(3, 3, True, False, 0, filters=(16, 32, 64))
    assert count_parameters(net) == expected == 29290
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert not any(isinstance(m, torch.nn.Dropout) for m in net.modules())  # no FC, so no dropout
