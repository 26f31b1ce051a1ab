"""mm-train: train a model on a file of one item per line and write a checkpoint."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from makemore.data.cli import INTERRUPTED
from makemore.data.labels import LABELLED_HELP
from makemore.data.reader import DATA_HELP
from makemore.train.extra import DEVICE_HELP, THREADS_HELP, run_training_cli
from makemore.train.kinds import KINDS, MODEL_KINDS

PRESETS_HELP = "; ".join(f"{name}: {', '.join(spec.presets)}" for name, spec in KINDS.items() if spec.presets)
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


# The kinds of the registry (train/kinds.py), as typer's choices.
Kind = Enum("Kind", {name.replace("-", "_"): name for name in MODEL_KINDS}, type=str)  # type: ignore[misc]


@app.command(help=f"Train a {', '.join(MODEL_KINDS[:-1])} or {MODEL_KINDS[-1]} model; write a checkpoint (model.pt).")
def train_command(
    kind: Annotated[Kind, typer.Argument(help="Model to train.")],
    data: Annotated[Path | None, typer.Option(help=DATA_HELP)] = None,
    out: Annotated[Path, typer.Option(help="Checkpoint to write.")] = Path("model.pt"),
    resume: Annotated[Path | None, typer.Option(help="Continue training this checkpoint's weights.")] = None,
    preset: Annotated[str | None, typer.Option(help=f"Named config of the kind: {PRESETS_HELP}.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for initialisation and batches.")] = None,
    split_seed: Annotated[
        int | None,
        typer.Option(help="Seed of the 80/10/10 train/val/test split [default: 42; resuming: the checkpoint's]."),
    ] = None,
    block_size: Annotated[
        int | None,
        typer.Option(
            help="Context length (mlp; wavenet: a power of two). Sequence kinds: the longest sequence, by default"
            " the data's longest word + 1 (a transformer takes no more positions)."
        ),
    ] = None,
    n_embd: Annotated[int | None, typer.Option(help="Embedding size.")] = None,
    n_hidden: Annotated[int | None, typer.Option(help="Hidden size (mlp, wavenet, rnn, gru, lstm).")] = None,
    n_layer: Annotated[int | None, typer.Option(help="Layers (transformer blocks; rnn, gru, lstm layers).")] = None,
    n_head: Annotated[int | None, typer.Option(help="Attention heads (transformer; must divide n-embd).")] = None,
    dropout: Annotated[float | None, typer.Option(help="Dropout (mlp, wavenet, transformer, rnn, gru, lstm).")] = None,
    norm: Annotated[str | None, typer.Option(help="Normalisation in each wavenet level: batch or layer.")] = None,
    steps: Annotated[int | None, typer.Option(help="Optimisation steps.")] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(help="Minibatch size (words for the sequence kinds); per rank under torchrun."),
    ] = None,
    buckets: Annotated[
        int | None,
        typer.Option(help="Sequence kinds: draw this many batches at once and group words of similar length."),
    ] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate.")] = None,
    optimizer: Annotated[str | None, typer.Option(help="sgd, adam or adamw.")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="Weight decay (L2).")] = None,
    smoothing: Annotated[float | None, typer.Option(help="Add-k smoothing of the counts (bigram).")] = None,
    ema: Annotated[
        float | None,
        typer.Option(
            help="Keep a moving average of the weights with this decay (e.g. 0.999) and make it the model"
            " [default: the kind's: 0.9995 for the transformer, 0 (none) for the others]."
        ),
    ] = None,
    samples: Annotated[
        int, typer.Option(help="Names to print after training (0 to 10,000), each cut at 64 characters.")
    ] = 5,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or table.")] = False,
    threads: Annotated[
        int | None,
        typer.Option(help=THREADS_HELP),
    ] = None,
    device: Annotated[Device, typer.Option(help=DEVICE_HELP)] = Device.auto,
    labelled: Annotated[bool, typer.Option("--labelled", help=LABELLED_HELP)] = False,
) -> None:
    from makemore.train.run import TrainRequest, run_training

    request = TrainRequest(
        kind=kind.value,
        data=data,
        out=out,
        resume=resume,
        preset=preset,
        split_seed=split_seed,
        samples=samples,
        quiet=quiet,
        threads=threads,
        device=device.value,
        labelled=labelled,
        overrides=dict(
            seed=seed,
            block_size=block_size,
            n_embd=n_embd,
            n_hidden=n_hidden,
            n_layer=n_layer,
            n_head=n_head,
            dropout=dropout,
            norm=norm,
            steps=steps,
            batch_size=batch_size,
            buckets=buckets,
            lr=lr,
            optimizer=optimizer,
            weight_decay=weight_decay,
            smoothing=smoothing,
            ema=ema,
        ),
    )
    if not run_training(request):
        raise SystemExit(INTERRUPTED)


def main() -> None:
    run_training_cli(app, "mm-train")


if __name__ == "__main__":
    main()
