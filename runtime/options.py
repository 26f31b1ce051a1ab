"""SamplingOptions: how names are drawn, validated in one place for the CLI, the server, novelty and both samplers."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from makemore.contract import MAX_LEN_LIMIT, ModelInfo
from makemore.data import SEED_MAX, UserError, Vocab


class SamplingError(UserError):
    """Sampling arguments that make no sense; `field` names the option at fault (None: the request as a whole)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Bound:
    """One option's JSON type and inclusive range: what the constructor checks and the server's schema says."""

    kind: type  # int, float or str (a str's bound is on its length)
    low: float | None = None
    high: float | None = None
    nullable: bool = False
    low_open: bool = False  # the low end itself is refused


BOUNDS: dict[str, Bound] = {
    "temperature": Bound(float, 0.0, None),  # 0: greedy (the likeliest character, as top_k=1)
    "top_k": Bound(int, 1, None, nullable=True),
    "top_p": Bound(float, 0.0, 1.0, nullable=True, low_open=True),
    "prefix": Bound(str, 0, MAX_LEN_LIMIT),
    "max_len": Bound(int, 1, MAX_LEN_LIMIT, nullable=True),
    "seed": Bound(int, 0, SEED_MAX, nullable=True),
}


def type_name(bound: Bound) -> str:
    name = {int: "an integer", float: "a number", str: "a string"}[bound.kind]
    return name + (" or null" if bound.nullable else "")


def check_option(name: str, value: Any, bound: Bound) -> Any:
    """`value` if it has the bound's type and lies in its range; SamplingError naming `name` otherwise."""
    if value is None and bound.nullable:
        return None
    is_int = isinstance(value, int) and not isinstance(value, bool)
    ok_type = {int: is_int, float: is_int or isinstance(value, float), str: isinstance(value, str)}[bound.kind]
    if not ok_type:
        raise SamplingError(f"{name} must be {type_name(bound)}, got {value!r:.40}", name)
    size = len(value) if bound.kind is str else value
    if bound.kind is float and not math.isfinite(value):
        raise SamplingError(f"{name} must be a finite number, got {value}", name)
    low_ok = bound.low is None or (size > bound.low if bound.low_open else size >= bound.low)
    if not low_ok or (bound.high is not None and size > bound.high):
        what = f"the length of {name}" if bound.kind is str else name
        low = "-inf" if bound.low is None else f"{bound.low:g}"
        high = "inf" if bound.high is None else f"{bound.high:,}" if bound.kind is not float else f"{bound.high:g}"
        interval = f"{'(' if bound.low_open else '['}{low}, {high}]"
        raise SamplingError(f"{what} must be in {interval}, got {size!r:.40}", name)
    return value


@dataclass(frozen=True)
class SamplingOptions:
    """How to draw names: temperature (0 = greedy), top_k, top_p, a prefix, the longest name, a seed.

    Checked when built: a bad value is a SamplingError naming the field. What depends on the model
    (the prefix's characters, max_len's default and ceiling) is checked by `prefix_ids` and `length`.
    """

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    prefix: str = ""
    max_len: int | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        for spec in fields(self):
            check_option(spec.name, getattr(self, spec.name), BOUNDS[spec.name])
        if self.max_len is not None and len(self.prefix) > self.max_len:
            raise SamplingError(f"prefix is longer ({len(self.prefix)}) than max_len ({self.max_len})", "prefix")

    @classmethod
    def of(cls, options: SamplingOptions | None = None, **values: Any) -> SamplingOptions:
        """`options` with `values` replacing its fields (unknown names are a SamplingError); `options` itself when
        nothing replaces it (a request's options are built and checked once)."""
        if isinstance(options, cls) and not values:
            return options
        unknown = sorted(set(values) - set(BOUNDS))
        if unknown:
            raise SamplingError(f"unknown sampling option {unknown[0]!r}; known: {', '.join(BOUNDS)}", unknown[0])
        base = {spec.name: getattr(options, spec.name) for spec in fields(cls)} if options is not None else {}
        return cls(**{**base, **values})

    def prefix_ids(self, vocab: Vocab) -> list[int]:
        """The prefix as indices; SamplingError when a character is outside the model's vocabulary."""
        bad = sorted(set(self.prefix) - set(vocab.chars))
        if bad:
            raise SamplingError(f"prefix has characters outside the model's vocabulary: {''.join(bad)!r:.60}", "prefix")
        return [vocab.index[ch] for ch in self.prefix]

    def length(self, info: ModelInfo, ceiling: int = MAX_LEN_LIMIT) -> int:
        """The longest name to sample: max_len, or the model's longest training word; at most `ceiling`."""
        max_len = info.max_len if self.max_len is None else self.max_len
        if max_len > ceiling:
            raise SamplingError(f"max_len must be at most {ceiling:,} for this model, got {max_len}", "max_len")
        if len(self.prefix) > max_len:
            raise SamplingError(f"prefix is longer ({len(self.prefix)}) than max_len ({max_len})", "prefix")
        return max_len
