"""Training configs: each kind's defaults and presets, the checks of every value, and the block size a sequence
kind takes from its data (ConfigError naming the flag otherwise). The configs are typed (train/config_types.py);
the flags and the checks read them by key, through `Config.flat()` and `Config.replace`."""

from __future__ import annotations

import math
from typing import Any

from makemore.data import Tokens, check_seed
from makemore.data.bounds import TRAINING, Bound
from makemore.train.config_types import RECORD_KEYS, Config
from makemore.train.kinds import KINDS, SEQUENCE_KINDS, ConfigError, kind_spec
from makemore.train.memory import check_memory

__all__ = ["RECORD_KEYS", "Config", "make_config"]

# Each kind's default config (train/kinds.py). `steps`, `lr`, ... are what the CLI flags override.
DEFAULTS: dict[str, Config] = {name: spec.defaults for name, spec in KINDS.items()}

ARCHITECTURE_KEYS = ("block_size", "n_embd", "n_hidden", "norm", "n_layer", "n_head")  # fixed once a model is built

# Ranges of the flags (data/bounds.py's table): beyond them a run cannot be meant (check_memory guards what is inside).
INT_LIMITS = {key: int(b.high) for key, b in TRAINING.items() if b.kind is int and b.low == 1 and b.high is not None}
SMOOTHING_RANGE = (TRAINING["smoothing"].low, TRAINING["smoothing"].high)


def flag(key: str) -> str:
    """The command-line flag of a config key: n_hidden -> --n-hidden."""
    return "--" + key.replace("_", "-")


def make_config(kind: str, preset: str | None = None, /, **overrides: Any) -> Config:
    """The typed config of `kind`: its defaults, then the preset, then the non-None overrides.

    Every value given is checked, even one that `kind` does not use (and ignores: see Config.settable). `kind` and
    `preset` are positional, so no key of a config passed as overrides (a checkpoint's, when resuming) can stand
    for them.
    """
    config = kind_spec(kind).defaults
    if preset is not None:
        presets = kind_spec(kind).presets
        if preset not in presets:
            choices = f"choose one of {', '.join(presets)}" if presets else "it has none"
            raise ConfigError(f"unknown preset {preset!r} for {kind}: {choices}")
        config = config.replace(**presets[preset])
    given = {k: v for k, v in overrides.items() if v is not None}
    check_values(given)
    config = config.replace(**{k: v for k, v in given.items() if k in config.settable()})
    check_config(kind, config)
    return config


# Settings added after checkpoint format 1, with what a run of that format did: its checkpoints lack them, and the
# kind's default today may differ (the transformer averages its weights since issue 22).
ABSENT_FROM_FORMAT_1: dict[str, Any] = {"ema": 0.0}


def from_flat(kind: str, flat: dict[str, Any]) -> Config:
    """A flat config (checkpoint format 1's) as the typed one of `kind`: each key the kind takes set, the others
    dropped (as resuming always did), ABSENT_FROM_FORMAT_1 and then the kind's defaults for what it lacks. No
    checks: see make_config."""
    config = kind_spec(kind).defaults
    config = config.replace(**{k: v for k, v in ABSENT_FROM_FORMAT_1.items() if k in config.settable()})
    return config.replace(**{k: v for k, v in flat.items() if k in config.settable() and v is not None})


def check_config(kind: str, config: Config) -> None:
    """Raise a UserError naming the flag of the first value out of its range, or of a model too big for memory.

    The memory check here assumes the smallest data (any data can only add to it); run.py checks again
    with the real data before building anything.
    """
    check_architecture(kind, config)
    check_memory(kind, config, vocab_size=2, split_sizes={}, defaults=size_defaults(kind))


def check_architecture(kind: str, config: Config) -> None:
    """Every known value in its range, and a model of `kind` that these values can build (ConfigError)."""
    check_values(config.flat())
    kind_spec(kind).check(config)


def size_defaults(kind: str, split: dict[str, Tokens] | None = None) -> dict[str, Any]:
    """The values a memory error compares the size flags with: DEFAULTS (flat), plus for the sequence kinds (whose
    block_size comes from the data) the smallest block_size that the data allows (1 without data)."""
    if kind not in SEQUENCE_KINDS:
        return DEFAULTS[kind].flat()
    smallest = 1 if split is None else with_block_size(kind, DEFAULTS[kind], split).block_size
    return {**DEFAULTS[kind].flat(), "block_size": smallest}


def check_values(values: dict[str, Any]) -> None:
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


def with_block_size(kind: str, config: Config, split: dict[str, Tokens]) -> Config:
    """Sequence kinds: block_size = the longest word of all splits + 1 (makemore.py's rule) unless already set.

    A block_size set already (--block-size, or a resumed checkpoint's) must hold every word: ConfigError if not.
    Window kinds: the config unchanged.
    """
    if kind not in SEQUENCE_KINDS:
        return config
    longest = max(int(split[name].lengths.max(initial=0)) for name in ("train", "val", "test"))
    if config.block_size is None:
        return config.replace(block_size=longest + 1)
    if config.block_size < longest + 1:
        raise ConfigError(
            f"the block size of this {kind} ({config.block_size}: --block-size, or a resumed checkpoint's) is too short"
            f" for the data's longest word ({longest} characters): it needs at least {longest + 1}"
        )
    return config
