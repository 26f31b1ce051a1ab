"""A transformer's attention exported as onnxruntime's fused com.microsoft MultiHeadAttention (export only).

torch's own graph of the attention (a Concat per cache, two batched MatMuls of a few positions each, a mask, a
Softmax) ran at a few percent of a core's GEMM speed when sampling: thousands of tiny matrices per call. The
contrib op takes the same key/value cache layout ([B, n_head, past, head_dim], the step contract's) as its
past_key/past_value and returns the grown caches as present_key/present_value, so the file's inputs, outputs and
metadata do not change; `unidirectional` is the causal mask (query i sees keys <= past + i). onnxruntime's CPU
kernels and onnxruntime-web's WebAssembly build both run it.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import onnx
import torch
from makemore.export.one_step import constant
from makemore.train.models import CausalSelfAttention, SequenceModel, Transformer
from onnx import helper

DOMAIN = "com.microsoft"
CUSTOM_OPSETS = {DOMAIN: 1}


def reference_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, past_key: torch.Tensor, past_value: torch.Tensor, n_head: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What the fused op computes: q, k, v [B, T, C] and caches [B, H, past, D] -> (out [B, T, C], caches grown by T),
    the causal softmax attention of CausalSelfAttention (whose numbers the export is verified against)."""
    heads = [t.unflatten(-1, (n_head, t.shape[-1] // n_head)).transpose(1, 2) for t in (q, k, v)]
    key, value = torch.cat([past_key, heads[1]], dim=2), torch.cat([past_value, heads[2]], dim=2)
    past, steps = past_key.shape[2], q.shape[1]
    mask = torch.arange(past + steps).unsqueeze(0) > torch.arange(past, past + steps).unsqueeze(1)
    att = (heads[0] @ key.transpose(-2, -1)) * (1.0 / math.sqrt(key.shape[-1]))
    out = att.masked_fill(mask, float("-inf")).softmax(dim=-1) @ value
    return out.transpose(1, 2).flatten(2), key, value


class MultiHeadAttentionOp(torch.autograd.Function):
    """reference_attention in torch; com.microsoft MultiHeadAttention (unidirectional) in the exported graph."""

    @staticmethod
    def forward(ctx, q, k, v, past_key, past_value, n_head: int, head_dim: int):  # torch.autograd.Function's API
        return reference_attention(q, k, v, past_key, past_value, n_head)

    @staticmethod
    def symbolic(g, q, k, v, past_key, past_value, n_head: int, head_dim: int):  # the exporter's API
        none = g.op("prim::Constant")  # an absent optional input (bias, key_padding_mask, attention_bias)
        none.setType(torch._C.OptionalType.ofTensor())
        outputs = g.op(
            f"{DOMAIN}::MultiHeadAttention",
            q,
            k,
            v,
            none,
            none,
            none,
            past_key,
            past_value,
            num_heads_i=n_head,
            unidirectional_i=1,
            outputs=3,
        )
        # the exporter cannot infer a contrib op's outputs (it warns on stderr): their types, batch and positions free
        outputs[0].setType(q.type().with_sizes([None, None, n_head * head_dim]))
        for output, past in zip(outputs[1:], (past_key, past_value), strict=True):
            output.setType(past.type().with_sizes([None, n_head, None, head_dim]))
        return outputs


class FusedSelfAttention(torch.nn.Module):
    """A CausalSelfAttention (eval mode: its dropouts are identities) whose attention is MultiHeadAttentionOp."""

    def __init__(self, attn: CausalSelfAttention) -> None:
        super().__init__()
        self.n_head, self.head_dim, self.qkv, self.proj = attn.n_head, attn.head_dim, attn.qkv, attn.proj

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, past_key: torch.Tensor, past_value: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """As CausalSelfAttention.forward (`mask` unused: the op is causal itself)."""
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        out, key, value = MultiHeadAttentionOp.apply(q, k, v, past_key, past_value, self.n_head, self.head_dim)
        return self.proj(out), key, value


def fused_attention(model: SequenceModel) -> SequenceModel:
    """A transformer's copy whose blocks attend with FusedSelfAttention (other kinds: `model` itself)."""
    if not isinstance(model, Transformer):
        return model
    fused = copy.deepcopy(model)
    for block in fused.blocks:
        attn = block.get_submodule("attn")
        if isinstance(attn, CausalSelfAttention):
            block.attn = FusedSelfAttention(attn)  # the same call, the same results
    return fused


def grouped_query_attention(proto: onnx.ModelProto) -> onnx.ModelProto | None:
    """`proto` for calls of one step: each MultiHeadAttention a GroupQueryAttention (as many key/value heads as
    heads), which onnxruntime's CPU kernel runs 1.2x to 1.26x as fast when sampling, with the same names (from
    onnxruntime 1.18: before, float16 only); None for a graph without one, or whose heads are not a multiple of 8
    wide (the kernel's rule). Only for one step: onnxruntime refuses a GroupQueryAttention call of several steps on
    several rows with a past. Its lengths come from the first cache's shape: every row has `past` positions before
    this one.
    """
    attention = [node for node in proto.graph.node if node.op_type == "MultiHeadAttention"]
    if not attention or head_width(proto.graph, attention[0].input[6]) % 8:  # onnxruntime's kernel refuses it
        return None
    one = onnx.ModelProto()
    one.CopyFrom(proto)
    graph = one.graph
    cache = attention[0].input[6]
    lengths = [  # seqlens_k [B] int32: the positions before this one; total_sequence_length int32: past + 1
        helper.make_node("Shape", [cache], ["gqa/shape"]),
        constant("gqa/past_axis", np.array([2], dtype=np.int64)),
        constant("gqa/batch_axis", np.array([0], dtype=np.int64)),
        helper.make_node("Gather", ["gqa/shape", "gqa/past_axis"], ["gqa/past64"]),
        helper.make_node("Gather", ["gqa/shape", "gqa/batch_axis"], ["gqa/batch"]),
        helper.make_node("Cast", ["gqa/past64"], ["gqa/past"], to=onnx.TensorProto.INT32),
        helper.make_node("Tile", ["gqa/past", "gqa/batch"], ["gqa/seqlens_k"]),
        constant("gqa/one", np.array([1], dtype=np.int32)),
        helper.make_node("Add", ["gqa/past", "gqa/one"], ["gqa/total1"]),
        helper.make_node("Squeeze", ["gqa/total1"], ["gqa/total"]),
    ]
    nodes = []
    for node in graph.node:
        if node.op_type == "MultiHeadAttention":
            heads = next(a.i for a in node.attribute if a.name == "num_heads")
            q, k, v, past_key, past_value = (node.input[i] for i in (0, 1, 2, 6, 7))
            inputs = [q, k, v, past_key, past_value, "gqa/seqlens_k", "gqa/total"]
            node = helper.make_node(  # noqa: PLW2901 (the node replaced)
                "GroupQueryAttention",
                inputs,
                list(node.output),
                node.name,
                domain=DOMAIN,
                num_heads=heads,
                kv_num_heads=heads,
            )
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(lengths + nodes)
    return one


def head_width(graph: onnx.GraphProto, cache: str) -> int:
    """The last dimension of the cache input `cache` ([B, n_head, past, head_dim]), 0 if unknown."""
    for value in graph.input:
        if value.name == cache:
            return value.type.tensor_type.shape.dim[-1].dim_value
    return 0
