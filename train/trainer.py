"""Training: hyperparameter defaults and presets, and one loop per way of fitting a model."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from makemore.data import DatasetError, Split, Tokens, UserError, Vocab, check_seed, vocab_problem
from makemore.data.bounds import TRAINING, Bound
from makemore.data.rows import Rows, SequenceRows, WindowRows, row_count, rows_of, subset
from makemore.data.tokens import DistinctPairs, bigram_counts, distinct_pairs, sequence_rows, tokenize, tokenize_split
from makemore.train.device import model_device, to_device
from makemore.train.distributed import SINGLE, Ranks
from makemore.train.kinds import KINDS, SEQUENCE_KINDS, ConfigError, build_model, kind_spec
from makemore.train.memory import PAIR_ROWS, check_memory, eval_rows
from makemore.train.models import IGNORE, Bigram, cross_entropy, is_sequence
from makemore.train.progress import Progress, Reporter
from torch import nn

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
RECORD_KEYS = ("split_seed", "split_fractions", "max_len", "steps_done")  # what a checkpoint's config also records

EVAL_POINTS = 40  # how many times the val loss is logged over a run
# The losses are evaluated on bounded sets of words, drawn once at random (data.rows.subset): during training the
# val loss on at most VAL_WORDS val words (about 7,000 characters of names), the same at every log point; at the
# end the val and test losses on every word, and the train loss on at most TRAIN_EVAL_WORDS train words.
# names.txt's 25,627 train words fit the second bound: its final losses are all on every word, as before.
VAL_WORDS = 1024
TRAIN_EVAL_WORDS = 32768
EVAL_WORDS = 512  # sequence rows (whole words) evaluated at a time


# Ranges of the flags (data/bounds.py's table): beyond them a run cannot be meant (check_memory guards what is inside).
INT_LIMITS = {key: int(b.high) for key, b in TRAINING.items() if b.kind is int and b.low == 1 and b.high is not None}
SMOOTHING_RANGE = (TRAINING["smoothing"].low, TRAINING["smoothing"].high)


class TrainingDiverged(UserError):
    """The loss stopped being finite: nothing trained is kept."""


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


@dataclass
class TrainResult:
    model: nn.Module
    metrics: dict
    steps_done: int
    interrupted: bool = False
    history: dict = field(default_factory=dict)


def split_rows(kind: str, split: dict[str, Tokens], block_size: int) -> dict[str, Rows]:
    """The rows of every split's tokens: window examples, or whole words for the sequence kinds."""
    window = None if kind in SEQUENCE_KINDS else block_size
    return {name: rows_of(split[name], window, IGNORE) for name in ("train", "val", "test")}


def make_sequences(words: list[str], vocab: Vocab) -> tuple[np.ndarray, np.ndarray]:
    """Each word as one sequence, shortest first: int64 X, Y [N, longest + 1] (all words at once: for tests and
    small lists; training builds the rows of each batch, data.rows.SequenceRows).

    X is (boundary, its characters), Y is (its characters, boundary): one target per letter and one for the
    end, as for the window models. Rows are padded at the end, X with the boundary and Y with IGNORE (no loss).
    """
    tokens = tokenize(words, vocab)
    return sequence_rows(tokens, tokens.by_length, IGNORE)


def trim_padding(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences [B, L]: cut the columns that are padding in every row. Window examples: unchanged."""
    if y.dim() < 2:
        return x, y
    width = int((y != IGNORE).sum(dim=1).max())
    return x[:, :width], y[:, :width]


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = 65536) -> float:
    """Mean NLL per predicted character (padding excluded) of tensors x, y, in eval mode, `chunk` rows (512 words)
    at a time."""
    chunk = EVAL_WORDS if is_sequence(model) else chunk
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(y), chunk):
        part_total, part_count = _loss_sum(model, *trim_padding(x[start : start + chunk], y[start : start + chunk]))
        total, count = total + part_total, count + part_count
    model.train(was_training)
    return total / count


@torch.no_grad()
def evaluate_rows(
    model: nn.Module, rows: Rows, chosen: np.ndarray | None = None, chunk: int = 65536
) -> tuple[float, int]:
    """(mean NLL per predicted character, characters predicted) over rows `chosen` (all when None), in eval mode.

    Sequence rows are built and run `chunk` at a time (512 words). Window rows are built PAIR_ROWS at a time
    and run once per distinct context among them (`chunk` contexts a time): in eval mode a window model's
    logits depend on the row alone, so the loss is the same, for a tenth of the forward rows on names.
    Memory is one chunk's, whatever the split's size.
    """
    window = isinstance(rows, WindowRows)
    step = PAIR_ROWS if window else EVAL_WORDS
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for start in range(0, row_count(rows, chosen), step):
        stop = min(start + step, row_count(rows, chosen))
        part = np.arange(start, stop) if chosen is None else chosen[start:stop]
        if window:
            part_total, part_count = _pairs_loss_sum(model, distinct_pairs(*rows.take(part)), chunk)
        else:
            part_total, part_count = _loss_sum(model, *map(torch.from_numpy, rows.take(part)))
        total, count = total + part_total, count + part_count
    model.train(was_training)
    return total / count, count


def _pairs_loss_sum(model: nn.Module, pairs: DistinctPairs, chunk: int) -> tuple[float, int]:
    """Summed NLL of every row behind `pairs` (count-weighted, in float64) and their number; `chunk` contexts
    run at a time."""
    total, device = 0.0, model_device(model)
    for first in range(0, len(pairs.contexts), chunk):
        last = min(first + chunk, len(pairs.contexts))
        logp = nn.functional.log_softmax(model(torch.from_numpy(pairs.contexts[first:last]).to(device)), dim=-1)
        lo, hi = pairs.starts[first], pairs.starts[last]
        context = torch.from_numpy(np.repeat(np.arange(last - first), np.diff(pairs.starts[first : last + 1])))
        picked = logp[context.to(device), torch.from_numpy(pairs.targets[lo:hi]).to(device)]
        total -= float(picked.cpu().double() @ torch.from_numpy(pairs.counts[lo:hi]).double())  # MPS has no float64
    return total, int(pairs.counts.sum())


def _loss_sum(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, int]:
    """Summed NLL of the targets y that are no padding, and their number (on the model's device)."""
    x, y = to_device(model_device(model), x, y)
    logits = model(x).flatten(0, -2)
    total = nn.functional.cross_entropy(logits, y.flatten(), ignore_index=IGNORE, reduction="sum").item()
    return total, int((y != IGNORE).sum())


def learning_rate(config: dict, step: int) -> float:
    """SGD: the lecture's step decay (lr, then lr/10 for the second half). Adam(W): linear warm-up over
    `warmup` steps (none by default; at most a tenth of the run), then cosine to lr/10."""
    lr, steps = config["lr"], config["steps"]
    warmup = min(config.get("warmup", 0), steps // 10)
    if config["optimizer"] == "sgd":
        return lr if step < steps // 2 else lr / 10
    if step < warmup:
        return lr * (step + 1) / warmup
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (steps - warmup))))


def make_optimizer(model: nn.Module, config: dict) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config["optimizer"] == "sgd":
        return torch.optim.SGD(params, lr=config["lr"], weight_decay=config["weight_decay"])
    if config["optimizer"] == "adam":
        return torch.optim.Adam(params, lr=config["lr"], weight_decay=config["weight_decay"])
    # weight decay on matrices only, not on biases (nanoGPT's rule)
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": config["weight_decay"]},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config["lr"], betas=(0.9, config.get("beta2", 0.999)))


def train(
    kind: str,
    config: dict,
    split: Split | dict[str, Tokens],
    vocab: Vocab,
    *,
    state_dict: dict | None = None,
    reporter: Reporter | None = None,
    device: torch.device | None = None,
    ranks: Ranks = SINGLE,
) -> TrainResult:
    """Fit a model of `kind` on split.train; losses of every split in the result's metrics.

    The metrics: train_loss (on at most TRAIN_EVAL_WORDS train words), val_loss and test_loss (every word),
    and for each the characters it was evaluated on (train_loss_chars, ...); history_val_chars is the size of
    the fixed val subset (at most VAL_WORDS words) that the history's val losses are measured on.
    Ctrl-C (KeyboardInterrupt) during the loop stops it early; the result says so. A loss that
    stops being finite raises TrainingDiverged. Sequence kinds take their block_size from the data when
    the config has none (see with_block_size). `split` is the words of each split, or their tokens already
    (`tokenize_split`, `data.corpus.split_corpus`), so that a caller need not hold the words as Python strings.
    `reporter` hears of the phases and the steps (default: silent). The model trains and is evaluated on
    `device` (default the CPU) and comes back on the CPU. Under torchrun (`ranks`, see distributed.py) rank 0
    alone evaluates: the other ranks' results have no metrics.
    """
    if (problem := vocab_problem(vocab.chars)) is not None:  # the rule of the reader and the exporter
        raise DatasetError(f"the training data's vocabulary holds {problem}")
    reporter = reporter or Reporter()
    if isinstance(split, Split):
        with reporter.phase("tokenising"):
            split = tokenize_split(split, vocab)
    config = with_block_size(kind, config, split)
    data = split_rows(kind, split, config["block_size"])
    torch.manual_seed(config.get("seed", 0))
    model = build_model(kind, vocab.size, config)
    if state_dict is not None:
        model.load_state_dict(state_dict)
    steps_done, interrupted, started = 0, False, time.perf_counter()
    history: dict = {"step": [], "train_loss": [], "val_step": [], "val_loss": []}
    chunk = eval_rows(kind, vocab.size, config)
    val_subset = subset(data["val"], VAL_WORDS)
    val_seconds = 0.0
    if isinstance(model, Bigram):
        counts = torch.from_numpy(bigram_counts(data["train"].tokens, vocab.size))
        model.fit_counts(counts, config["smoothing"])  # counted on the CPU (float64, which MPS lacks)
    model.to(device or torch.device("cpu"))
    if not isinstance(model, Bigram):
        with reporter.steps(config["steps"]) as on_step:
            descent = _gradient_descent(model, config, data, val_subset, history, on_step, chunk, ranks)
        steps_done, interrupted, val_seconds = descent
    if not ranks.is_main:
        return TrainResult(model.cpu(), {}, steps_done, interrupted, history)
    final_started = time.perf_counter()
    model.eval()
    with reporter.phase("evaluating train (a subset), val and test"):
        metrics = final_losses(model, data, chunk)
    metrics["history_val_chars"] = row_count_chars(data["val"], val_subset)
    ended = time.perf_counter()
    metrics["train_seconds"] = round(ended - started, 1)  # fitting and the final evaluation, wall
    metrics["eval_seconds"] = round(ended - final_started + val_seconds, 1)  # of which evaluation: history's and final
    check_finite(model, metrics, steps_done, "a larger --smoothing" if isinstance(model, Bigram) else "a smaller --lr")
    return TrainResult(model.cpu(), metrics, steps_done, interrupted, history)


def final_losses(model: nn.Module, data: dict[str, Rows], chunk: int) -> dict:
    """train_loss on at most TRAIN_EVAL_WORDS words, val_loss and test_loss on all; each with its characters."""
    metrics: dict = {}
    for name in ("train", "val", "test"):
        chosen = subset(data[name], TRAIN_EVAL_WORDS) if name == "train" else None
        metrics[f"{name}_loss"], metrics[f"{name}_loss_chars"] = evaluate_rows(model, data[name], chosen, chunk)
    return metrics


def row_count_chars(rows: Rows, chosen: np.ndarray | None) -> int:
    """Characters predicted by rows `chosen` (all when None): one per window row, a word's length + 1 per sequence."""
    if not isinstance(rows, SequenceRows):
        return row_count(rows, chosen)
    lengths = rows.tokens.lengths[rows.tokens.by_length]
    return int((lengths if chosen is None else lengths[chosen]).sum() + row_count(rows, chosen))


def diverged(step: int, what: str, value: object, hint: str = "a smaller --lr") -> TrainingDiverged:
    """The one-line error for a loss (or weights) no longer finite."""
    return TrainingDiverged(f"training diverged at step {step} ({what} {value}): try {hint}")


def check_finite(model: nn.Module, metrics: dict, steps_done: int, hint: str) -> None:
    """TrainingDiverged when a loss or a weight of the trained model is NaN or infinite."""
    for name, value in metrics.items():
        if not math.isfinite(value):
            raise diverged(steps_done, name.replace("_", " "), value, hint)
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise diverged(steps_done, name, "not finite", hint)


def batch_indices(rows: int, batch_size: int, buckets: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Random training rows, one batch per step, drawn with replacement.

    buckets > 1 (sequences, whose rows are sorted by length): draw that many batches at once, sort their rows so
    each batch holds words of similar length, and yield the batches in random order. On names.txt 8 buckets cut
    the padding from 40% of the positions to 11%.
    """
    while True:
        rows_drawn = torch.randint(0, rows, (buckets * batch_size,), generator=generator)
        if buckets == 1:
            yield rows_drawn
            continue
        in_buckets = rows_drawn.sort().values.view(buckets, batch_size)
        yield from in_buckets[torch.randperm(buckets, generator=generator)]


def _gradient_descent(
    model: nn.Module,
    config: dict,
    data: dict[str, Rows],
    val_subset: np.ndarray | None,
    history: dict,
    on_step: Callable[[Progress], None],
    chunk: int,
    ranks: Ranks = SINGLE,
) -> tuple[int, bool, float]:
    """Minibatch descent (full batch when no batch_size) on the model's device, each batch's rows built when
    drawn; the val loss on `val_subset` of the val rows at EVAL_POINTS steps. Returns (steps done, interrupted,
    seconds spent on the val loss). Under torchrun each rank draws its own batches of batch_size and DDP
    averages the gradients."""
    train_rows = data["train"]
    steps = config["steps"]
    batch_size = config.get("batch_size")
    generator = ranks.generator(config.get("seed", 0))
    device, net = model_device(model), ranks.wrap(model)
    if batch_size:
        batches = batch_indices(len(train_rows), batch_size, config.get("buckets", 1), generator)
    else:
        full_batch = tuple(map(torch.from_numpy, train_rows.take(np.arange(len(train_rows)))))
    optimizer = make_optimizer(model, config)
    eval_every = max(1, steps // EVAL_POINTS)
    log_every = max(1, steps // 500)
    model.train()
    step, val_seconds = 0, 0.0
    try:
        for step in range(steps):
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config, step)
            xb, yb = map(torch.from_numpy, train_rows.take(next(batches).numpy())) if batch_size else full_batch
            loss = cross_entropy(net, *to_device(device, xb, yb))
            loss_value = ranks.step_loss(loss)
            if not math.isfinite(loss_value):
                raise diverged(step + 1, "loss", loss_value)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.get("grad_clip"):
                nn.utils.clip_grad_norm_(model.parameters(), config["grad_clip"])
            optimizer.step()
            if step % log_every == 0:
                history["step"].append(step)
                history["train_loss"].append(loss_value)
            if (step + 1) % eval_every == 0 or step + 1 == steps:
                val_started = time.perf_counter()
                val_loss = ranks.from_main(lambda: evaluate_rows(model, data["val"], val_subset, chunk)[0])
                val_seconds += time.perf_counter() - val_started
                if not math.isfinite(val_loss):
                    raise diverged(step + 1, "val loss", val_loss)
                history["val_step"].append(step + 1)
                history["val_loss"].append(val_loss)
            on_step(Progress(step + 1, steps, loss_value))
    except KeyboardInterrupt:
        return step, True, val_seconds
    return steps, False, val_seconds
