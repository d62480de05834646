"""JAHS-Bench-201's cell space as plain values, without torch: the config checks and the preflight read
it in a second; src/jahs_bohb/cell_network.py builds the networks."""

from __future__ import annotations

from collections.abc import Mapping

NODES = (1, 2, 3, 4)  # 1 is the cell's input, 4 its output
EDGES = ("edge_1_2", "edge_1_3", "edge_1_4", "edge_2_3", "edge_2_4", "edge_3_4")
OPS = ("skip", "zero", "conv3x3", "conv1x1", "avgpool3x3")  # JAHS-Bench-201's Op values 0..4, in order
ACTIVATIONS = ("relu", "hardswish", "mish")
DEPTHS, WIDTHS, RESOLUTIONS = (1, 3, 5), (4, 8, 16), (0.25, 0.5, 1.0)

# NAS-Bench-201's best cell on CIFAR-10 (into the output: two 3x3 convs and a skip from the input):
# a strong default for a single run of `model=cell`.
DEFAULT_CELL = {
    "edge_1_2": "conv3x3", "edge_1_3": "conv3x3", "edge_1_4": "skip",
    "edge_2_3": "conv3x3", "edge_2_4": "conv3x3", "edge_3_4": "conv3x3",
}  # fmt: skip


def edge_nodes(edge: str) -> tuple[int, int]:
    """'edge_2_4' -> (2, 4)."""
    _, tail, head = edge.split("_")
    return int(tail), int(head)


def dead_cell_reason(cell: Mapping[str, str]) -> str | None:
    """Why a cell computes nothing, or None: with no path of non-zero edges from its input to its
    output, no cell passes anything of the image on, and the network outputs the same whatever the
    image."""
    reached = {1}
    for edge in sorted(EDGES, key=edge_nodes):  # by tail node, so a node is final before it feeds on
        tail, head = edge_nodes(edge)
        if tail in reached and cell[edge] != "zero":
            reached.add(head)
    if 4 in reached:
        return None
    return (
        "model.cell has no path of non-zero edges from node 1 to node 4 ("
        + " ".join(f"{e}={cell[e]}" for e in EDGES)
        + "), so the network outputs the same for every image; make edge_1_4 or every edge of one "
        "path (1-2-4, 1-3-4, 1-2-3-4) something other than zero"
    )
