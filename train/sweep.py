"""mm-sweep: train a grid of MLP configs for a fixed step budget and print a table of their losses.

The seed's Part 2 experiment: vary the embedding size, the hidden size and the context length,
keep everything else at the defaults, and compare train/val loss at the same number of steps.
"""

from __future__ import annotations

import itertools
import json
import math
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

import typer
from makemore.data import UserError
from makemore.data.cli import INTERRUPTED
from makemore.data.reader import DATA_HELP
from makemore.train.extra import DEVICE_HELP, THREADS_HELP, run_training_cli

GRID_KEYS = ("block_size", "n_embd", "n_hidden")
MAX_CONFIGS = 1_000  # configs in one sweep: each trains for --steps, and all are checked before the first


@dataclass
class SweepRow:
    block_size: int
    n_embd: int
    n_hidden: int
    params: int
    train_loss: float
    val_loss: float
    seconds: float


def parse_ints(text: str, option: str) -> list[int]:
    """'3,4,8' -> [3, 4, 8] (positive integers, order kept, duplicates dropped)."""
    values: dict[int, None] = {}  # a dict keeps the order and drops duplicates in linear time
    for part in text.split(","):
        try:
            value = int(part)
        except ValueError:
            raise UserError(f"{option} takes comma-separated integers, got {text!r:.80}") from None
        if value < 1:
            raise UserError(f"{option} values must be positive, got {value}")
        values[value] = None
    return list(values)


def grid_size(*lists: list[int]) -> int:
    """How many configs the grid of these option lists has (counted, not built)."""
    return math.prod(len(values) for values in lists)


def grid(block_sizes: list[int], n_embds: list[int], n_hiddens: list[int]) -> Iterator[dict]:
    """Every combination, as config overrides, one at a time (MAX_CONFIGS: see check_grid)."""
    for combo in itertools.product(block_sizes, n_embds, n_hiddens):
        yield dict(zip(GRID_KEYS, combo, strict=True))


def check_grid(block_sizes: list[int], n_embds: list[int], n_hiddens: list[int]) -> int:
    """The grid's size; a UserError above MAX_CONFIGS (checked before any config is made)."""
    size = grid_size(block_sizes, n_embds, n_hiddens)
    if size > MAX_CONFIGS:
        raise UserError(f"the grid has {size:,} configs, more than mm-sweep trains ({MAX_CONFIGS:,}): give fewer sizes")
    return size


def iter_sweep(
    configs: Iterable[dict], *, data: Path | None = None, device: str = "auto", **training
) -> Iterator[SweepRow]:
    """Train an MLP for each config (plus shared `training` overrides: steps, batch_size, lr, seed); yield its row.

    All runs use the same data and split (mm-train's default split seed), on `device` (as mm-train's --device).
    Ctrl-C stops the sweep with KeyboardInterrupt; the config being trained then yields no row. One process
    only: under torchrun it refuses (UserError).
    """
    from makemore.data import bundled_names_path
    from makemore.data.corpus import read_corpus, split_corpus
    from makemore.train.config import DEFAULTS, make_config
    from makemore.train.device import resolve_device
    from makemore.train.launch import launch_from_env
    from makemore.train.memory import check_memory, split_sizes
    from makemore.train.trainer import train

    if launch_from_env() is not None:
        raise UserError("mm-sweep trains its configs one after another in one process: start it without torchrun")
    where = resolve_device(device)
    corpus = read_corpus(data or bundled_names_path())
    vocab, split, n_words = corpus.vocab, split_corpus(corpus.tokens), corpus.tokens.n_words
    checked = [make_config("mlp", **config, **training) for config in itertools.islice(configs, MAX_CONFIGS + 1)]
    if len(checked) > MAX_CONFIGS:  # all errors before any training, for at most MAX_CONFIGS configs
        raise UserError(f"the grid has more than {MAX_CONFIGS:,} configs, more than mm-sweep trains: give fewer sizes")
    for config in checked:
        check_memory("mlp", config, vocab.size, split_sizes(split), DEFAULTS["mlp"].flat(), words=n_words)
    for config in checked:
        start = time.perf_counter()
        result = train("mlp", config, split, vocab, device=where)
        if result.interrupted:
            raise KeyboardInterrupt
        yield SweepRow(
            **{key: getattr(config.model, key) for key in GRID_KEYS},
            params=sum(p.numel() for p in result.model.parameters()),
            train_loss=result.metrics["train_loss"],
            val_loss=result.metrics["val_loss"],
            seconds=time.perf_counter() - start,
        )


def best(rows: list[SweepRow]) -> SweepRow:
    return min(rows, key=lambda row: row.val_loss)


def format_table(rows: list[SweepRow]) -> str:
    """A Markdown table (readable in a terminal, pasteable into the README); the best val loss in bold."""
    lines = [
        "| block | embd | hidden | params | train loss | val loss | time (s) |",
        "|------:|-----:|-------:|-------:|-----------:|---------:|---------:|",
    ]
    top = best(rows)
    for row in rows:
        val = f"**{row.val_loss:.4f}**" if row is top else f"{row.val_loss:.4f}"
        lines.append(
            f"| {row.block_size} | {row.n_embd} | {row.n_hidden} | {row.params:,} | {row.train_loss:.4f} | {val}"
            f" | {row.seconds:.1f} |"
        )
    return "\n".join(lines)


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)


@app.command(help="Train every combination of the MLP sizes below for the same steps; print a table of losses.")
def sweep_command(
    block_size: Annotated[str, typer.Option(help="Context lengths, comma-separated.")] = "3,4",
    n_embd: Annotated[str, typer.Option(help="Embedding sizes, comma-separated.")] = "10,16",
    n_hidden: Annotated[str, typer.Option(help="Hidden layer sizes, comma-separated.")] = "200,300",
    steps: Annotated[int, typer.Option(help="Optimisation steps of every config.")] = 8000,
    batch_size: Annotated[int | None, typer.Option(help="Minibatch size [default: mlp default].")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate [default: mlp default].")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of every run [default: mlp default].")] = None,
    data: Annotated[Path | None, typer.Option(help=DATA_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON instead of a table.")] = False,
    device: Annotated[str, typer.Option(help=DEVICE_HELP)] = "auto",
    threads: Annotated[
        int | None,
        typer.Option(help=THREADS_HELP),
    ] = None,
) -> None:
    from makemore.train.device import check_threads

    check_threads(threads)
    sizes = parse_ints(block_size, "--block-size"), parse_ints(n_embd, "--n-embd"), parse_ints(n_hidden, "--n-hidden")
    total = check_grid(*sizes)
    configs = grid(*sizes)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)

    rows: list[SweepRow] = []
    interrupted = False
    try:
        for row in iter_sweep(configs, data=data, device=device, steps=steps, batch_size=batch_size, lr=lr, seed=seed):
            rows.append(row)
            print(
                f"[{len(rows)}/{total}] block {row.block_size} embd {row.n_embd} hidden {row.n_hidden}:"
                f" val {row.val_loss:.4f} ({row.seconds:.1f} s)",
                file=sys.stderr,
            )
    except KeyboardInterrupt:
        interrupted = True
        print(f"interrupted: {len(rows)} of {total} configs trained", file=sys.stderr)
    if as_json:
        print(json.dumps([asdict(row) for row in rows], indent=1))
    elif rows:
        top = best(rows)
        print(format_table(rows))
        print(f"\n{steps} steps each; best val loss {top.val_loss:.4f}: ", end="")
        print(f"block_size {top.block_size}, n_embd {top.n_embd}, n_hidden {top.n_hidden}")
    if interrupted:
        raise SystemExit(INTERRUPTED)


def main() -> None:
    run_training_cli(app, "mm-sweep")


if __name__ == "__main__":
    main()
