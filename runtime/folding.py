"""A file's values computed from constants alone (int8 weights made float, a recurrent cell's weights cut and
multiplied), computed once by onnxruntime before the file's session is made, and put in the file as constants:
onnxruntime's own folding at load stays off, since it computed whatever a file asked (contract/constants.py)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from makemore.contract.constants import Plan
from makemore.contract.wire import GraphError, constant_node_bytes, message_field, splice


def folded(data: bytes, plan: Plan, source: str) -> bytes:
    """`data` with each folded node replaced by Constant nodes of the outputs that stay in use (none: removed)."""
    if not plan.folds:
        return data
    side, names = plan.side_model(data, source)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 4
    try:
        session = ort.InferenceSession(side, sess_options=options, providers=["CPUExecutionProvider"])
        arrays = dict(zip(names, session.run(names, {}), strict=False)) if names else {}
    except Exception as err:  # onnxruntime raises several untyped errors for a bad graph
        raise GraphError(f"{source} is not a valid ONNX model ({str(err).splitlines()[0][:160]})") from None
    edits = {}
    for number, fold in enumerate(plan.folds):
        nodes = []
        for index, (name, tensor) in enumerate(zip(fold.node.outputs, fold.outputs, strict=False)):
            if not fold.used[index]:
                continue
            array = np.asarray(arrays[f"f{number}.{index}"])
            if array.shape != tensor.shape:
                raise GraphError(
                    f"{source}: its {fold.node.op} made a {array.shape} value where {tensor.shape} was due"
                )
            nodes.append(message_field(1, constant_node_bytes(name, array)))
        edits[fold.node.span] = b"".join(nodes)
    return splice(data, 0, len(data), edits, source)
