"""mm-gen and mm-eval: sample and score a makemore ONNX model, torch-free."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from makemore.runtime.cli_support import run_cli
from makemore.runtime.sampling import Sampler, SamplingError

gen_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
eval_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)

MAX_NOVEL_ROUNDS = 100


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
) -> None:
    from makemore.data import read_lines
    from makemore.runtime.onnx_sampler import OnnxSampler

    sampler = OnnxSampler(model)
    options = dict(temperature=temperature, top_k=top_k, top_p=top_p, prefix=prefix, max_len=max_len)
    if novel_vs is None:
        chunks = sampler.sample_chunks(n, seed=seed, **options)
    else:
        chunks = [novel_names(sampler, n, set(read_lines(novel_vs)), seed, options)]
    write_names(chunks, as_json)


def novel_names(sampler: Sampler, n: int, known: set[str], seed: int | None, options: dict) -> list[str]:
    """n sampled names not in `known`, drawing rounds from one seeded generator."""
    rng = np.random.default_rng(seed)
    found: list[str] = []
    for _ in range(MAX_NOVEL_ROUNDS):
        found += [name for name in sampler.sample(n, seed=rng, **options) if name not in known]
        if len(found) >= n:
            return found[:n]
    raise SamplingError(f"found only {len(found)} novel names in {MAX_NOVEL_ROUNDS * n} samples")


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


@eval_app.command(help="Mean NLL per character of a dataset split under a makemore ONNX model.")
def eval_command(
    model: Annotated[Path, typer.Argument(help="ONNX model written by mm-export.")],
    data: Annotated[Path | None, typer.Option(help="Text file, one item per line [default: bundled names]")] = None,
    split: Annotated[str, typer.Option(help="train, val or test (the split rule is the model's).")] = "val",
) -> None:
    from makemore.data import bundled_names_path, file_sha256, read_words, split_words
    from makemore.runtime.onnx_sampler import OnnxSampler

    sampler = OnnxSampler(model)
    data = data or bundled_names_path()
    words = read_words(data)
    if sampler.info.data_sha256 and file_sha256(data) != sampler.info.data_sha256:
        print(f"warning: {data} is not the data this model was trained on (sha256 differs)", file=sys.stderr)
    config = sampler.info.config
    fractions = tuple(config.get("split_fractions", (0.8, 0.1, 0.1)))
    words = split_words(words, config.get("split_seed", 42), fractions)[split]
    print(f"{sampler.nll(words):.6f}")


def gen_main() -> None:
    run_cli(gen_app)


def eval_main() -> None:
    run_cli(eval_app)
