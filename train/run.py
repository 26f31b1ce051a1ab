"""What `mm-train` does: read the data, train (or resume), save the checkpoint, report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from makemore.data import BOUNDARY, Vocab, bundled_names_path, check_output_path, file_sha256, read_words, split_words
from makemore.data.dataset import DEFAULT_FRACTIONS
from makemore.train.checkpoint import (
    CheckpointError,
    load_checkpoint,
    make_checkpoint,
    model_info,
    save_checkpoint,
)
from makemore.train.models import is_sequence
from makemore.train.sampler import TorchSampler
from makemore.train.trainer import ARCHITECTURE_KEYS, ConfigError, TrainResult, make_config, train, with_block_size
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from torch import nn


@dataclass
class TrainRequest:
    kind: str
    data: Path | None = None
    out: Path = Path("model.pt")
    resume: Path | None = None
    preset: str | None = None
    split_seed: int = 42
    samples: int = 5
    quiet: bool = False
    threads: int | None = None  # torch intra-op threads; None keeps torch's default (all cores)
    overrides: dict = field(default_factory=dict)


def resolve_config(request: TrainRequest, resumed: dict | None) -> dict:
    """Hyperparameters: from the checkpoint when resuming (training flags may change), else new."""
    if resumed is None:
        return make_config(request.kind, request.preset, **request.overrides)
    if resumed["kind"] != request.kind:
        raise ConfigError(f"--resume checkpoint is a {resumed['kind']} model, not {request.kind}")
    config = dict(resumed["config"])
    for key, value in request.overrides.items():
        if value is None:
            continue
        if key in ARCHITECTURE_KEYS and config.get(key) != value:
            raise ConfigError(
                f"--{key.replace('_', '-')} cannot change when resuming (checkpoint has {config.get(key)})"
            )
        config[key] = value
    return make_config(request.kind, **config)


def run_training(request: TrainRequest) -> bool:
    """Train and save; returns False when Ctrl-C cut training short (the checkpoint is still saved)."""
    console = Console(stderr=True, quiet=request.quiet)
    if request.threads is not None:
        if request.threads < 1:
            raise ConfigError(f"threads must be at least 1, got {request.threads}")
        torch.set_num_threads(request.threads)
    data_path = request.data or bundled_names_path()
    check_output_path(request.out, (data_path,))  # --resume X --out X continues X in place: allowed
    resumed = load_checkpoint(request.resume) if request.resume else None
    config = resolve_config(request, resumed)
    words = read_words(data_path)
    vocab = Vocab.from_words(words)
    if resumed is not None and resumed["vocab"] != vocab.chars:
        raise CheckpointError("--resume checkpoint was trained on data with another vocabulary")
    split_seed = resumed["config"]["split_seed"] if resumed else request.split_seed
    split = split_words(words, split_seed, DEFAULT_FRACTIONS)
    config.update(
        split_seed=split_seed, split_fractions=list(DEFAULT_FRACTIONS), max_len=max(len(w) for w in split.train)
    )
    config = with_block_size(request.kind, config, split)  # sequence kinds: from the data

    result = _train_with_progress(request.kind, config, split, vocab, resumed, console)
    config["steps_done"] = (resumed["config"].get("steps_done", 0) if resumed else 0) + result.steps_done
    metrics = dict(result.metrics, history=result.history)
    checkpoint = make_checkpoint(request.kind, config, vocab, result.model, metrics, file_sha256(data_path))
    save_checkpoint(checkpoint, request.out, (data_path,))
    _report(checkpoint, result, request, console)
    return not result.interrupted


def _train_with_progress(kind, config, split, vocab, resumed, console: Console) -> TrainResult:
    state_dict = resumed["state_dict"] if resumed else None
    if "steps" not in config:  # counted, not descended: nothing to show progress of
        return train(kind, config, split, vocab, state_dict=state_dict)
    columns = [
        TextColumn(f"[bold]{kind}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("train", total=config["steps"], loss="-")

        def on_step(p) -> None:
            if p.step % 50 == 0 or p.step == p.steps:
                progress.update(task, completed=p.step, loss=f"{p.loss:.4f}")

        result = train(kind, config, split, vocab, state_dict=state_dict, on_step=on_step)
        progress.update(task, completed=result.steps_done)
    return result


def _report(checkpoint: dict, result: TrainResult, request: TrainRequest, console: Console) -> None:
    if result.interrupted:
        console.print(f"[yellow]interrupted at step {result.steps_done}: saved what was trained so far")
    table = Table(title=f"{checkpoint['kind']} -> {request.out}")
    for name in ("train", "val", "test"):
        table.add_column(f"{name} loss", justify="right")
    table.add_row(*(f"{checkpoint['metrics'][f'{n}_loss']:.4f}" for n in ("train", "val", "test")))
    console.print(table)
    if request.samples > 0:
        seed, vocab = checkpoint["config"].get("seed", 0), Vocab(checkpoint["vocab"])
        if is_sequence(result.model):
            names = sample_sequence_model(result.model, vocab, request.samples, seed, checkpoint["config"]["max_len"])
        else:
            names = TorchSampler.from_model(result.model, model_info(checkpoint)).sample(request.samples, seed=seed)
        console.print("samples: " + ", ".join(names))


@torch.no_grad()
def sample_sequence_model(model: nn.Module, vocab: Vocab, n: int, seed: int, max_len: int) -> list[str]:
    """n names from a sequence model through `step`, the state carried: a plain multinomial loop of torch's
    (for the report after training; its draws are not the runtime sampler's)."""
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    tokens, state = torch.full((n, 1), BOUNDARY, dtype=torch.int64), model.empty_state(n)
    out, done = torch.full((n, max_len), BOUNDARY, dtype=torch.int64), torch.zeros(n, dtype=torch.bool)
    for pos in range(max_len):
        logits, *state = model.step(tokens, *state)
        logits = logits[:, -1]
        if pos == 0:
            logits[:, BOUNDARY] = float("-inf")  # a name is never empty
        tokens = torch.multinomial(logits.softmax(dim=-1), 1, generator=generator)
        tokens[done] = BOUNDARY
        out[:, pos] = tokens[:, 0]
        done |= tokens[:, 0] == BOUNDARY
        if done.all():
            break
    return vocab.decode_rows(out.numpy())
