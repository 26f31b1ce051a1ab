"""Training configs: each kind's defaults and presets, the checks of every value, and the block size a sequence
kind takes from its data (ConfigError naming the flag otherwise)."""

from __future__ import annotations

import math
from collections.abc import Mapping

from makemore.data import Tokens, check_seed
from makemore.data.bounds import TRAINING, Bound
from makemore.train.kinds import KINDS, SEQUENCE_KINDS, ConfigError, kind_spec
from makemore.train.memory import check_memory

# Hyperparameters of each kind (train/kinds.py). `steps`, `lr`, ... are what the CLI flags override.
DEFAULTS: dict[str, Mapping] = {name: spec.defaults for name, spec in KINDS.items()}

# Named MLP configs, each with the val loss it reached here (see the README's tables).
PRESETS: dict[str, dict] = {
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

ARCHITECTURE_KEYS = ("block_size", "n_embd", "n_hidden", "norm", "n_layer", "n_head")  # fixed once a model is built
# What a checkpoint's config also records; n_labels: a conditional model's label count (absent: unlabelled).
RECORD_KEYS = ("split_seed", "split_fractions", "max_len", "steps_done", "n_labels")

# Ranges of the flags (data/bounds.py's table): beyond them a run cannot be meant (check_memory guards what is inside).
INT_LIMITS = {key: int(b.high) for key, b in TRAINING.items() if b.kind is int and b.low == 1 and b.high is not None}
SMOOTHING_RANGE = (TRAINING["smoothing"].low, TRAINING["smoothing"].high)


def flag(key: str) -> str:
    """The command-line flag of a config key: n_hidden -> --n-hidden."""
    return "--" + key.replace("_", "-")


def make_config(kind: str, preset: str | None = None, /, **overrides) -> dict:
    """The full hyperparameter dict for `kind`: defaults, then the preset, then non-None overrides.

    Every value given is checked, even one that `kind` does not use. `kind` and `preset` are positional, so no key
    of a config passed as overrides (a checkpoint's, when resuming) can stand for them.
    """
    config = dict(kind_spec(kind).defaults)
    if preset is not None:
        if kind != "mlp" or preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r} for {kind}: choose one of {', '.join(PRESETS)}")
        config.update(PRESETS[preset])
    given = {k: v for k, v in overrides.items() if v is not None}
    check_values(given)
    accepted = set(config) | ({"block_size"} if kind in SEQUENCE_KINDS else set())  # sequences: set from the data
    config.update({k: v for k, v in given.items() if k in accepted or k in RECORD_KEYS})
    check_config(kind, config)
    return config


def check_config(kind: str, config: dict) -> None:
    """Raise a UserError naming the flag of the first value out of its range, or of a model too big for memory.

    The memory check here assumes the smallest data (any data can only add to it); run.py checks again
    with the real data before building anything.
    """
    check_architecture(kind, config)
    check_memory(kind, config, vocab_size=2, split_sizes={}, defaults=size_defaults(kind))


def check_architecture(kind: str, config: dict) -> None:
    """Every known value in its range, and a model of `kind` that these values can build (ConfigError)."""
    check_values(config)
    kind_spec(kind).check(config)


def size_defaults(kind: str, split: dict[str, Tokens] | None = None) -> dict:
    """The values a memory error compares the size flags with: DEFAULTS, plus for the sequence kinds (whose
    block_size comes from the data) the smallest block_size that the data allows (1 without data)."""
    if kind not in SEQUENCE_KINDS:
        return dict(DEFAULTS[kind])
    smallest = 1 if split is None else with_block_size(kind, DEFAULTS[kind], split)["block_size"]
    return {**DEFAULTS[kind], "block_size": smallest}


def check_values(values: dict) -> None:
    """Check each known key's value against its range (ConfigError, or UserError for seeds)."""
    for key, value in values.items():
        bound = TRAINING.get(key)
        if bound is not None and bound.kind is int:
            _check_int(key, value, int(bound.high or 0), low=int(bound.low or 0))
        elif key in ("seed", "split_seed"):
            _check_seed(key, value)
        elif bound is not None:
            _check_float(key, value, bound)
        elif key == "optimizer" and value not in ("sgd", "adam", "adamw"):
            raise ConfigError(f"--optimizer must be sgd, adam or adamw, got {shown(repr(value))}")
        elif key == "norm" and value not in ("batch", "layer"):
            raise ConfigError(f"--norm must be batch or layer, got {shown(repr(value))}")


def shown(value: object) -> str:
    """A value as an error message shows it: at most 40 characters (an integer may have thousands of digits)."""
    try:
        text = str(value)
    except ValueError:  # an int beyond Python's limit on digits converted to text
        return "a huge integer"
    return text if len(text) <= 40 else text[:37] + "..."


def _check_seed(key: str, value: object) -> None:
    if isinstance(value, int) and value.bit_length() > 64:  # check_seed would print all its digits
        raise ConfigError(f"{flag(key)} must be an integer from 0 to 2**64-1, got {shown(value)}")
    check_seed(value, flag(key))


def _check_int(key: str, value: object, high: int, low: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        what = "a positive integer" if low == 1 else f"an integer from {low}"
        raise ConfigError(f"{flag(key)} must be {what} up to {high:,}, got {shown(value)}")


def _check_float(key: str, value: object, bound: Bound) -> None:
    """A finite real number within `bound`; ConfigError naming the flag otherwise (NaN and inf included)."""
    try:
        number = float(value) if not isinstance(value, (bool, str)) else math.nan  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    if not (math.isfinite(number) and bound.in_range(number)):
        raise ConfigError(f"{flag(key)} must be {bound.words or 'in ' + bound.interval()}, got {shown(value)}")


def with_block_size(kind: str, config: dict, split: dict[str, Tokens]) -> dict:
    """Sequence kinds: block_size = the longest word of all splits + 1 (makemore.py's rule) unless already set.

    A block_size set already (--block-size, or a resumed checkpoint's) must hold every word: ConfigError if not.
    Window kinds: the config unchanged.
    """
    if kind not in SEQUENCE_KINDS:
        return config
    longest = max(int(split[name].lengths.max(initial=0)) for name in ("train", "val", "test"))
    if config.get("block_size") is None:
        return {**config, "block_size": longest + 1}
    if config["block_size"] < longest + 1:
        raise ConfigError(
            f"block-size {config['block_size']} of this {kind} is too short for the data's longest word"
            f" ({longest} characters): it needs at least {longest + 1}"
        )
    return config
