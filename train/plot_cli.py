"""mm-plot: draw what a model learned (loss curves, embeddings) or what the data holds (bigram counts)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from makemore.data.cli import require_extra, run_cli
from makemore.data.reader import DATA_HELP

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    no_args_is_help=True,
    help="Draw PNG pictures of a makemore model or its data (headless).",
)

ModelArg = Annotated[Path, typer.Argument(help="Checkpoint (model.pt) or ONNX model (model.onnx).")]


@app.command("loss", help="Train loss (smoothed) and val loss over the steps of training.")
def loss_command(
    model: ModelArg, out: Annotated[Path, typer.Option("--out", "-o", help="Image to write.")] = Path("loss_curve.png")
) -> None:
    from makemore.train.plots import plot_loss

    print(plot_loss(model, out))


@app.command(
    "embeddings", help="A model's character embeddings in 2-D (PCA when n_embd > 2), labelled (all kinds but bigrams)."
)
def embeddings_command(
    model: ModelArg, out: Annotated[Path, typer.Option("--out", "-o", help="Image to write.")] = Path("embeddings.png")
) -> None:
    from makemore.train.plots import plot_embeddings

    print(plot_embeddings(model, out))


@app.command("bigram-counts", help="The grid of bigram counts over all words of the data, as in the first lecture.")
def bigram_counts_command(
    data: Annotated[Path | None, typer.Option(help=DATA_HELP)] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Image to write.")] = Path("bigram_counts.png"),
) -> None:
    from makemore.data import bundled_names_path, read_words
    from makemore.train.plots import plot_bigram_counts

    data = data or bundled_names_path()
    print(plot_bigram_counts(read_words(data), out, source=data.name, data=data))


def main() -> None:
    if not {"-h", "--help"} & set(sys.argv[1:]):
        require_extra("mm-plot", "plot", ("matplotlib",))
    run_cli(app)


if __name__ == "__main__":
    main()
