"""How new are sampled names: makemore's labels (in train, in val/test, new) and their mean length."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from makemore.contract import ModelInfo
from makemore.data import Split, split_words
from makemore.data.dataset import DEFAULT_FRACTIONS
from makemore.runtime.chunks import request_seed
from makemore.runtime.options import SamplingError, SamplingOptions
from makemore.runtime.sampling import KeptMass, Sampler

MAX_NOVEL_ROUNDS = 100  # rounds of n samples before novel_names gives up


@dataclass
class Novelty:
    """Counts of N sampled names by where they occur in the data; a name in train counts as train only."""

    samples: int = 0
    in_train: int = 0
    in_heldout: int = 0  # in val or test, not in train
    total_len: int = 0  # characters of the sampled names
    data_mean_len: float = 0.0  # of the train words

    @property
    def new(self) -> int:  # in no split
        return self.samples - self.in_train - self.in_heldout

    @property
    def mean_len(self) -> float:
        return self.total_len / self.samples if self.samples else 0.0

    def share(self, count: int) -> float:
        return count / self.samples if self.samples else 0.0


class NoveltyCounter:
    """Counts names as they stream past: memory is the split's word sets, whatever the number of names."""

    def __init__(self, split: Split) -> None:
        self.train, self.heldout = set(split.train), set(split.val) | set(split.test)
        self.stats = Novelty(data_mean_len=sum(map(len, split.train)) / len(split.train))

    def add(self, names: Iterable[str]) -> None:
        for name in names:
            self.stats.samples += 1
            self.stats.total_len += len(name)
            if name in self.train:
                self.stats.in_train += 1
            elif name in self.heldout:
                self.stats.in_heldout += 1

    def passing(self, chunks: Iterable[list[str]]) -> Iterator[list[str]]:
        """Pass chunks on, counting their names."""
        for chunk in chunks:
            self.add(chunk)
            yield chunk


def model_split(info: ModelInfo, words: list[str]) -> Split:
    """The train/val/test split a model was trained with (its config's split_seed and split_fractions)."""
    fractions = tuple(info.config.get("split_fractions", DEFAULT_FRACTIONS))
    return split_words(words, info.config.get("split_seed", 42), fractions)


def count_novelty(names: list[str], split: Split) -> Novelty:
    """Label each name as in train, else in val/test, else new; mean lengths of names and train words."""
    counter = NoveltyCounter(split)
    counter.add(names)
    return counter.stats


def format_novelty(stats: Novelty) -> str:
    """A small aligned table, one line per label."""
    rows = [("in train", stats.in_train), ("in val/test", stats.in_heldout), ("new", stats.new)]
    lines = [f"samples      {stats.samples}"]
    lines += [
        f"{label:<12} {count:>{len(str(stats.samples))}}  {100 * stats.share(count):5.1f}%" for label, count in rows
    ]
    lines.append(f"mean length  {stats.mean_len:.2f} (train words: {stats.data_mean_len:.2f})")
    return "\n".join(lines)


def known_names(lines: Iterable[str], info: ModelInfo) -> frozenset[str]:
    """The names that a file of known names (--novel-vs, mm-serve --data) stands for: its lines, or for a conditional
    model, whose training file is label<TAB>item lines, each such line's item (a line without a TAB is a name: a
    conditional model's names never hold one), stripped as the labelled reader strips it (data.labels)."""
    if not info.labelled:
        return frozenset(lines)
    return frozenset(line.split("\t", 1)[-1].strip() for line in lines)


def novel_name_chunks(
    sampler: Sampler,
    n: int,
    known: set[str] | frozenset[str],
    options: SamplingOptions,
    mass: KeptMass | None = None,
) -> Iterator[list[str]]:
    """n sampled names not in `known`, streamed chunk by chunk: rounds of n names of the request's stream (round
    r is names r * n ... (r + 1) * n - 1 of the same seed, so the first round is `sample(n)`), the known ones
    dropped: the model's own distribution over the names it makes that are new.

    Memory is a few chunks plus `known`. After MAX_NOVEL_ROUNDS rounds without n new names (or sooner, once the
    rounds so far say that the rest cannot find them: `rounds_cannot_finish`), the rest are drawn by masked
    decoding with `known` as an exclude set (runtime.constraints: exact, but each step renormalised), where the
    set fits the exclude bounds; otherwise it gives up. The options are checked before the first chunk is asked
    for. `mass` (mm-gen --stats) gathers the rounds' estimate of what the request's constraints keep.
    """
    options = SamplingOptions.of(options, seed=request_seed(options.seed))  # every round from the same stream
    first_round = sampler.sample_chunks(n, options, mass=mass)  # asked for now: it checks the options

    def chunks() -> Iterator[list[str]]:
        found, rounds = 0, 0
        for round_index in range(MAX_NOVEL_ROUNDS):
            rounds, later = round_index + 1, round_index * n
            round_chunks = first_round if not later else sampler.sample_chunks(n, options, start=later, mass=mass)
            for chunk in round_chunks:
                new = [name for name in chunk if name not in known][: n - found]
                found += len(new)
                yield new
                if found == n:
                    close = getattr(round_chunks, "close", None)  # stop a generator's pool of workers now
                    if close is not None:
                        close()
                    return
            if rounds_cannot_finish(n, found, rounds):
                break
        yield from masked_rest(
            sampler, n - found, known, options, start=MAX_NOVEL_ROUNDS * n, found=found, rounds=rounds
        )

    return chunks()


def rounds_cannot_finish(n: int, found: int, rounds: int) -> bool:
    """Whether the rounds left could not find the n - found new names that `rounds` rounds of n draws did not: even
    at an optimistic rate of new names ((found + 3) per draw so far: for none found, the rule of three's upper
    bound), they would need over 4x the draws that the rounds left may make. A greedy request (every round the same
    known names) then stops after one round of a large n instead of MAX_NOVEL_ROUNDS; a rate that the rounds can
    meet (1% of new names for 100 rounds) never stops them, nor does anything before 1,000 draws (a small request
    runs its rounds as it always did)."""
    draws, left = rounds * n, (MAX_NOVEL_ROUNDS - rounds) * n
    return draws >= 1000 and (n - found) * draws > 4 * left * (found + 3)


def masked_rest(
    sampler: Sampler,
    n: int,
    known: set[str] | frozenset[str],
    options: SamplingOptions,
    start: int,
    found: int,
    rounds: int = MAX_NOVEL_ROUNDS,
) -> Iterator[list[str]]:
    """The n names novel_name_chunks' rounds did not find, by masked decoding with `known` excluded (names the
    vocabulary cannot make are never drawn and left out); SamplingError when `known` passes the exclude bounds."""
    from makemore.runtime.constraints import AutomatonTooBig  # (not imported by an unconstrained mm-gen)

    chars = set(sampler.info.vocab.chars)
    union = set(options.exclude) | {name for name in known if chars.issuperset(name)}
    gave_up = SamplingError(
        f"found only {found} novel names in {rounds} round{'s' if rounds != 1 else ''} of {found + n} samples"
    )
    try:
        exact = SamplingOptions.of(options, exclude=tuple(union))  # the exclude set's bounds checked here
    except SamplingError:
        raise gave_up from None
    try:
        chunks = sampler.sample_chunks(n, exact, start=start)  # ... and its automaton's size here
    except AutomatonTooBig:
        raise gave_up from None
    yield from chunks


def novel_names(sampler: Sampler, n: int, known: set[str] | frozenset[str], options: SamplingOptions) -> list[str]:
    """The names of novel_name_chunks as one list."""
    return [name for chunk in novel_name_chunks(sampler, n, known, options) for name in chunk]
