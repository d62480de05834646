"""model=cell, JAHS-Bench-201's cell-based CNN: every op, depth, width and resolution builds, maps
(B, 1, 28, 28) to (B, 10) and has exactly the parameters its fields imply (computed here from the
formulas); a cell with no path from input to output is refused before any training, in one line."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from sweeps import REPO_ROOT, error_lines, run_in_process

from jahs_bohb import pipeline
from jahs_bohb.cell_network import Cell, CellNetwork, ConvBN
from jahs_bohb.cell_space import DEFAULT_CELL, DEPTHS, EDGES, OPS, RESOLUTIONS, WIDTHS, dead_cell_reason
from jahs_bohb.errors import ConfigError
from jahs_bohb.model import count_parameters

# Weights of one edge's op at C channels: a conv op is activation -> conv (no bias) -> BN (2C).
OP_PARAMETERS = {
    "skip": lambda c: 0,
    "zero": lambda c: 0,
    "conv3x3": lambda c: 9 * c * c + 2 * c,
    "conv1x1": lambda c: c * c + 2 * c,
    "avgpool3x3": lambda c: 0,
}


def expected_parameters(cell: dict[str, str], depth: int, width: int) -> int:
    """Parameter count from first principles, independent of the model code."""
    stem = 9 * width + 2 * width  # 3x3 conv from one channel, no bias; BN
    widths = (width, 2 * width, 4 * width)
    cells = sum(depth * sum(OP_PARAMETERS[cell[e]](c) for e in EDGES) for c in widths)
    residual = sum(
        9 * c_in * c_out + 2 * c_out + 9 * c_out * c_out + 2 * c_out + c_in * c_out  # conv_a, conv_b, 1x1
        for c_in, c_out in itertools.pairwise(widths)
    )
    head = 2 * widths[-1] + widths[-1] * 10 + 10  # BN, linear
    return stem + cells + residual + head


def test_expected_parameters_by_hand() -> None:
    # Width 4, one all-skip cell per stage: stem 44, residual blocks 4->8 and 8->16, head BN 32 and
    # linear 170; no cell weights.
    skip = dict.fromkeys(EDGES, "skip")
    residual = (9 * 4 * 8 + 16 + 9 * 64 + 16 + 32) + (9 * 8 * 16 + 32 + 9 * 256 + 32 + 128)
    assert expected_parameters(skip, 1, 4) == 44 + residual + 32 + 170
    # One 3x3 conv edge adds 9C^2 + 2C per cell and stage.
    conv = {**skip, "edge_1_4": "conv3x3"}
    assert expected_parameters(conv, 3, 4) - expected_parameters(skip, 3, 4) == 3 * sum(
        9 * c * c + 2 * c for c in (4, 8, 16)
    )


@pytest.mark.parametrize(("op", "depth", "width"), list(itertools.product(OPS, DEPTHS, WIDTHS)))
def test_every_op_depth_and_width_shape_and_parameter_count(op: str, depth: int, width: int) -> None:
    # The op on five edges, a skip from input to output so that every cell computes something.
    cell = {**dict.fromkeys(EDGES, op), "edge_1_4": "skip" if op == "zero" else op}
    net = CellNetwork(cell, depth=depth, width=width)
    assert count_parameters(net) == expected_parameters(cell, depth, width)
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_each_resolution_resizes_the_images_the_cells_see(resolution: float) -> None:
    net = CellNetwork(DEFAULT_CELL, depth=1, width=4, resolution=resolution).eval()
    seen: list[tuple[int, ...]] = []
    first_cell = net.layers[2]
    first_cell.register_forward_hook(lambda module, args, out: seen.append(tuple(args[0].shape)))
    assert net(torch.randn(3, 1, 28, 28)).shape == (3, 10)
    side = round(28 * resolution)
    assert seen == [(3, 4, side, side)]
    # The parameters do not depend on the resolution, only the compute does.
    assert count_parameters(net) == expected_parameters(DEFAULT_CELL, 1, 4)


def test_each_node_sums_its_incoming_edges() -> None:
    """The cell's wiring, which shapes and counts cannot see: with skips everywhere node 2 = x, node 3 =
    x + node 2 = 2x and node 4 = x + node 2 + node 3 = 4x; with only the path 1-2-3-4, node 4 = x."""
    x = torch.randn(2, 4, 7, 7)
    all_skip = Cell(dict.fromkeys(EDGES, "skip"), channels=4, activation="relu")
    assert torch.allclose(all_skip(x), 4 * x)
    chain = {**dict.fromkeys(EDGES, "zero"), "edge_1_2": "skip", "edge_2_3": "skip", "edge_3_4": "skip"}
    assert torch.equal(Cell(chain, channels=4, activation="relu")(x), x)
    pooled = {**dict.fromkeys(EDGES, "zero"), "edge_1_4": "avgpool3x3"}
    expected = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    assert torch.allclose(Cell(pooled, channels=4, activation="relu")(x), expected)


@pytest.mark.parametrize("activation", ["relu", "hardswish", "mish"])
def test_each_activation_comes_first_in_every_conv_op(activation: str) -> None:
    net = CellNetwork(DEFAULT_CELL, depth=1, width=4, activation=activation)
    convs = [m for m in net.modules() if isinstance(m, ConvBN)]
    assert len(convs) == 3 * 5 + 2 * 2  # five conv edges per cell, two per residual block
    for conv in convs:
        act, layer, norm = conv
        assert type(act).__name__.lower() == activation
        assert (
            isinstance(layer, torch.nn.Conv2d)
            and layer.bias is None
            and isinstance(norm, torch.nn.BatchNorm2d)
        )


def paths_exist(cell: dict[str, str]) -> bool:
    """Brute force: the cell's four paths from node 1 to node 4, each alive when none of its edges is zero."""
    paths = [
        ["edge_1_4"],
        ["edge_1_2", "edge_2_4"],
        ["edge_1_3", "edge_3_4"],
        ["edge_1_2", "edge_2_3", "edge_3_4"],
    ]
    return any(all(cell[e] != "zero" for e in path) for path in paths)


def test_a_cell_is_dead_exactly_when_no_path_joins_input_and_output() -> None:
    cells = [dict(zip(EDGES, ops, strict=True)) for ops in itertools.product(OPS, repeat=len(EDGES))]
    dead = [c for c in cells if dead_cell_reason(c) is not None]
    assert all(not paths_exist(c) for c in dead)
    assert all(paths_exist(c) for c in cells if dead_cell_reason(c) is None)
    assert 0 < len(dead) < len(cells)


def test_a_dead_cell_network_outputs_the_same_for_every_image_and_a_live_one_does_not() -> None:
    """What the refusal saves a user from: training a network that cannot tell two images apart."""
    dead = {**dict.fromkeys(EDGES, "conv3x3"), "edge_1_4": "zero", "edge_2_4": "zero", "edge_3_4": "zero"}
    live = {**dead, "edge_3_4": "conv1x1"}
    assert dead_cell_reason(dead) is not None and dead_cell_reason(live) is None
    images = torch.randn(4, 1, 28, 28)
    for cell, constant in ((dead, True), (live, False)):  # the same output: constant, not zeros
        torch.manual_seed(0)
        out = CellNetwork(cell, depth=1, width=4).eval()(images)
        assert torch.allclose(out, out[:1].expand_as(out)) == constant


def compose_train(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


DEAD = ("model=cell", "model.cell.edge_1_4=zero", "model.cell.edge_1_2=zero", "model.cell.edge_1_3=zero")


def test_a_single_run_of_a_dead_cell_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        pipeline.train(compose_train(*DEAD, "logger=none"), output_dir=tmp_path)
    reason = str(refused.value)
    assert "no path of non-zero edges from node 1 to node 4" in reason and "\n" not in reason
    assert not list(tmp_path.iterdir())


def test_the_command_line_refuses_a_dead_cell_in_one_line_with_exit_code_2(tmp_path: Path) -> None:
    code, _, err = run_in_process(REPO_ROOT / "train.py", *DEAD, "logger=none", f"hydra.run.dir={tmp_path}")
    assert code == 2
    [line] = error_lines(err)
    assert line.startswith("error: model.cell has no path") and "edge_1_4=zero" in line
    assert "Traceback" not in err
    assert not (tmp_path / pipeline.RESULT_FILE).exists()


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("model.width=32", "model.width"),
        ("model.depth=2", "model.depth"),
        ("model.activation=gelu", "model.activation"),
        ("model.resolution=0.75", "model.resolution"),
        ("model.cell.edge_2_3=sepconv", "model.cell.edge_2_3"),
    ],
)
def test_values_outside_the_cell_space_are_refused_in_one_line(
    override: str, field: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as refused:
        pipeline.train(compose_train("model=cell", override, "logger=none"), output_dir=tmp_path)
    assert str(refused.value).startswith(f"{field}=") and "\n" not in str(refused.value)
    assert not list(tmp_path.iterdir())
