"""One table of bounds: the type and range of every number and string a user gives, in one place.

The CLIs and the server check sampling options against SAMPLING (runtime.options.SamplingOptions), the trainer
checks its flags against TRAINING (train.trainer.check_values), and mm-web writes SAMPLING into its site's JSON,
which the page reads instead of a copy. Each layer words its own error (a flag, a JSON field), from these bounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from makemore.data.dataset import SEED_MAX

FLOAT32_MAX = 3.4028234663852886e38  # the largest float32 (numpy.finfo(numpy.float32).max)
MAX_LEN_LIMIT = 100_000  # characters in one name: beyond it, a request or a file is a mistake
MAX_LABELS = 10_000  # distinct labels a file (so a model) may hold
MAX_LABEL_LEN = 64  # characters of one label
MAX_WORKERS = 1024  # threads one request may ask for (fewer run: see runtime.sampling.busy_workers)
MAX_REGEX = 200  # characters of a `match` regular expression ...
MAX_REGEX_STATES = 4096  # ... and states of each automaton interegular builds for it (its DFA and its parts) ...
MAX_REGEX_WORK = 1 << 21  # ... and the work of building them all (see runtime.constraints.charge)
MAX_EXCLUDE = 100_000  # names an `exclude` set may hold ...
MAX_EXCLUDE_CHARS = 1 << 20  # ... and characters in all (the trie holds about this many states)
AUTOMATON_CELLS = 1 << 22  # a request's constraint automaton: states x vocabulary, and states x (max_len + 1)
AUTOMATON_WORK = 1 << 28  # ... and states x vocabulary x (max_len + 1), the work of its table of live states
MIXTURE_WORK = 1 << 24  # a conditional model's score without a label: labels x the names' predicted characters


def is_finite(number: float) -> bool:
    """Whether a number is finite as a float: NaN, the infinities and an int too large for a float (10**400) are not."""
    try:
        return math.isfinite(number)
    except OverflowError:
        return False


@dataclass(frozen=True)
class Bound:
    """One value's type and range: `kind` int, float, str (a str's bound is on its length) or tuple (a list of
    strings, bounded in count); `low`/`high` None for
    no bound; an open end excludes the bound itself; `words` says the range in words where the interval reads
    poorly (the trainer's messages)."""

    kind: type
    low: float | None = None
    high: float | None = None
    nullable: bool = False
    low_open: bool = False
    high_open: bool = False
    words: str = ""

    def has_type(self, value: object) -> bool:
        """Whether `value` is of this bound's type (a bool is no number; an int is a float)."""
        is_int = isinstance(value, int) and not isinstance(value, bool)
        if self.kind is tuple:  # a list of strings (the bound is on its count)
            return isinstance(value, (list, tuple, set, frozenset)) and all(isinstance(item, str) for item in value)
        if self.kind is int:
            return is_int
        if self.kind is float:
            return is_int or isinstance(value, float)
        return isinstance(value, self.kind)

    def in_range(self, size: float) -> bool:
        """Whether a number (or a string's length) lies within the bounds; NaN never does."""
        if isinstance(size, float) and math.isnan(size):
            return False
        low_ok = self.low is None or (size > self.low if self.low_open else size >= self.low)
        high_ok = self.high is None or (size < self.high if self.high_open else size <= self.high)
        return low_ok and high_ok

    def admits(self, value: object) -> bool:
        """Whether `value` passes: None where nullable, else the right type, finite (a float) and in range."""
        if value is None:
            return self.nullable
        if not self.has_type(value):
            return False
        if self.kind is float and not is_finite(value):  # type: ignore[arg-type]
            return False
        return self.in_range(len(value) if self.kind in (str, tuple) else value)  # type: ignore[arg-type]

    def interval(self) -> str:
        """The range as an interval: [0, inf], (0, 1], [1, 100,000]."""
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:,}" if self.kind is not float else f"{self.high:g}"
        return f"{'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"

    def to_json(self) -> dict[str, Any]:
        """The bound as the page reads it (site.json's `bounds`); an integer bound beyond 2**53 (a seed's) is a string
        of its digits, which JavaScript reads exactly with BigInt."""

        def exact(end: float | None) -> float | str | None:
            return str(end) if isinstance(end, int) and abs(end) > 2**53 else end

        return {
            "type": {int: "integer", float: "number", str: "string", tuple: "array"}[self.kind],
            "low": exact(self.low),
            "high": exact(self.high),
            "nullable": self.nullable,
            "low_open": self.low_open,
            "high_open": self.high_open,
        }


# How names are drawn: SamplingOptions' fields, as mm-gen, the API, the server and the page take them.
SAMPLING: dict[str, Bound] = {
    "temperature": Bound(float, 0.0, None),  # 0: greedy (the likeliest character, as top_k=1)
    "top_k": Bound(int, 1, None, nullable=True),
    "top_p": Bound(float, 0.0, 1.0, nullable=True, low_open=True),
    "prefix": Bound(str, 0, MAX_LEN_LIMIT),
    "max_len": Bound(int, 1, MAX_LEN_LIMIT, nullable=True),
    "seed": Bound(int, 0, SEED_MAX, nullable=True),
    # Constraints (runtime.constraints): every name drawn satisfies all of them.
    "min_len": Bound(int, 1, MAX_LEN_LIMIT, nullable=True),
    "ends_with": Bound(str, 0, MAX_LEN_LIMIT),
    "contains": Bound(str, 0, MAX_LEN_LIMIT),
    "match": Bound(str, 0, MAX_REGEX),  # a regular expression the whole name matches (re.fullmatch)
    "exclude": Bound(tuple, 0, MAX_EXCLUDE),  # names never drawn (their characters: MAX_EXCLUDE_CHARS in all)
    "label": Bound(str, 1, MAX_LABEL_LEN, nullable=True),  # a conditional model's label (None: drawn per name)
}

# Beam search (runtime.beam): the rows it keeps (its memory) and the names it returns; its rows' characters
# (width x (max_len + 1)) at most BEAM_CELLS.
BEAM_CELLS = 1 << 22
BEAM: dict[str, Bound] = {
    "beam": Bound(int, 1, 256),
    "n": Bound(int, 1, 1000),
}

# mm-serve's own flags: what one server holds is bounded by them (16 requests in flight of at most max_body bytes,
# answers of at most max_n names); its processes (--workers) are bounded by the usable cores at start.
SERVER: dict[str, Bound] = {
    "max_n": Bound(int, 1, 1_000_000),
    "max_body": Bound(int, 1, 64 << 20),
}

# mm-train's and mm-sweep's numbers: beyond them a run cannot be meant (train.memory checks what is inside).
TRAINING: dict[str, Bound] = {
    "block_size": Bound(int, 1, 1024),
    "n_embd": Bound(int, 1, 2**20),
    "n_hidden": Bound(int, 1, 2**20),
    "n_layer": Bound(int, 1, 1024),
    "n_head": Bound(int, 1, 1024),
    "steps": Bound(int, 1, 10_000_000),
    "batch_size": Bound(int, 1, 2**20),
    "buckets": Bound(int, 1, 1024),
    "warmup": Bound(int, 0, 10_000_000),
    "steps_done": Bound(int, 0, 2**63 - 1),
    "n_labels": Bound(int, 1, MAX_LABELS),
    # the optimizers compute in float32: a larger rate or decay is not a number they can hold
    "lr": Bound(float, 0.0, FLOAT32_MAX, low_open=True, words="a positive number up to 3.4e38"),
    "weight_decay": Bound(float, 0.0, FLOAT32_MAX, words="a number from 0 to 3.4e38"),
    "dropout": Bound(float, 0.0, 1.0, high_open=True, words="in [0, 1)"),
    # add-k: k > 0 keeps every log-probability finite, k <= 1e12 keeps the sums finite
    "smoothing": Bound(float, 1e-12, 1e12, words="a number from 1e-12 to 1e12 (k > 0)"),
    "grad_clip": Bound(float, 0.0, None, low_open=True, words="a positive number"),
    "beta2": Bound(float, 0.0, 1.0, low_open=True, high_open=True, words="in (0, 1)"),
    "ema": Bound(float, 0.0, 1.0, high_open=True, words="in [0, 1) (0: no average)"),
}
