"""A recurrent model's one-step calls as an explicit cell beside its RNN/GRU/LSTM op (export only).

Sampling calls a step model one position at a time: [rows, 1] tokens. For such a call onnxruntime's RNN, GRU and
LSTM ops project the input with a GEMM of its own and run their gates in kernels built for long sequences. An
explicit cell does less: the first layer's input projection of every token is a row of one small table (the
embedding times the input weights, plus the biases: a Gather instead of a GEMM), then one GEMM of the hidden state
and the gates. A gru's call of 512 rows took 1.8 ms with the op and 1.2 ms with the cell, one thread.

The file keeps one graph and its contract: an If on the number of steps (export/one_step.py) runs the cell when it
is 1 and the op (torch's export, as before) otherwise. The cell is traced from the op's own weights (ONNX gate
order), without constant folding, so the file stores each weight once; the table and the weights' views are folded
by onnxruntime when it loads the file. The export is verified both ways (whole words and one token at a time).
"""

from __future__ import annotations

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from makemore.train.models import Recurrent
from onnx import numpy_helper

RECURRENCE_OPS = ("RNN", "GRU", "LSTM")


class OneStepCell(torch.nn.Module):
    """`model.step` for one position, written out: each layer's weights as the exported op holds them (W [1, G*H,
    in], R [1, G*H, H], B [1, 2*G*H], ONNX's gate order: GRU z r h, LSTM i o f c), the first layer's input projection
    a table of the vocabulary (and of the labels)."""

    def __init__(self, model: Recurrent, weights: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
        super().__init__()
        self.cell, self.n_hidden = model.cell, model.n_hidden
        self.embedding, self.head = model.embedding, model.head
        self.label_embedding = getattr(model, "label_embedding", None)
        params = [[torch.nn.Parameter(torch.from_numpy(a.copy()), requires_grad=False) for a in w] for w in weights]
        self.w = torch.nn.ParameterList([p[0] for p in params])
        self.r = torch.nn.ParameterList([p[1] for p in params])
        self.b = torch.nn.ParameterList([p[2] for p in params])

    def input_bias(self, layer: int) -> torch.Tensor:
        """The biases added to a layer's input projection: both of them, but for a GRU's h gate only the input's
        (its recurrent bias is inside the reset gate's product)."""
        size = self.r[layer].shape[1]
        wb, rb = self.b[layer][0, :size], self.b[layer][0, size:]
        if self.cell == "gru":
            rb = torch.cat([rb[: 2 * self.n_hidden], torch.zeros_like(rb[2 * self.n_hidden :])])
        return wb + rb

    def forward(self, tokens: torch.Tensor, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(tokens [B, 1], (label [B],) *state [n_layer, B, H]) -> (logits [B, 1, V], *new state), as model.step."""
        label, state = (inputs[0], inputs[1:]) if self.label_embedding is not None else (None, inputs)
        table = F.linear(self.embedding.weight, self.w[0][0], self.input_bias(0))
        projected = table[tokens[:, 0]]
        if self.label_embedding is not None and label is not None:
            projected = projected + F.linear(self.label_embedding.weight, self.w[0][0])[label]
        hs: list[torch.Tensor] = []
        cs: list[torch.Tensor] = []
        for layer in range(len(self.w)):
            if hs:  # a layer above the first: its input is the new state of the one below
                projected = F.linear(hs[-1], self.w[layer][0], self.input_bias(layer))
            h = state[0][layer]
            recurrent = F.linear(h, self.r[layer][0])
            if self.cell == "lstm":
                x, c = self.lstm(projected + recurrent, state[1][layer])
                cs.append(c)
            elif self.cell == "gru":
                x = self.gru(projected, recurrent, self.b[layer][0, -self.n_hidden :], h)
            else:
                x = torch.tanh(projected + recurrent)
            hs.append(x)
        logits = self.head(hs[-1]).unsqueeze(1)
        return (logits, torch.stack(hs), *([torch.stack(cs)] if cs else []))

    def lstm(self, gates: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ONNX's LSTM gates i, o, f, c (no peepholes): the three sigmoids in one op."""
        n = self.n_hidden
        iof = torch.sigmoid(gates[:, : 3 * n])
        c = iof[:, 2 * n :] * c + iof[:, :n] * torch.tanh(gates[:, 3 * n :])
        return iof[:, n : 2 * n] * torch.tanh(c), c

    def gru(
        self, projected: torch.Tensor, recurrent: torch.Tensor, h_bias: torch.Tensor, h: torch.Tensor
    ) -> torch.Tensor:
        """ONNX's GRU gates z, r, h with linear_before_reset (torch's GRU): h' = (1 - z) * n + z * h."""
        n = self.n_hidden
        zr = torch.sigmoid(projected[:, : 2 * n] + recurrent[:, : 2 * n])
        candidate = torch.tanh(projected[:, 2 * n :] + zr[:, n:] * (recurrent[:, 2 * n :] + h_bias))
        return candidate + zr[:, :n] * (h - candidate)


class NoCell(ValueError):
    """The op's weights are not where the cell reads them (torch below opset 9 computes them in the graph)."""


def recurrence_weights(graph: onnx.GraphProto) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The W, R, B initializers of the graph's recurrence ops, one per layer in order, through the Identity nodes
    torch puts on a weight equal to another (NoCell if one is not an initializer, or for peepholes or a second
    direction)."""
    initializers = {i.name: i for i in graph.initializer}
    identity = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity"}
    weights = []
    for node in (n for n in graph.node if n.op_type in RECURRENCE_OPS):
        names = list(node.input[1:4])
        for i, name in enumerate(names):
            while name not in initializers and name in identity:
                name = identity[name]
            names[i] = name
        if len(node.input) > 7 and node.input[7] or not all(name in initializers for name in names):
            raise NoCell(f"unexpected {node.op_type} inputs {list(node.input)}")
        w, r, b = (numpy_helper.to_array(initializers[name]) for name in names)
        if w.shape[0] != 1:
            raise NoCell(f"a bidirectional {node.op_type}")
        weights.append((w, r, b))
    return weights
