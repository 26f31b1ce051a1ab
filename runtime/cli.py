"""mm-gen and mm-eval: sample and score a makemore ONNX model, torch-free."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated

import typer
from makemore.data import UserError
from makemore.data.cli import run_cli
from makemore.runtime.sampling import Sampler

gen_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
eval_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)

SAMPLES_SEED = 0  # mm-eval --samples is reproducible


@gen_app.command(help="Sample names from a makemore ONNX model (one per line on stdout).")
def gen_command(
    model: Annotated[Path, typer.Argument(help="ONNX model written by mm-export.")],
    n: Annotated[int, typer.Option("--n", help="How many names.")] = 20,
    seed: Annotated[int | None, typer.Option(help="Seed for reproducible names.")] = None,
    temperature: Annotated[float, typer.Option(help="Above 1: wilder; below 1: safer.")] = 1.0,
    top_k: Annotated[int | None, typer.Option(help="Sample from the k likeliest characters only.")] = None,
    top_p: Annotated[float | None, typer.Option(help="Nucleus sampling: the smallest set with mass p.")] = None,
    prefix: Annotated[str, typer.Option(help="Every name starts with this.")] = "",
    max_len: Annotated[int | None, typer.Option(help="Longest name [default: longest training word].")] = None,
    novel_vs: Annotated[Path | None, typer.Option(help="Drop names in this file; sample until n new ones.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list instead of lines.")] = False,
    stats: Annotated[
        bool, typer.Option("--stats", help="Then print on stderr the share of names in train, in val/test and new.")
    ] = False,
    data: Annotated[Path | None, typer.Option(help="Data for --stats [default: bundled names]")] = None,
) -> None:
    from makemore.data import read_lines
    from makemore.runtime.novelty import count_novelty, format_novelty, model_split, novel_names
    from makemore.runtime.onnx_sampler import OnnxSampler

    sampler = OnnxSampler(model)
    split = model_split(sampler.info, model_words(sampler, data)) if stats else None
    options = dict(temperature=temperature, top_k=top_k, top_p=top_p, prefix=prefix, max_len=max_len)
    if novel_vs is None:
        chunks = sampler.sample_chunks(n, seed=seed, **options)
    else:
        chunks = [novel_names(sampler, n, set(read_lines(novel_vs)), seed, options)]
    sampled: list[str] = []
    write_names(keep_names(chunks, sampled) if stats else chunks, as_json)
    if split is not None:
        print(format_novelty(count_novelty(sampled, split)), file=sys.stderr)


def keep_names(chunks: Iterable[list[str]], kept: list[str]) -> Iterator[list[str]]:
    """Pass the chunks on, keeping their names in `kept` (for --stats)."""
    for chunk in chunks:
        kept.extend(chunk)
        yield chunk


def model_words(sampler: Sampler, data: Path | None) -> list[str]:
    """The words of `data` (default: bundled names), with a warning when the model was trained on other data."""
    from makemore.data import bundled_names_path, file_sha256, read_words

    data = data or bundled_names_path()
    words = read_words(data)
    if sampler.info.data_sha256 and file_sha256(data) != sampler.info.data_sha256:
        print(f"warning: {data} is not the data this model was trained on (sha256 differs)", file=sys.stderr)
    return words


def write_names(chunks: Iterable[list[str]], as_json: bool) -> None:
    """Stream names to stdout, chunk by chunk."""
    out = sys.stdout
    first = True
    if as_json:
        out.write("[")
    for chunk in chunks:
        if as_json:
            for name in chunk:
                out.write(("" if first else ", ") + json.dumps(name))
                first = False
        elif chunk:
            out.write("\n".join(chunk) + "\n")
    if as_json:
        out.write("]\n")
    out.flush()


@eval_app.command(
    help="Mean NLL per character of a dataset split under a makemore ONNX model;"
    " or, with --score NAME..., each name's NLL per character; or, with --samples N, how new N sampled names are."
)
def eval_command(
    model: Annotated[Path, typer.Argument(help="ONNX model written by mm-export.")],
    names: Annotated[
        list[str] | None, typer.Argument(help="Names to score (with --score).", metavar="NAME", show_default=False)
    ] = None,
    data: Annotated[Path | None, typer.Option(help="Text file, one item per line [default: bundled names]")] = None,
    split: Annotated[str, typer.Option(help="train, val or test (the split rule is the model's).")] = "val",
    score: Annotated[
        bool, typer.Option("--score", help="Print each NAME's NLL per character (lower: more name-like).")
    ] = False,
    samples: Annotated[
        int | None, typer.Option(help="Sample N names (seed 0): shares in train, in val/test and new.")
    ] = None,
) -> None:
    from makemore.runtime.novelty import count_novelty, format_novelty, model_split
    from makemore.runtime.onnx_sampler import OnnxSampler

    check_eval_modes(names or [], score, samples)
    sampler = OnnxSampler(model)
    if score:
        for name, nll in zip(names, sampler.score(names), strict=True):
            print(f"{nll:.6f}\t{name}")
        return
    splits = model_split(sampler.info, model_words(sampler, data))
    if samples is not None:
        print(format_novelty(count_novelty(sampler.sample(samples, seed=SAMPLES_SEED), splits)))
        return
    print(f"{sampler.nll(splits[split]):.6f}")


def check_eval_modes(names: list[str], score: bool, samples: int | None) -> None:
    """One mode at a time: --score NAME..., --samples N, or the NLL of a split."""
    if score and samples is not None:
        raise UserError("choose one of --score and --samples")
    if score and not names:
        raise UserError("--score needs at least one name: mm-eval MODEL --score NAME...")
    if names and not score:
        raise UserError(f"unexpected argument {names[0]!r} (to score names, add --score)")


def gen_main() -> None:
    run_cli(gen_app)


def eval_main() -> None:
    run_cli(eval_app)
