"""The kind registry: everything the project knows about each model kind, in one place.

A kind is one `KindSpec`: its model class (in train/models.py), its default config, whether it is a window or a
sequence model, the embedding table that plots read, its parameter and activation formulas (train/memory.py's
estimate), its extra config checks and the quick config the tests train. The CLI's choices, the memory estimate,
plots, export (through build_model and state_spec), the tests and bench all read this table, so adding a kind is
its model class, one spec here and one row in the docs (docs/adding-a-kind.md).

Importing this module does not import torch (mm-plot reads ONNX files in a torch-free install): a spec names its
model class, and `build_model` imports the models only when it builds one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypedDict

from makemore.contract import BATCH, PAST, StateSpec, StateTensor
from makemore.train.config_types import (
    BigramConfig,
    BigramNNConfig,
    Config,
    ConfigError,
    MLPConfig,
    ModelConfig,
    RecurrentConfig,
    TrainConfig,
    TransformerConfig,
    WaveNetConfig,
)

if TYPE_CHECKING:
    from torch import nn

__all__ = ["ConfigError", "KindSpec", "build_model", "kind_spec", "state_spec"]


def _no_check(config: Config) -> None:
    """A kind without checks beyond the shared ranges."""


def _no_state(model: Any) -> StateSpec | None:
    """A window kind: no state between calls."""
    return None


@dataclass(frozen=True)
class KindSpec:
    """One model kind.

    `model`: the class name in train/models.py, built as `Class.from_config(kind, vocab_size, config.model)`.
    `defaults`: the typed Config of the kind (train/config_types.py): its model family's dataclass, its TrainConfig
    (None fields: unused by the kind), no record yet.
    `params`, `activations`: (vocab_size, model config) -> the parameters (and buffers) of the model, and the floats
    one example row makes in a forward pass (the logits and their log-softmax included), for the memory estimate.
    `state`: model config -> the step contract's state (None for a window kind). `check`: extra checks of the whole
    Config (ConfigError). `embedding_table`: the state_dict name of the character embeddings (None: the kind has none).
    `counted`: fitted by counting pairs, not by gradient descent (its memory is the counts, not a batch's).
    `packed`: trains on packed rows (several words to a row, train.trainer.training_batch): its batch's memory is
    that of its packed rows (train.memory.packed_batch), not of batch_size rows of block_size.
    `quick`: overrides of `defaults` that train it in seconds, for the tests.
    `presets`: named overrides of `defaults` (`mm-train KIND --preset NAME`), each with what it reached here.
    `fixed`: config keys the model fixes whatever their value (a bigram's context is one character): no flag sets them.
    """

    name: str
    summary: str
    model: str
    sequence: bool
    defaults: Config
    params: Callable[[int, Any], int]
    activations: Callable[[int, Any], int]
    state: Callable[[Any], StateSpec | None] = _no_state
    check: Callable[[Config], None] = _no_check
    embedding_table: str | None = "embedding.weight"
    counted: bool = False
    packed: bool = False
    quick: Mapping[str, Any] = field(default_factory=dict)
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    fixed: tuple[str, ...] = ()

    @property
    def flags(self) -> frozenset[str]:
        """The config keys that `mm-train`'s flags may set for this kind."""
        return self.defaults.settable() - set(self.fixed)

    @property
    def contract(self) -> str:
        """The ONNX contract its export writes: step for a sequence kind, window otherwise."""
        return "step" if self.sequence else "window"


# ---- the formulas -----------------------------------------------------------------------------------------------

GATES = {"rnn": 1, "gru": 3, "lstm": 4}  # weight blocks per recurrent layer


def levels(block_size: int) -> int:
    """A wavenet's number of fusing levels: log2(block_size)."""
    return max(1, block_size.bit_length() - 1)


def _bigram_params(v: int, model: ModelConfig) -> int:
    return v * v


def _bigram_activations(v: int, model: ModelConfig) -> int:
    return 3 * v


def _mlp_params(v: int, m: MLPConfig) -> int:
    e, h, block = m.n_embd, m.n_hidden, m.block_size
    return v * e + block * e * h + h + h * v + v


def _mlp_activations(v: int, m: MLPConfig) -> int:
    return m.block_size * m.n_embd + 3 * m.n_hidden + 3 * v


def _wavenet_params(v: int, m: WaveNetConfig) -> int:
    e, h, block = m.n_embd, m.n_hidden, m.block_size
    norm = 4 * h + 1 if m.norm == "batch" else 2 * h  # weight, bias (+ running stats)
    return v * e + 2 * e * h + (levels(block) - 1) * 2 * h * h + levels(block) * norm + h * v + v


def _wavenet_activations(v: int, m: WaveNetConfig) -> int:
    e, h, block = m.n_embd, m.n_hidden, m.block_size
    return block * e + 4 * h * (block - 1) + 3 * v  # levels of block/2, block/4, ... 1 rows: linear, norm, tanh, drop


def _transformer_params(v: int, m: TransformerConfig) -> int:
    """Embeddings, per layer 12 e^2 + 13 e (attention, MLP, norms), head (block_size 1 before the data sets it)."""
    e, block, layers = m.n_embd, m.block_size or 1, m.n_layer
    return v * e + block * e + layers * (12 * e * e + 13 * e) + 2 * e + e * v


def _transformer_activations(v: int, m: TransformerConfig) -> int:
    """A row is block_size positions: a whole word (evaluation), or several (training's packed rows, at most one
    row per word of the batch), whose block-diagonal mask (bool [block, block]) and int64 positions, segments and
    labels it also holds (as floats, rounded up)."""
    e, layers, heads, block = m.n_embd, m.n_layer, m.n_head, m.block_size or 1
    packing = -(-block * (block + 3 * 8) // 4)  # bytes of the mask and three int64 per position, in float32s
    return block * (layers * (16 * e + 2 * heads * block) + e + 3 * v) + packing


def _recurrent_params(kind: str) -> Callable[[int, RecurrentConfig], int]:
    def params(v: int, m: RecurrentConfig) -> int:
        """Embedding, per layer gates * (input + recurrent weights + 2 biases), head."""
        e, h, layers, gates = m.n_embd, m.n_hidden, m.n_layer, GATES[kind]
        return v * e + gates * (e * h + (layers - 1) * h * h + layers * (h * h + 2 * h)) + h * v + v

    return params


def _recurrent_activations(kind: str) -> Callable[[int, RecurrentConfig], int]:
    def activations(v: int, m: RecurrentConfig) -> int:
        """A row is a whole word of block_size tokens."""
        block = m.block_size or 1
        return block * (m.n_layer * 3 * GATES[kind] * m.n_hidden + m.n_embd + 3 * v)

    return activations


# ---- the states and the checks -----------------------------------------------------------------------------------


def _transformer_state(m: TransformerConfig) -> StateSpec:
    """A key/value cache per layer (Hugging Face's names: past.{i}.key -> present.{i}.key); at most block_size
    positions."""
    shape = (BATCH, m.n_head, PAST, m.n_embd // m.n_head)
    names = [f"{layer}.{part}" for layer in range(m.n_layer) for part in ("key", "value")]
    tensors = tuple(StateTensor(f"past.{name}", f"present.{name}", shape) for name in names)
    return StateSpec(tensors, max_positions=m.block_size)


def _recurrent_state(kind: str) -> Callable[[RecurrentConfig], StateSpec]:
    def state(m: RecurrentConfig) -> StateSpec:
        """The hidden state (and an lstm's cell state): state.h -> next.h; no length limit."""
        shape = (m.n_layer, BATCH, m.n_hidden)
        parts = ("h", "c") if kind == "lstm" else ("h",)
        return StateSpec(tuple(StateTensor(f"state.{part}", f"next.{part}", shape) for part in parts))

    return state


def _check_wavenet(config: Config) -> None:
    block_size = config.model.block_size
    if block_size is None or block_size < 2 or block_size & (block_size - 1):
        raise ConfigError(f"--block-size of a wavenet must be a power of two (2, 4, 8, ...), got {block_size}")
    if config.train is not None and config.train.batch_size is not None and config.train.batch_size < 2:
        raise ConfigError("--batch-size of a wavenet must be at least 2 (batch norm)")


def _check_transformer(config: Config) -> None:
    model = config.model
    assert isinstance(model, TransformerConfig)
    if model.n_embd % model.n_head:
        raise ConfigError(f"--n-embd ({model.n_embd}) must be divisible by --n-head ({model.n_head})")


# ---- the table ---------------------------------------------------------------------------------------------------


class _Optimizer(TypedDict):
    """TrainConfig's optimizer fields, as several kinds share them."""

    optimizer: str
    weight_decay: float
    seed: int


class _Schedule(TypedDict):
    """TrainConfig's schedule fields, as the sequence kinds share them."""

    buckets: int
    grad_clip: float
    beta2: float


# An AdamW run of the shared settings: only steps, batch size, learning rate and what else differs per kind.
_ADAMW: _Optimizer = {"optimizer": "adamw", "weight_decay": 0.01, "seed": 1337}
# The sequence kinds' schedule: warm-up, clipping, beta2 0.99, bucketed batches (one bucket: none).
_SCHEDULED: _Schedule = {"buckets": 1, "grad_clip": 1.0, "beta2": 0.99}

# rnn 91,099 params: val 1.9883, test 2.0084, 2 min 9 s (2-vCPU AMD EPYC, 2026-11-25); gru and lstm trained in
# bfloat16 (2026-11-29, quiet): gru 255,963: val 1.9311, test 1.9497, 39 s; lstm 338,395: val 1.9136, test 1.9411, 36 s.
_RECURRENT_MODEL = RecurrentConfig(n_embd=64, n_hidden=256, n_layer=1, dropout=0.2)
_RECURRENT_TRAIN = TrainConfig(steps=6000, batch_size=64, lr=0.003, warmup=200, **_SCHEDULED, **_ADAMW)
_RECURRENT_QUICK = {"steps": 200, "n_embd": 16, "n_hidden": 48, "batch_size": 64, "warmup": 20}


def _recurrent(kind: str, summary: str) -> KindSpec:
    return KindSpec(
        name=kind,
        summary=summary,
        model="Recurrent",
        sequence=True,
        defaults=Config(kind, _RECURRENT_MODEL, _RECURRENT_TRAIN),
        params=_recurrent_params(kind),
        activations=_recurrent_activations(kind),
        state=_recurrent_state(kind),
        quick=_RECURRENT_QUICK,
    )


SPECS = (
    KindSpec(
        name="bigram",
        summary="normalised bigram counts with add-k smoothing",
        model="Bigram",
        sequence=False,
        defaults=Config("bigram", BigramConfig(block_size=1, smoothing=1.0), train=None),
        params=_bigram_params,
        activations=_bigram_activations,
        embedding_table=None,
        counted=True,
        fixed=("block_size",),
    ),
    KindSpec(
        name="bigram-nn",
        summary="one linear layer over the one-hot of the previous character",
        model="BigramNN",
        sequence=False,
        defaults=Config(
            "bigram-nn",
            BigramNNConfig(block_size=1),
            TrainConfig(steps=100, lr=0.5, optimizer="adam", weight_decay=0.0, seed=1337),  # full batch
        ),
        params=_bigram_params,
        activations=_bigram_activations,
        embedding_table=None,  # its [V, V] table holds logits, not embeddings
        quick={"steps": 60},
        fixed=("block_size",),
    ),
    KindSpec(
        name="mlp",
        summary="Bengio et al. 2003: embeddings, a context window, a tanh hidden layer",
        model="MLP",
        sequence=False,
        defaults=Config(
            "mlp",
            MLPConfig(block_size=4, n_embd=16, n_hidden=300, dropout=0.0),
            TrainConfig(steps=12000, batch_size=256, lr=0.005, **_ADAMW),
        ),
        params=_mlp_params,
        activations=_mlp_activations,
        quick={"steps": 400, "n_hidden": 64},
        presets=MappingProxyType(
            {
                "default": {},  # val 2.0186, test 2.0330
                # The best of docs/experiments.md's sweep: a longer context and a wider hidden layer.
                # val 1.9978 (seed 1337), 2.0035 (seed 1); more steps overfit (val 2.0172 at 12,000).
                "context8": {"block_size": 8, "n_hidden": 500, "steps": 8000},
                # The lecture's recipe: plain SGD, lr 0.1 then 0.01, embedding 10, hidden 200, context 3.
                # val 2.1077, test 2.1115 (the lecture: 2.17 with plain init, 2.10 with careful init); 93 s on one core.
                "lecture": {
                    "block_size": 3,
                    "n_embd": 10,
                    "n_hidden": 200,
                    "optimizer": "sgd",
                    "lr": 0.1,
                    "batch_size": 32,
                    "steps": 200000,
                    "weight_decay": 0.0,
                },
            }
        ),
    ),
    # The lecture's hierarchical MLP, wider and with dropout: val 1.970 here in 271 s of one core (the
    # lecture's n_embd 24, n_hidden 128, 76,579 parameters, no dropout, 20000 steps: val 1.987 in 110 s).
    KindSpec(
        name="wavenet",
        summary="the lectures' hierarchical MLP: characters fused in pairs, then pairs of pairs",
        model="WaveNet",
        sequence=False,
        defaults=Config(
            "wavenet",
            WaveNetConfig(block_size=8, n_embd=32, n_hidden=192, norm="batch", dropout=0.1),
            TrainConfig(steps=30000, batch_size=128, lr=0.005, **_ADAMW),
        ),
        params=_wavenet_params,
        activations=_wavenet_activations,
        check=_check_wavenet,
        quick={"steps": 300, "n_embd": 8, "n_hidden": 32, "batch_size": 64},
    ),
    # Sequence kinds: whole words, block_size from the data (train/config.py, with_block_size); chosen run by run on the
    # results page ("mm-train transformer --preset best"). The default, six blocks at dropout 0.25 with the weights'
    # moving average: 304,512 params, train 1.6934, val 1.8969, test 1.9209 (seed 1337); 1.27 MB as float32, and its
    # int8 is too far from torch for mm-export. "small", four blocks, is the best that fits the pretrained model's
    # 1 MB as float32; "makemore" is makemore.py's recipe, this kind's default before issue 22 (val 1.9169).
    KindSpec(
        name="transformer",
        summary="decoder-only GPT as nanoGPT and makemore.py",
        model="Transformer",
        sequence=True,
        defaults=Config(
            "transformer",
            TransformerConfig(n_layer=6, n_head=4, n_embd=64, dropout=0.25),
            TrainConfig(steps=40000, batch_size=128, lr=0.006, warmup=1000, ema=0.9995, **_SCHEDULED, **_ADAMW),
        ),
        params=_transformer_params,
        activations=_transformer_activations,
        state=_transformer_state,
        check=_check_transformer,
        packed=True,
        embedding_table="token_embedding.weight",
        quick={
            "steps": 200,
            "n_layer": 2,
            "n_head": 4,
            "n_embd": 32,
            "batch_size": 64,
            "warmup": 20,
            "dropout": 0.1,
            "ema": 0.0,
        },
        presets=MappingProxyType(
            {
                "default": {},
                "best": {"n_layer": 8, "dropout": 0.3},  # the best test loss measured (1.9159), in 16 minutes
                "small": {"n_layer": 4, "dropout": 0.2},
                "makemore": {"n_layer": 4, "dropout": 0.1, "steps": 12000, "warmup": 300, "ema": 0.0},
            }
        ),
    ),
    _recurrent("rnn", "embedding, torch's nn.RNN, linear head"),
    _recurrent("gru", "embedding, torch's nn.GRU, linear head"),
    _recurrent("lstm", "embedding, torch's nn.LSTM, linear head"),
)
KINDS: Mapping[str, KindSpec] = MappingProxyType({spec.name: spec for spec in SPECS})
MODEL_KINDS = tuple(KINDS)
SEQUENCE_KINDS = tuple(name for name, spec in KINDS.items() if spec.sequence)
WINDOW_KINDS = tuple(name for name, spec in KINDS.items() if not spec.sequence)


def kind_spec(kind: str) -> KindSpec:
    """The spec of `kind`; ConfigError naming the kinds otherwise."""
    try:
        return KINDS[kind]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown model kind {kind!r}: choose one of {', '.join(MODEL_KINDS)}") from None


def build_model(kind: str, vocab_size: int, config: Config) -> nn.Module:
    """The model of `kind` for a vocabulary size and a (checked) Config."""
    from makemore.train import models

    spec = kind_spec(kind)
    model_class = getattr(models, spec.model)
    model: nn.Module = model_class.from_config(kind, vocab_size, config.model, config.n_labels or 0)
    return model


def state_spec(kind: str, config: Config) -> StateSpec | None:
    """The step contract's state of a sequence kind (names, shapes with `batch` and `past`), None for a window kind."""
    return kind_spec(kind).state(config.model)
