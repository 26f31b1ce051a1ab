"""SamplingOptions: how names are drawn, validated in one place for the CLI, the server, novelty and both samplers."""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass, fields
from typing import Any

from makemore.contract import MAX_LEN_LIMIT, ModelInfo
from makemore.data import UserError, Vocab
from makemore.data.bounds import MAX_EXCLUDE_CHARS, SAMPLING, Bound, is_finite


class SamplingError(UserError):
    """Sampling arguments that make no sense; `field` names the option at fault (None: the request as a whole)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


BOUNDS: dict[str, Bound] = SAMPLING  # data/bounds.py's table, the one place these ranges are written


def type_name(bound: Bound) -> str:
    name = {int: "an integer", float: "a number", str: "a string", tuple: "a list of strings"}[bound.kind]
    return name + (" or null" if bound.nullable else "")


def check_option(name: str, value: Any, bound: Bound) -> Any:
    """`value` if it has the bound's type and lies in its range; SamplingError naming `name` otherwise."""
    if value is None and bound.nullable:
        return None
    if not bound.has_type(value):
        raise SamplingError(f"{name} must be {type_name(bound)}, got {value!r:.40}", name)
    if bound.kind is float and not is_finite(value):
        raise SamplingError(f"{name} must be a finite number, got {value!r:.40}", name)
    size = len(value) if bound.kind in (str, tuple) else value
    if not bound.in_range(size):
        words: dict[type, str] = {str: f"the length of {name}", tuple: f"the number of {name}"}
        what = words.get(bound.kind, name)
        raise SamplingError(f"{what} must be in {bound.interval()}, got {size!r:.40}", name)
    return value


@dataclass(frozen=True)
class SamplingOptions:
    """How to draw names: temperature (0 = greedy), top_k, top_p, a prefix, the longest name, a seed, the
    constraints every name satisfies: min_len, ends_with, contains, match (a regular expression the whole name
    matches) and exclude (names never drawn; a list is kept as a sorted tuple of distinct names), and a
    conditional model's label (None: each name's label is drawn from the training frequencies, from the seed).

    Checked when built: a bad value is a SamplingError naming the field. What depends on the model
    (the prefix's characters, max_len's default and ceiling) is checked by `prefix_ids` and `length`; the
    constraints are compiled (and an impossible one refused) by runtime.constraints.compile_constraints.
    """

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    prefix: str = ""
    max_len: int | None = None
    seed: int | None = None
    min_len: int | None = None
    ends_with: str = ""
    contains: str = ""
    match: str = ""
    exclude: list[str] | tuple[str, ...] | AbstractSet[str] = ()  # kept as a sorted tuple of distinct names
    label: str | None = None

    def __post_init__(self) -> None:
        for spec in fields(self):
            check_option(spec.name, getattr(self, spec.name), BOUNDS[spec.name])
        if self.max_len is not None and len(self.prefix) > self.max_len:
            raise SamplingError(f"prefix is longer ({len(self.prefix)}) than max_len ({self.max_len})", "prefix")
        if self.max_len is not None and self.min_len is not None and self.min_len > self.max_len:
            raise SamplingError(f"min_len ({self.min_len}) is above max_len ({self.max_len})", "min_len")
        object.__setattr__(self, "exclude", check_exclude(self.exclude))

    @property
    def constrained(self) -> bool:
        """Whether a constraint beyond prefix and max_len is set (the sampling loop then masks characters)."""
        return bool(self.min_len or self.ends_with or self.contains or self.match or self.exclude)

    @classmethod
    def of(cls, options: SamplingOptions | None = None, **values: Any) -> SamplingOptions:
        """`options` with `values` replacing its fields (unknown names are a SamplingError); `options` itself when
        nothing replaces it (a request's options are built and checked once)."""
        if options is not None and not isinstance(options, cls):
            raise SamplingError(f"options must be a SamplingOptions or None, got {type(options).__name__}")
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

    def label_index(self, info: ModelInfo) -> int | None:
        """The label's index among a conditional model's labels, or None (no label given); SamplingError naming
        "label" for a label the model does not know or a label given to an unlabelled model."""
        return label_index(self.label, info)

    def for_model(self, info: ModelInfo, ceiling: int | None = None) -> tuple[list[int], int, int | None]:
        """What these options ask of `info`'s model, checked in one order on every surface: the prefix's indices,
        the longest name (at most `ceiling`: the model's longest_name, or a server's lower bound) and the label's
        index (or None)."""
        longest = info.longest_name if ceiling is None else min(ceiling, info.longest_name)
        return self.prefix_ids(info.vocab), self.length(info, ceiling=longest), self.label_index(info)

    def length(self, info: ModelInfo, ceiling: int = MAX_LEN_LIMIT) -> int:
        """The longest name to sample: max_len, or the model's longest training word; at most `ceiling`."""
        max_len = info.max_len if self.max_len is None else self.max_len
        if max_len > ceiling:
            raise SamplingError(f"max_len must be at most {ceiling:,} for this model, got {max_len}", "max_len")
        if len(self.prefix) > max_len:
            raise SamplingError(f"prefix is longer ({len(self.prefix)}) than max_len ({max_len})", "prefix")
        if self.min_len is not None and self.min_len > max_len:
            raise SamplingError(f"min_len ({self.min_len}) is above max_len ({max_len})", "min_len")
        return max_len


def check_exclude(names: Any) -> tuple[str, ...]:
    """The exclude set as a sorted tuple of distinct names; SamplingError when its characters pass MAX_EXCLUDE_CHARS."""
    total = sum(len(name) for name in names)
    if total > MAX_EXCLUDE_CHARS:
        message = f"exclude must hold at most {MAX_EXCLUDE_CHARS:,} characters in all, got {total:,}"
        raise SamplingError(message, "exclude")
    return tuple(sorted(set(names)))


def label_index(label: str | None, info: ModelInfo) -> int | None:
    """`label`'s index among the model's labels (None stays None); SamplingError naming "label" for an unknown
    label, or for any label given to an unlabelled model."""
    if check_option("label", label, BOUNDS["label"]) is None:  # its type and length first, as SamplingOptions checks
        return None
    if not info.labelled:
        raise SamplingError(f"label {label!r:.40} given, but this model has no labels (it is not conditional)", "label")
    if label not in info.labels:
        known = ", ".join(info.labels[:10]) + (", ..." if len(info.labels) > 10 else "")
        raise SamplingError(f"unknown label {label!r:.40}: this model's labels are {known:.200}", "label")
    return info.labels.index(label)
