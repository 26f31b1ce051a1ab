"""What a model file says about itself, and the checks every field must pass before anyone uses it."""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from makemore.data import MAX_VOCAB, SEED_MAX, UserError, Vocab, vocab_problem
from makemore.data.bounds import MAX_LABELS, MAX_LEN_LIMIT
from makemore.data.reader import lone_surrogate

CHECKPOINT_FORMAT_VERSION = 2  # model.pt (2: a nested, typed config; train/checkpoint.py reads 1 too)
ONNX_FORMAT_VERSION = 1  # model.onnx (its metadata_props)
METADATA_PREFIX = "makemore."
REQUIRED_KEYS = ("format_version", "kind", "vocab", "block_size", "config", "metrics", "data_sha256")
WINDOW = "window"  # context[B, block_size] -> logits[B, V]
STEP = "step"  # tokens[B, T] + state -> logits[B, T, V] + new state (a key/value cache or a hidden state)
CONTRACTS = (WINDOW, STEP)
BATCH, PAST = "batch", "past"  # the symbolic axes of a state tensor's shape
MAX_STATE_TENSORS = 256
MAX_STATE_DIM = 1 << 16
MAX_STATE_ROW_BYTES = 32 << 20  # float32 state one name may carry at its longest (a cache at max_positions)
DEFAULT_CONTRACT = WINDOW  # files written before the key existed

MAX_BLOCK_SIZE = 100_000  # context length a file may declare
MAX_KIND_LEN = 64
SHA256 = re.compile(r"[0-9a-f]{64}")
LOSS_KEYS = ("train_loss", "val_loss", "test_loss")
HISTORY_PAIRS = (("step", "train_loss"), ("val_step", "val_loss"))  # a loss history's (x, y) series


class ModelFileError(UserError):
    """A model file that cannot be used; the message is one line meant for the user."""


class ModelOutputError(ModelFileError):
    """A model that passed its load checks but fails on some input (non-finite logits, a run that fails): the
    file's fault, not the request's (the server answers 500 with the message); `detail`: the runtime's own words."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail or message


def check_vocab(chars: object, source: str) -> Vocab:
    """A vocabulary string: 1..MAX_VOCAB distinct characters, none a line break, NUL or lone surrogate (the rule
    of data.vocab_problem, which the data reader and the trainer apply too)."""
    if not isinstance(chars, str) or not 1 <= len(chars) <= MAX_VOCAB:
        raise ModelFileError(f"{source}: the vocabulary must be 1 to {MAX_VOCAB:,} characters")
    if len(set(chars)) != len(chars):
        raise ModelFileError(f"{source}: the vocabulary repeats a character")
    problem = vocab_problem(chars)
    if problem is not None:
        raise ModelFileError(f"{source}: the vocabulary holds {problem}")
    return Vocab(chars)


def is_int(value: object) -> TypeGuard[int]:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_finite_number(value: object) -> bool:
    """An int or float that is a finite float (an int too large for a float is not)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return abs(value) <= sys.float_info.max
    return isinstance(value, float) and math.isfinite(value)


def check_int(value: object, name: str, low: int, high: int, source: str) -> int:
    """An integer in [low, high] (ModelFileError naming `name` otherwise)."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ModelFileError(f"{source}: {name} must be an integer from {low} to {high:,}, got {value!r:.40}")
    return value


def parse_int(text: str, name: str, low: int, high: int, source: str) -> int:
    """A metadata string of decimal digits as an integer in [low, high]."""
    if not (text.isascii() and text.isdigit() and len(text) <= 20):
        raise ModelFileError(f"{source}: {name} must be a whole number, got {text!r:.40}")
    return check_int(int(text), name, low, high, source)


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def parse_json_object(text: str, name: str, source: str) -> dict[str, Any]:
    """A metadata string holding a strict JSON object (no NaN or Infinity)."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise ModelFileError(f"{source}: {name} is not valid JSON") from None
    if not isinstance(value, dict):
        raise ModelFileError(f"{source}: {name} must be a JSON object, got {type(value).__name__}")
    if "\\u" in text and lone_surrogate(value) is not None:  # only an escape (\ud800) makes one; it never encodes again
        raise ModelFileError(f"{source}: {name} holds a lone surrogate (not a character)")
    return value


def check_config(config: dict[str, Any], block_size: int, source: str) -> None:
    """The fields of a config that the runtime uses: max_len, the split rule, quantize, block_size."""
    if "max_len" in config:
        check_int(config["max_len"], "config max_len", 1, MAX_LEN_LIMIT, source)
    if "split_seed" in config:
        check_int(config["split_seed"], "config split_seed", 0, SEED_MAX, source)
    if "split_fractions" in config:
        fractions = config["split_fractions"]
        if not (
            isinstance(fractions, list)
            and len(fractions) == 3
            and all(is_finite_number(f) and 0 < f < 1 for f in fractions)
            and abs(sum(fractions) - 1) < 1e-6
        ):
            raise ModelFileError(f"{source}: config split_fractions must be 3 fractions that sum to 1")
    if config.get("quantize") not in (None, "int8"):
        raise ModelFileError(f"{source}: config quantize must be int8 or absent, got {config['quantize']!r:.40}")
    if "block_size" in config and config["block_size"] != block_size:
        raise ModelFileError(f"{source}: config block_size {config['block_size']!r:.40} != block_size {block_size}")


def check_metrics(metrics: dict[str, Any], source: str) -> None:
    """Losses are finite numbers; the history holds lists of finite numbers."""
    for key in LOSS_KEYS:
        if key in metrics and not is_finite_number(metrics[key]):
            raise ModelFileError(f"{source}: metrics {key} must be a finite number, got {metrics[key]!r:.40}")
    history = metrics.get("history", {})
    if not isinstance(history, dict) or not all(
        isinstance(values, list) and all(is_finite_number(v) for v in values) for values in history.values()
    ):
        raise ModelFileError(f"{source}: metrics history must map names to lists of finite numbers")
    for x, y in HISTORY_PAIRS:
        if (x in history) != (y in history) or (x in history and len(history[x]) != len(history[y])):
            raise ModelFileError(f"{source}: metrics history {x} and {y} must be lists of the same length")


@dataclass(frozen=True)
class StateTensor:
    """One state input of a step model, the output that carries its next value, and its shape: ints, `batch`
    once, and (for a cache) `past`, the positions seen so far. The start state is zeros with past = 0."""

    input: str
    output: str
    shape: tuple[int | str, ...]

    @property
    def batch_axis(self) -> int:
        return self.shape.index(BATCH)

    def zeros_shape(self, batch: int, past: int = 0) -> tuple[int, ...]:
        return tuple(batch if d == BATCH else past if d == PAST else int(d) for d in self.shape)

    @property
    def is_cache(self) -> bool:
        """Whether it grows with the positions seen (a key/value cache)."""
        return PAST in self.shape


@dataclass(frozen=True)
class StateSpec:
    """What a step model carries between calls, and how many positions it can take (None: no limit)."""

    tensors: tuple[StateTensor, ...]
    max_positions: int | None = None

    def to_json(self) -> str:
        tensors = [{"input": t.input, "output": t.output, "shape": list(t.shape)} for t in self.tensors]
        return json.dumps({"tensors": tensors, "max_positions": self.max_positions}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source: str) -> StateSpec:
        """Parse and check `makemore.state`; ModelFileError on anything malformed."""
        spec = parse_json_object(text, "state", source)
        tensors, max_positions = spec.get("tensors"), spec.get("max_positions")
        if not isinstance(tensors, list) or not 1 <= len(tensors) <= MAX_STATE_TENSORS:
            raise ModelFileError(f"{source}: state tensors must be a list of 1 to {MAX_STATE_TENSORS} entries")
        if max_positions is not None:
            check_int(max_positions, "state max_positions", 2, MAX_BLOCK_SIZE, source)
        parsed = tuple(state_tensor(entry, source) for entry in tensors)
        names = [t.input for t in parsed] + [t.output for t in parsed]
        if len(set(names)) != len(names) or {"tokens", "logits"} & set(names):
            raise ModelFileError(f"{source}: state tensor names must be distinct from each other and tokens, logits")
        return cls(parsed, max_positions)

    @property
    def has_cache(self) -> bool:
        return any(t.is_cache for t in self.tensors)

    def row_bytes(self, positions: int) -> int:
        """Bytes of one name's float32 state after `positions` positions."""
        return 4 * sum(math.prod(t.zeros_shape(1, positions)) for t in self.tensors)

    def check_size(self, source: str) -> None:
        """A cache needs max_positions, and one name's state at its longest stays within MAX_STATE_ROW_BYTES."""
        if self.has_cache and self.max_positions is None:
            raise ModelFileError(f"{source}: a state with a `past` axis (a key/value cache) needs state max_positions")
        longest = self.row_bytes(self.max_positions or 1)
        if longest > MAX_STATE_ROW_BYTES:
            raise ModelFileError(
                f"{source}: its state holds {longest / 2**20:,.0f} MiB per name at its longest;"
                f" this runtime takes at most {MAX_STATE_ROW_BYTES >> 20} MiB"
            )


def state_tensor(entry: object, source: str) -> StateTensor:
    """One entry of `makemore.state`'s tensors: input and output names, and a shape with `batch` once."""
    if not isinstance(entry, dict) or set(entry) != {"input", "output", "shape"}:
        raise ModelFileError(f"{source}: a state tensor must have exactly input, output and shape")
    name_ok = all(isinstance(entry[k], str) and 0 < len(entry[k]) <= 128 for k in ("input", "output"))
    shape = entry["shape"]
    dims_ok = (
        isinstance(shape, list)
        and 1 <= len(shape) <= 8
        and all(d in (BATCH, PAST) or (is_int(d) and 1 <= d <= MAX_STATE_DIM) for d in shape)
    )
    if not (name_ok and dims_ok and shape.count(BATCH) == 1 and shape.count(PAST) <= 1):
        raise ModelFileError(f"{source}: malformed state tensor {str(entry)[:80]}")
    return StateTensor(entry["input"], entry["output"], tuple(shape))


@dataclass(frozen=True)
class ModelInfo:
    """Everything sampling needs besides the forward pass (the same fields as the checkpoint)."""

    kind: str
    vocab: Vocab
    block_size: int
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    data_sha256: str = ""
    contract: str = DEFAULT_CONTRACT
    state: StateSpec | None = None  # the step contract's state
    labels: tuple[str, ...] = ()  # a conditional model's labels (index order); () for an unlabelled model
    label_counts: tuple[int, ...] = ()  # how many training words carried each label

    @property
    def labelled(self) -> bool:
        """Whether the model is conditional: it takes a `label` input."""
        return bool(self.labels)

    @property
    def max_len(self) -> int:
        """The longest training word: the default bound on a sampled name."""
        return int(self.config.get("max_len", 32))

    @property
    def longest_name(self) -> int:
        """The longest name this model can take: a transformer's positions hold the boundary and the name."""
        limit = self.state.max_positions if self.state is not None else None
        return MAX_LEN_LIMIT if limit is None else min(MAX_LEN_LIMIT, limit - 1)

    def checked(self, source: str = "model") -> ModelInfo:
        """This info, after every field has passed the contract's checks (ModelFileError otherwise)."""
        if not isinstance(self.kind, str) or not 1 <= len(self.kind) <= MAX_KIND_LEN or not self.kind.isprintable():
            raise ModelFileError(f"{source}: kind must be a short printable name, got {self.kind!r:.40}")
        if self.contract not in CONTRACTS:
            raise ModelFileError(f"{source}: unknown contract {self.contract!r:.40}; this runtime reads {CONTRACTS}")
        if (self.contract == STEP) != (self.state is not None):
            raise ModelFileError(f"{source}: a step model needs makemore.state, a window model has none")
        if self.state is not None:
            self.state.check_size(source)
        check_vocab(self.vocab.chars, source)
        check_int(self.block_size, "block_size", 1, MAX_BLOCK_SIZE, source)
        if not isinstance(self.config, dict) or not isinstance(self.metrics, dict):
            raise ModelFileError(f"{source}: config and metrics must be JSON objects")
        check_config(self.config, self.block_size, source)
        if self.state is not None and self.max_len > self.longest_name:  # max_len is an int in range by now
            raise ModelFileError(f"{source}: config max_len {self.max_len} exceeds the model's positions")
        check_metrics(self.metrics, source)
        check_labels(self.labels, self.label_counts, source)
        if self.config.get("n_labels", 0) != len(self.labels):
            raise ModelFileError(f"{source}: config n_labels must equal the number of labels ({len(self.labels)})")
        if not isinstance(self.data_sha256, str) or not (self.data_sha256 == "" or SHA256.fullmatch(self.data_sha256)):
            raise ModelFileError(f"{source}: data_sha256 must be 64 hex digits or empty")
        return self

    def to_metadata(self) -> dict[str, str]:
        """The ONNX `metadata_props` entries (all strings; strict JSON, so never NaN)."""
        values = {
            "format_version": str(ONNX_FORMAT_VERSION),
            "contract": self.contract,
            "kind": self.kind,
            "vocab": self.vocab.chars,
            "block_size": str(self.block_size),
            "config": json.dumps(self.config, sort_keys=True, allow_nan=False),
            "metrics": json.dumps(self.metrics, sort_keys=True, allow_nan=False),
            "data_sha256": self.data_sha256,
        }
        if self.state is not None:
            values["state"] = self.state.to_json()
        if self.labels:
            values["labels"] = labels_json(self.labels, self.label_counts)
        return {METADATA_PREFIX + key: value for key, value in values.items()}

    @classmethod
    def from_metadata(cls, props: dict[str, str], source: str = "model") -> ModelInfo:
        """Parse and check `metadata_props`; ModelFileError on anything missing, unknown or malformed."""
        values = {k[len(METADATA_PREFIX) :]: v for k, v in props.items() if k.startswith(METADATA_PREFIX)}
        if not values:
            raise ModelFileError(f"{source} is not a makemore model: it has no makemore.* metadata")
        if values.get("format_version") != str(ONNX_FORMAT_VERSION):
            raise ModelFileError(
                f"{source} has makemore format version {values.get('format_version')!r:.40};"
                f" this runtime reads version {ONNX_FORMAT_VERSION}"
            )
        missing = [k for k in REQUIRED_KEYS if k not in values]
        if missing:
            raise ModelFileError(f"{source} lacks metadata: {', '.join(METADATA_PREFIX + k for k in missing)}")
        return cls(
            kind=values["kind"],
            vocab=check_vocab(values["vocab"], source),
            block_size=parse_int(values["block_size"], "block_size", 1, MAX_BLOCK_SIZE, source),
            config=parse_json_object(values["config"], "config", source),
            metrics=parse_json_object(values["metrics"], "metrics", source),
            data_sha256=values["data_sha256"],
            contract=values.get("contract", DEFAULT_CONTRACT),
            state=StateSpec.from_json(values["state"], source) if "state" in values else None,
            **(parse_labels(values["labels"], source) if "labels" in values else {}),
        ).checked(source)


def labels_json(names: tuple[str, ...], counts: tuple[int, ...]) -> str:
    """`makemore.labels`: {"names": [...], "counts": [...]} (a conditional model's labels, index order, and how
    many training words carried each)."""
    return json.dumps({"names": list(names), "counts": list(counts)}, sort_keys=True)


def parse_labels(text: str, source: str) -> dict[str, tuple[Any, ...]]:
    """`makemore.labels` as ModelInfo's labels and label_counts (checked by ModelInfo.checked)."""
    value = parse_json_object(text, "labels", source)
    names, counts = value.get("names"), value.get("counts")
    if set(value) != {"names", "counts"} or not isinstance(names, list) or not isinstance(counts, list):
        raise ModelFileError(f"{source}: labels must be an object of two lists, names and counts")
    return {"labels": tuple(names), "label_counts": tuple(counts)}


def first_label_problem(names: tuple[object, ...]) -> str | None:
    """The first of `names` data.labels.label_problem refuses, or None (an unlabelled model's none: that module,
    which the runtime needs for labelled models only, is not imported at mm-gen's cold start)."""
    if not names:
        return None
    from makemore.data.labels import label_problem

    return next((problem for problem in map(label_problem, names) if problem is not None), None)


def check_labels(names: object, counts: object, source: str) -> None:
    """Labels: 0 to MAX_LABELS distinct names (each as data.labels.label_problem allows) and as many counts,
    whole numbers >= 0 with a positive sum (a label is drawn from them); ModelFileError otherwise."""
    if not isinstance(names, tuple) or not isinstance(counts, tuple) or len(names) > MAX_LABELS:
        raise ModelFileError(f"{source}: labels must be at most {MAX_LABELS:,} names")
    if len(counts) != len(names):
        raise ModelFileError(f"{source}: labels need one count per name ({len(names)}), got {len(counts)}")
    problem = first_label_problem(names)
    if problem is not None or len(set(names)) != len(names):
        raise ModelFileError(f"{source}: labels must be distinct names ({problem or 'one is repeated'})")
    if not all(is_int(c) and 0 <= c <= 2**63 - 1 for c in counts) or (names and sum(counts) == 0):
        raise ModelFileError(f"{source}: label counts must be whole numbers >= 0, not all 0")


def summary_json(value: Any) -> Any:
    """`value` with every non-finite float replaced by None: what a JSON answer may carry."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: summary_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [summary_json(item) for item in value]
    return value
