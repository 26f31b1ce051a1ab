"""The typed configs, as nanoGPT's GPTConfig: frozen dataclasses, torch-free.

A run's `Config` holds its kind, the architecture of the model (one dataclass per model family: `BigramConfig`,
`MLPConfig`, ...), how it trains (`TrainConfig`; None for a counted bigram) and what a checkpoint records besides
(RECORD_KEYS). Each kind's defaults are one `Config` in train/kinds.py; train/config.py's make_config makes one
from flags and checks every value.

A field that is None is one the kind does not use (a window kind's buckets, bigram-nn's batch_size) or does not
know yet (a sequence kind's block_size, set from the data): a flag cannot set a training field that is None in the
kind's defaults (the kind ignores it, as it always has), and `flat()` leaves None out.

Two plain forms: `to_dict()` (nested dicts of JSON values, what a checkpoint stores) and `flat()` (one dict of
every key, what the ONNX metadata records and what checkpoints of format 1 stored).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from makemore.data import UserError

# What a checkpoint's config also records; n_labels: a conditional model's label count (None: unlabelled).
RECORD_KEYS = ("split_seed", "split_fractions", "max_len", "steps_done", "n_labels")

T = TypeVar("T")


class ConfigError(UserError):
    """A training config that cannot be used: an unknown kind, a value out of its range, sizes that do not fit."""


@dataclass(frozen=True)
class BigramConfig:
    """Counted bigrams (kind bigram): add-k smoothing of the counts."""

    block_size: int
    smoothing: float


@dataclass(frozen=True)
class BigramNNConfig:
    """One linear layer over the previous character (kind bigram-nn)."""

    block_size: int


@dataclass(frozen=True)
class MLPConfig:
    """Bengio et al.'s MLP (kind mlp): a context of block_size embeddings, one tanh hidden layer."""

    block_size: int
    n_embd: int
    n_hidden: int
    dropout: float


@dataclass(frozen=True)
class WaveNetConfig:
    """The hierarchical MLP (kind wavenet): block_size a power of two, `norm` batch or layer."""

    block_size: int
    n_embd: int
    n_hidden: int
    norm: str
    dropout: float


@dataclass(frozen=True)
class TransformerConfig:
    """A decoder-only GPT (kind transformer); block_size from the data (None until then)."""

    n_layer: int
    n_head: int
    n_embd: int
    dropout: float
    block_size: int | None = None


@dataclass(frozen=True)
class RecurrentConfig:
    """An rnn, gru or lstm (the kind names the cell); block_size from the data (None until then)."""

    n_embd: int
    n_hidden: int
    n_layer: int
    dropout: float
    block_size: int | None = None


ModelConfig = BigramConfig | BigramNNConfig | MLPConfig | WaveNetConfig | TransformerConfig | RecurrentConfig


@dataclass(frozen=True)
class TrainConfig:
    """How a model trains by gradient descent. The optional fields are None where a kind does not use them."""

    steps: int
    lr: float
    optimizer: str  # sgd, adam or adamw
    weight_decay: float
    seed: int
    batch_size: int | None = None  # None: the whole train split every step
    buckets: int | None = None  # sequence kinds: batches drawn at once, words grouped by length (None: 1)
    warmup: int | None = None  # linear warm-up steps (None: none)
    grad_clip: float | None = None  # gradient norm clipping (None: none)
    beta2: float | None = None  # AdamW's beta2 (None: torch's 0.999)
    ema: float = 0.0  # decay of the weights' moving average that becomes the model (0: none; train/averaging.py)


@dataclass(frozen=True)
class Config:
    """One run: its kind, model, training (None: counted, not trained) and what its checkpoint records."""

    kind: str
    model: ModelConfig
    train: TrainConfig | None = None
    split_seed: int | None = None
    split_fractions: tuple[float, ...] | None = None
    max_len: int | None = None
    steps_done: int | None = None
    n_labels: int | None = None  # a conditional model's labels (None: unlabelled; its model has no label parts)

    @property
    def block_size(self) -> int | None:
        """The model's context (a sequence kind's longest sequence): None until the data sets it."""
        return self.model.block_size

    @property
    def seed(self) -> int:
        """The seed of initialisation, batches and the printed samples (0 for a kind that does not train)."""
        return 0 if self.train is None else self.train.seed

    def settable(self) -> frozenset[str]:
        """The keys a flag may set: the model's, the training fields the kind uses, RECORD_KEYS."""
        used = [] if self.train is None else [key for key, value in fields_of(self.train).items() if value is not None]
        return frozenset([*fields_of(self.model), *used, *RECORD_KEYS])

    def replace(self, **values: Any) -> Config:
        """A copy with each value in its part (model, train or record); ConfigError for a key that none has."""
        model = {key: values.pop(key) for key in list(values) if key in fields_of(self.model)}
        train = {key: values.pop(key) for key in list(values) if key in TRAIN_KEYS}
        unknown = [key for key in values if key not in RECORD_KEYS]
        if unknown or (train and self.train is None):
            raise ConfigError(f"a {self.kind} config has no {', '.join([*unknown, *train])}")
        if isinstance(values.get("split_fractions"), list):
            values["split_fractions"] = tuple(values["split_fractions"])
        changed = dataclasses.replace(self, model=dataclasses.replace(self.model, **model), **values)
        if not train or self.train is None:
            return changed
        return dataclasses.replace(changed, train=dataclasses.replace(self.train, **train))

    def flat(self) -> dict[str, Any]:
        """Every key's value in one dict, None left out (the ONNX metadata's config; checkpoint format 1's)."""
        record = {key: getattr(self, key) for key in RECORD_KEYS}
        parts = {**fields_of(self.model), **(fields_of(self.train) if self.train else {}), **record}
        return {
            key: list(value) if isinstance(value, tuple) else value for key, value in parts.items() if value is not None
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain nested data (str, int, float, bool, None, lists, dicts) that torch.load(weights_only=True) reads."""
        plain = dataclasses.asdict(self)
        if self.split_fractions is not None:
            plain["split_fractions"] = list(self.split_fractions)
        return plain


TRAIN_KEYS = tuple(field.name for field in dataclasses.fields(TrainConfig))


def known(value: T | None, name: str) -> T:
    """A config value that is set by this point (a sequence kind's block_size once the data set it): ValueError
    naming it if it is still None."""
    if value is None:
        raise ValueError(f"config {name} is not set yet")
    return value


def fields_of(part: ModelConfig | TrainConfig) -> dict[str, Any]:
    """A model or training config's fields and values, in their order."""
    return {field.name: getattr(part, field.name) for field in dataclasses.fields(part)}


def config_from_dict(data: Mapping[str, Any], defaults: Config) -> Config:
    """The Config of `to_dict()`'s form, its model of the family of `defaults.model`.

    ValueError naming the part and the key when one lacks a field or has one its dataclass does not.
    """
    known = ("kind", "model", "train", *RECORD_KEYS)
    _check_keys(data, known, known[:3], "config")
    if not isinstance(data["model"], Mapping):
        raise ValueError("config model must be a dict")
    model = _build(type(defaults.model), data["model"], "config model")
    train = data["train"]
    if (train is None) != (defaults.train is None) or not (train is None or isinstance(train, Mapping)):
        raise ValueError(f"config train must be {'null' if defaults.train is None else 'a dict'} for a {defaults.kind}")
    fractions = data.get("split_fractions")
    return Config(
        kind=data["kind"],
        model=model,
        train=None if train is None else _build(TrainConfig, train, "config train"),
        split_seed=data.get("split_seed"),
        split_fractions=tuple(fractions) if isinstance(fractions, list) else fractions,
        max_len=data.get("max_len"),
        steps_done=data.get("steps_done"),
        n_labels=data.get("n_labels"),
    )


def _build(cls: type[Any], data: Mapping[str, Any], where: str) -> Any:
    """`cls(**data)` where data has every field of `cls` that has no default and no other key; ValueError if not."""
    names = [field.name for field in dataclasses.fields(cls)]
    required = [field.name for field in dataclasses.fields(cls) if field.default is dataclasses.MISSING]
    _check_keys(data, names, required, where)
    return cls(**data)


def _check_keys(data: Mapping[str, Any], known: tuple[str, ...] | list[str], required: Any, where: str) -> None:
    missing = [key for key in required if key not in data]
    if missing:
        raise ValueError(f"{where} lacks {', '.join(missing)}")
    unknown = [str(key) for key in data if key not in known]
    if unknown:
        raise ValueError(f"{where} has an unknown key {unknown[0]!r:.60}")
