"""How new are sampled names: makemore's labels (in train, in val/test, new) and their mean length."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from makemore.data import Split, split_words
from makemore.data.dataset import DEFAULT_FRACTIONS
from makemore.runtime.model_info import ModelInfo
from makemore.runtime.sampling import Sampler, SamplingError

MAX_NOVEL_ROUNDS = 100  # rounds of n samples before novel_names gives up


@dataclass(frozen=True)
class Novelty:
    """Counts of N sampled names by where they occur in the data; a name in train counts as train only."""

    samples: int
    in_train: int
    in_heldout: int  # in val or test, not in train
    new: int  # in no split
    mean_len: float  # of the sampled names
    data_mean_len: float  # of the train words

    def share(self, count: int) -> float:
        return count / self.samples if self.samples else 0.0


def model_split(info: ModelInfo, words: list[str]) -> Split:
    """The train/val/test split a model was trained with (its config's split_seed and split_fractions)."""
    fractions = tuple(info.config.get("split_fractions", DEFAULT_FRACTIONS))
    return split_words(words, info.config.get("split_seed", 42), fractions)


def count_novelty(names: list[str], split: Split) -> Novelty:
    """Label each name as in train, else in val/test, else new; mean lengths of names and train words."""
    train, heldout = set(split.train), set(split.val) | set(split.test)
    in_train = sum(name in train for name in names)
    in_heldout = sum(name not in train and name in heldout for name in names)
    return Novelty(
        samples=len(names),
        in_train=in_train,
        in_heldout=in_heldout,
        new=len(names) - in_train - in_heldout,
        mean_len=sum(map(len, names)) / len(names) if names else 0.0,
        data_mean_len=sum(map(len, split.train)) / len(split.train),
    )


def format_novelty(stats: Novelty) -> str:
    """A small aligned table, one line per label."""
    rows = [("in train", stats.in_train), ("in val/test", stats.in_heldout), ("new", stats.new)]
    lines = [f"samples      {stats.samples}"]
    lines += [
        f"{label:<12} {count:>{len(str(stats.samples))}}  {100 * stats.share(count):5.1f}%" for label, count in rows
    ]
    lines.append(f"mean length  {stats.mean_len:.2f} (train words: {stats.data_mean_len:.2f})")
    return "\n".join(lines)


def novel_names(sampler: Sampler, n: int, known: set[str], seed: int | None, options: dict) -> list[str]:
    """n sampled names not in `known`, drawing rounds from one seeded generator."""
    rng = np.random.default_rng(seed)
    found: list[str] = []
    for _ in range(MAX_NOVEL_ROUNDS):
        found += [name for name in sampler.sample(n, seed=rng, **options) if name not in known]
        if len(found) >= n:
            return found[:n]
    raise SamplingError(f"found only {len(found)} novel names in {MAX_NOVEL_ROUNDS * n} samples")
