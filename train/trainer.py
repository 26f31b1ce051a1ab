"""The training loop: one way of fitting each kind (counting, or gradient descent with its schedule), stopped as
soon as the loss is no longer finite. Configs live in train/config.py, evaluation in train/evaluate.py."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple, cast

import numpy as np
import torch
from makemore.data import DatasetError, Split, Tokens, UserError, Vocab, vocab_problem
from makemore.data.packing import PACK_WIDTH
from makemore.data.rows import Rows, SequenceRows, subset
from makemore.data.tokens import bigram_counts, tokenize_split
from makemore.train.averaging import WeightAverage
from makemore.train.config import with_block_size
from makemore.train.config_types import BigramConfig, Config, TrainConfig, known
from makemore.train.device import model_device, to_device
from makemore.train.distributed import SINGLE, Ranks
from makemore.train.evaluate import (
    EVAL_POINTS,
    VAL_WORDS,
    EvalChunk,
    evaluate_rows,
    final_losses,
    label_losses,
    row_count_chars,
    split_rows,
)
from makemore.train.kinds import build_model
from makemore.train.memory import eval_chunk
from makemore.train.models import IGNORE, Bigram, cross_entropy, trains_in_bfloat16
from makemore.train.progress import Progress, Reporter
from torch import nn

# where torch has a fused AdamW (one kernel for every parameter); the kinds that train in bfloat16 use it (see
# models.trains_in_bfloat16; the others keep the for-each AdamW: the same rounding, so the same weights for a seed)
FUSED_DEVICES = ("cpu", "cuda")


class TrainingDiverged(UserError):
    """The loss stopped being finite: nothing trained is kept."""


@dataclass
class TrainResult:
    model: nn.Module
    metrics: dict
    steps_done: int
    interrupted: bool = False
    history: dict = field(default_factory=dict)


def learning_rate(config: TrainConfig, step: int) -> float:
    """SGD: the lecture's step decay (lr, then lr/10 for the second half). Adam(W): linear warm-up over
    `warmup` steps (none by default; at most a tenth of the run), then cosine to lr/10."""
    lr, steps = config.lr, config.steps
    warmup = min(config.warmup or 0, steps // 10)
    if config.optimizer == "sgd":
        return lr if step < steps // 2 else lr / 10
    if step < warmup:
        return lr * (step + 1) / warmup
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (steps - warmup))))


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    # weight decay on matrices only, not on biases (nanoGPT's rule)
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    beta2 = 0.999 if config.beta2 is None else config.beta2
    # torch's fused AdamW for the kinds that train in bfloat16 (their numbers changed with it); the others keep theirs
    fusable = bool(params) and all(
        p.device.type in FUSED_DEVICES and trains_in_bfloat16(model, p.device) for p in params
    )
    fused = {"fused": True} if fusable else {}
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, beta2), **fused)


def bf16_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bfloat16 autocast (matrix multiplies in bfloat16, the rest in float32) where the device computes bfloat16
    natively: a CPU with AVX-512 BF16 or AMX, a CUDA GPU that supports it; elsewhere nothing."""
    if device.type == "cpu" and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train(
    kind: str,
    config: Config,
    split: Split | dict[str, Tokens],
    vocab: Vocab,
    *,
    state_dict: dict | None = None,
    reporter: Reporter | None = None,
    device: torch.device | None = None,
    ranks: Ranks = SINGLE,
    labels: tuple[str, ...] = (),
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
    alone evaluates: the other ranks' results have no metrics. Labelled tokens (a conditional model, config
    `n_labels`) also give val_loss_by_label: the val loss of each of `labels` (their names) that val holds.
    """
    if (problem := vocab_problem(vocab.chars)) is not None:  # the rule of the reader and the exporter
        raise DatasetError(f"the training data's vocabulary holds {problem}")
    reporter = reporter or Reporter()
    if isinstance(split, Split):
        with reporter.phase("tokenising"):
            split = tokenize_split(split, vocab)
    config = with_block_size(kind, config, split)
    data = split_rows(kind, split, known(config.block_size, "block_size"))
    torch.manual_seed(config.seed)
    model = build_model(kind, vocab.size, config)
    if state_dict is not None:
        model.load_state_dict(state_dict)
    steps_done, interrupted, started = 0, False, time.perf_counter()
    history: dict = {"step": [], "train_loss": [], "val_step": [], "val_loss": []}
    chunk = eval_chunk(kind, vocab.size, config)
    val_subset = subset(data["val"], VAL_WORDS)
    val_seconds = 0.0
    if isinstance(model, Bigram):
        counts = torch.from_numpy(bigram_counts(data["train"].tokens, vocab.size, model.n_labels))
        assert isinstance(config.model, BigramConfig)
        if model.n_labels:
            model.fit_label_counts(counts, config.model.smoothing)
        else:
            model.fit_counts(counts, config.model.smoothing)  # counted on the CPU (float64, which MPS lacks)
    model.to(device or torch.device("cpu"))
    if not isinstance(model, Bigram):
        assert config.train is not None  # every kind but the bigram trains
        with reporter.steps(config.train.steps) as on_step:
            descent = _gradient_descent(model, config.train, data, val_subset, history, on_step, chunk, ranks)
        steps_done, interrupted, val_seconds = descent
    if not ranks.is_main:
        return TrainResult(model.cpu(), {}, steps_done, interrupted, history)
    final_started = time.perf_counter()
    model.eval()
    with reporter.phase("evaluating train (a subset), val and test"):
        metrics = final_losses(model, data, chunk)
        if data["val"].tokens.labels is not None:
            metrics["val_loss_by_label"] = label_losses(model, data["val"], labels, chunk)
    metrics["history_val_chars"] = row_count_chars(data["val"], val_subset)
    ended = time.perf_counter()
    metrics["train_seconds"] = round(ended - started, 1)  # fitting and the final evaluation, wall
    metrics["eval_seconds"] = round(ended - final_started + val_seconds, 1)  # of which evaluation: history's and final
    check_finite(model, metrics, steps_done, "a larger --smoothing" if isinstance(model, Bigram) else "a smaller --lr")
    return TrainResult(model.cpu(), metrics, steps_done, interrupted, history)


def optimizer_step(optimizer: torch.optim.Optimizer, step: int) -> None:
    """One optimizer step; a step whose numbers overflow float32 (Adam's first step is 10 x --lr) is a divergence,
    one line, as a loss that is not finite."""
    try:
        optimizer.step()
    except RuntimeError as err:
        if "overflow" not in str(err):
            raise
        raise diverged(step, "the optimizer's step", "past float32's range") from None


def diverged(step: int, what: str, value: object, hint: str = "a smaller --lr") -> TrainingDiverged:
    """The one-line error for a loss (or weights) no longer finite."""
    return TrainingDiverged(f"training diverged at step {step} ({what} {value}): try {hint}")


def check_finite(model: nn.Module, metrics: dict, steps_done: int, hint: str) -> None:
    """TrainingDiverged when a loss or a weight of the trained model is NaN or infinite."""
    for name, value in metrics.items():
        if isinstance(value, (int, float)) and not math.isfinite(value):
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


def packs(model: nn.Module) -> bool:
    """A model that trains on packed rows (several words per row, data/packing.py): the transformer."""
    return callable(getattr(model, "forward_packed", None))


class PackedBatch(NamedTuple):
    """A training step's words packed several to a row (data/packing.py), each [rows, width]: inputs, targets (IGNORE
    on padding), each position's label (None: unlabelled), its position within its word and its word's index."""

    x: torch.Tensor
    y: torch.Tensor
    label: torch.Tensor | None
    positions: torch.Tensor
    segments: torch.Tensor

    def loss(self, net: nn.Module, device: torch.device) -> torch.Tensor:
        """The mean loss over the targets that are no padding, in float32 (under autocast too)."""
        x, y, positions, segments = to_device(device, self.x, self.y, self.positions, self.segments)
        label = None if self.label is None else to_device(device, self.label)[0]
        logits = net(x, label, positions=positions, segments=segments)
        return nn.functional.cross_entropy(logits.float().flatten(0, -2), y.flatten(), ignore_index=IGNORE)


def training_batch(model: nn.Module, rows: Rows, indices: np.ndarray) -> PackedBatch | tuple[torch.Tensor, ...]:
    """The tensors of one training step's rows: (x, y) or, labelled, (x, y, label); for a model that packs,
    a PackedBatch of rows of block_size positions, at most PACK_WIDTH unless a word needs more (a long block_size
    would make attention cost more per position than padding does)."""
    if isinstance(rows, SequenceRows) and packs(model):
        packed = rows.take_packed(indices, min(cast(int, model.block_size), PACK_WIDTH))
        label = None if packed.labels is None else torch.from_numpy(packed.labels)
        arrays = (packed.x, packed.y, packed.positions, packed.segments)
        x, y, positions, segments = map(torch.from_numpy, arrays)
        return PackedBatch(x, y, label, positions, segments)
    return tuple(map(torch.from_numpy, rows.take(indices)))


def batch_loss(net: nn.Module, batch: PackedBatch | tuple[torch.Tensor, ...], device: torch.device) -> torch.Tensor:
    """The mean loss of a training batch (see training_batch) over its targets that are no padding; the forward
    under bf16_autocast for a model that trains in bfloat16, the loss in float32."""
    with bf16_autocast(device) if trains_in_bfloat16(net, device) else contextlib.nullcontext():
        if isinstance(batch, PackedBatch):
            return batch.loss(net, device)
        return cross_entropy(net, *to_device(device, *batch))  # (x, y) or, labelled, (x, y, label)


def _gradient_descent(
    model: nn.Module,
    config: TrainConfig,
    data: dict[str, Rows],
    val_subset: np.ndarray | None,
    history: dict,
    on_step: Callable[[Progress], None],
    chunk: EvalChunk,
    ranks: Ranks = SINGLE,
) -> tuple[int, bool, float]:
    """Minibatch descent (full batch when no batch_size) on the model's device, each batch's rows built when
    drawn; the val loss on `val_subset` of the val rows at EVAL_POINTS steps. Returns (steps done, interrupted,
    seconds spent on the val loss). Under torchrun each rank draws its own batches of batch_size and DDP
    averages the gradients."""
    train_rows = data["train"]
    steps = config.steps
    batch_size = config.batch_size
    generator = ranks.generator(config.seed)
    device, net = model_device(model), ranks.wrap(model)
    if batch_size:
        batches = batch_indices(len(train_rows), batch_size, config.buckets or 1, generator)
    else:
        full_batch = tuple(map(torch.from_numpy, train_rows.take(np.arange(len(train_rows)))))
    optimizer = make_optimizer(model, config)
    average = WeightAverage(model, config.ema) if config.ema else None
    eval_every = max(1, steps // EVAL_POINTS)
    log_every = max(1, steps // 500)
    model.train()
    step, val_seconds = 0, 0.0
    try:
        for step in range(steps):
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config, step)
            batch = training_batch(model, train_rows, next(batches).numpy()) if batch_size else full_batch
            loss = batch_loss(net, batch, device)
            loss_value = ranks.step_loss(loss)
            if not math.isfinite(loss_value):
                raise diverged(step + 1, "loss", loss_value)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer_step(optimizer, step + 1)
            if average is not None:
                average.update(model)
            if step % log_every == 0:
                history["step"].append(step)
                history["train_loss"].append(loss_value)
            if (step + 1) % eval_every == 0 or step + 1 == steps:
                val_started = time.perf_counter()
                val_loss = ranks.from_main(lambda: _val_loss(model, average, data["val"], val_subset, chunk))
                val_seconds += time.perf_counter() - val_started
                if not math.isfinite(val_loss):
                    raise diverged(step + 1, "val loss", val_loss)
                history["val_step"].append(step + 1)
                history["val_loss"].append(val_loss)
            on_step(Progress(step + 1, steps, loss_value))
    except KeyboardInterrupt:
        interrupted = True
    else:
        step, interrupted = steps, False
    if average is not None:
        average.copy_to(model)  # the average is the trained model
    return step, interrupted, val_seconds


def _val_loss(
    model: nn.Module, average: WeightAverage | None, rows: Rows, chosen: np.ndarray | None, chunk: EvalChunk
) -> float:
    """The val loss of what training would keep now: the model, or its weight average."""
    if average is None:
        return evaluate_rows(model, rows, chosen, chunk)[0]
    with average.applied(model):
        return evaluate_rows(model, rows, chosen, chunk)[0]
