"""Walking an ONNX graph as the files hold it: a step model's graph keeps its one-step copy in an If's branches."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

# ops whose first input's values reach their output unchanged, only moved (reshaped, transposed, sliced)
MOVES = frozenset({"Transpose", "Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Slice", "Split"})


def every_node(graph: Any) -> Iterator[Any]:
    """The nodes of an onnx GraphProto and of its subgraphs (an If's branches), depth first."""
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            for subgraph in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
                yield from every_node(subgraph)
