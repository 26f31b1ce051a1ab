"""Negative log-likelihood of words under a model, from any logits function, in bounded memory."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
from makemore.contract import ModelInfo, StepFn, empty_state
from makemore.contract.signature import check_finite_logits, state_of
from makemore.data import DatasetError, make_examples
from makemore.data.bounds import MIXTURE_WORK
from makemore.data.dataset import encode_words
from makemore.runtime.options import SamplingError

CHUNK = 8192  # examples (predicted characters) per forward call and per group of words: 8,192 scores as fast
# as 65,536 and keeps the peak of scoring 10,000 names of 100 characters at 106 MB instead of 204
SCORE_BYTES = 64 << 20  # what one scoring call may hold (contexts, float64 logits, a step model's state): fewer
# examples per call only where a file's vocabulary, block_size or state is big
LogitsFn = Callable[..., np.ndarray]  # int64 context [B, T] (and a conditional model's label [B]) -> logits [B, V]


def position_bytes(info: ModelInfo) -> int:
    """Bytes one predicted character costs a scoring call besides the state: its context, four float64 copies
    of its logits."""
    return 8 * info.block_size + 32 * info.vocab.size


def examples_per_call(info: ModelInfo) -> int:
    """Examples (predicted characters) per forward call: CHUNK, fewer where they would pass SCORE_BYTES (at least 1)."""
    return max(1, min(CHUNK, SCORE_BYTES // position_bytes(info)))


def example_nll(logits_fn: LogitsFn, x: np.ndarray, y: np.ndarray, rows: int = CHUNK) -> np.ndarray:
    """NLL in nats of each target y[i] given context x[i] (float64 [N]), `rows` examples per call; non-finite
    logits are a ModelOutputError."""
    out = np.empty(len(y), dtype=np.float64)
    for start in range(0, len(y), rows):
        logits = check_finite_logits(np.asarray(logits_fn(x[start : start + rows]), dtype=np.float64), "while scoring")
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(shifted).sum(axis=1))
        targets = y[start : start + rows]
        out[start : start + rows] = log_norm - shifted[np.arange(len(targets)), targets]
    return out


def word_groups(
    words: list[str], limit: int = CHUNK, padded: bool = False, max_rows: int | None = None
) -> Iterator[list[str]]:
    """Consecutive groups of words with at most `limit` predicted characters each (a longer word alone) and at
    most `max_rows` words; `padded`: counted as the group's rows times its longest word, as a padded batch holds
    them."""
    group: list[str] = []
    size = longest = 0
    for word in words:
        longest_with = max(longest, len(word) + 1)
        size_with = longest_with * (len(group) + 1) if padded else size + len(word) + 1
        if group and (size_with > limit or len(group) == max_rows):
            yield group
            group, longest = [], 0
            longest_with = len(word) + 1
            size_with = len(word) + 1
        group.append(word)
        size, longest = size_with, longest_with
    if group:
        yield group


WordNll = Callable[[list[str]], Iterator[np.ndarray]]  # words -> each word's NLL per predicted character


def with_label(fn: Callable[..., Any], label: int | None) -> Callable[..., Any]:
    """`fn` fed `label` (a conditional model's label index) on every row as its last argument; `fn` when None."""
    if label is None:
        return fn

    def labelled(first: np.ndarray, *rest: Any) -> Any:
        return fn(first, *rest, np.full(len(first), label, dtype=np.int64))

    return labelled


def window_word_nll(
    logits_fn: LogitsFn, info: ModelInfo, words: list[str], label: int | None = None
) -> Iterator[np.ndarray]:
    """For each word, the NLL of each predicted character (its letters, then its end), group by group (a
    conditional model's under label index `label`)."""
    rows = examples_per_call(info)
    logits_fn = with_label(logits_fn, label)
    for group in word_groups(words, rows):
        nll = example_nll(logits_fn, *make_examples(group, info.vocab, info.block_size), rows)
        ends = np.cumsum([len(word) + 1 for word in group])
        yield from np.split(nll, ends[:-1])


def step_word_nll(step_fn: StepFn, info: ModelInfo, words: list[str], label: int | None = None) -> Iterator[np.ndarray]:
    """The same for a step model: each padded group of words in multi-step calls from the empty state, groups
    bounded by SCORE_BYTES (their logits and state); a group's positions go in one call, or, for a word alone that
    passes examples_per_call (a long word, a big vocabulary), in calls of that many positions, the state carried
    from one to the next; a word longer than the model's positions is a DatasetError."""
    longest = max(map(len, words), default=0)
    if longest > info.longest_name:
        raise DatasetError(f"a word of {longest:,} characters is longer than this model takes ({info.longest_name:,})")
    max_rows = max(1, SCORE_BYTES // state_of(info).row_bytes(longest + 1))
    step_fn = with_label(step_fn, label)
    per_call = examples_per_call(info)
    for group in word_groups(words, per_call, padded=True, max_rows=max_rows):
        width = max(len(word) for word in group) + 1
        tokens = np.zeros((len(group), width), dtype=np.int64)  # boundary, the word, boundary padding
        ids = encode_words(group, info.vocab)
        rows = np.repeat(np.arange(len(group)), [len(word) for word in group])
        cols = np.concatenate([np.arange(1, len(word) + 1) for word in group]) if len(ids) else ids
        tokens[rows, cols] = ids
        targets = np.concatenate([tokens[:, 1:], np.zeros((len(group), 1), dtype=np.int64)], axis=1)
        nll = np.empty((len(group), width), dtype=np.float64)
        state = empty_state(info, len(group))
        step = max(1, per_call // len(group))
        for first in range(0, width, step):
            cut = slice(first, first + step)
            output, state = step_fn(tokens[:, cut], state)
            logits = np.asarray(output, dtype=np.float64)
            check_finite_logits(logits, "while scoring")
            shifted = logits - logits.max(axis=2, keepdims=True)
            log_probs = shifted - np.log(np.exp(shifted).sum(axis=2, keepdims=True))
            nll[:, cut] = -np.take_along_axis(log_probs, targets[:, cut, None], axis=2)[:, :, 0]
        yield from (nll[row, : len(word) + 1] for row, word in enumerate(group))


def nll_totals(word_nll: WordNll, words: list[str]) -> tuple[float, int]:
    """Summed NLL and predicted characters (each word's letters and its end) over `words`."""
    total, count = 0.0, 0
    for nll in word_nll(words):
        total, count = total + float(nll.sum()), count + len(nll)
    return total, count


def mean_nll(word_nll: WordNll, words: list[str]) -> float:
    """Mean NLL per predicted character (each word's letters and its end) over `words` (DatasetError for none)."""
    if not words:
        raise DatasetError("no words to compute a loss on")
    total, count = nll_totals(word_nll, words)
    return total / count


def as_words(words: Iterable[str]) -> list[str]:
    """Names or words passed to the API as one list (an iterator is read once, here); DatasetError for a string
    (its characters would be scored one by one), an item that is not a string, or an empty word."""
    if isinstance(words, (str, bytes)):
        raise DatasetError("give a list of names, not one string")
    if not isinstance(words, Iterable):
        raise DatasetError(f"give a list of names, got {type(words).__name__}")
    listed = list(words)
    for word in listed:
        if not isinstance(word, str):
            raise DatasetError(f"names must be strings, got {type(word).__name__}")
        if not word:
            raise DatasetError("cannot score an empty name")
    return listed


def check_names(info: ModelInfo, names: list[str]) -> None:
    """Names that can be scored: none empty or longer than the model takes, every character in its vocabulary."""
    for name in names:
        if not name:
            raise DatasetError("cannot score an empty name")
        if len(name) > info.longest_name:
            raise DatasetError(f"cannot score a name longer than {info.longest_name:,} characters with this model")
    encode_words(names, info.vocab)  # refuse any character outside the vocabulary before the first forward call


def score_names(word_nll: WordNll, info: ModelInfo, names: list[str]) -> list[float]:
    """Each name's mean NLL per predicted character (its letters and its end)."""
    check_names(info, names)
    return [float(nll.mean()) for nll in word_nll(names)]


def mixture_scores(word_nll_of: Callable[[int], WordNll], info: ModelInfo, names: list[str]) -> list[float]:
    """A conditional model's scores without a label: each name's NLL under the mixture of its labels weighted by
    their training frequencies, -log sum_l p(l) p(name | l), per predicted character (one pass per label)."""
    check_names(info, names)
    counts = np.asarray(info.label_counts, dtype=np.float64)
    labels, characters = int(np.count_nonzero(counts)), sum(len(name) + 1 for name in names)
    if labels * characters > MIXTURE_WORK:  # one pass per label: the work grows with the file's labels
        raise SamplingError(
            f"scoring {characters:,} characters under the mixture of {labels:,} labels is more work than one"
            f" request may ask for ({MIXTURE_WORK:,} label x character steps): give a label, or fewer names",
            "label",
        )
    log_p = np.full(len(names), -np.inf)
    for label in np.flatnonzero(counts):
        sums = np.array([nll.sum() for nll in word_nll_of(int(label))(names)], dtype=np.float64)
        log_p = np.logaddexp(log_p, np.log(counts[label] / counts.sum()) - sums)
    return [float(score) for score in -log_p / np.array([len(name) + 1 for name in names])]
