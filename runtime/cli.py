"""mm-gen and mm-eval: sample and score a makemore ONNX model, torch-free."""

import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer
from makemore.data import UserError
from makemore.data.bounds import MAX_EXCLUDE, MAX_EXCLUDE_CHARS, MAX_REGEX
from makemore.data.cli import run_cli, stdout, warn
from makemore.data.reader import DATA_HELP
from makemore.runtime.options import SamplingOptions
from makemore.runtime.parallel import check_workers, usable_cores
from makemore.runtime.pretrained import MODEL_HELP, model_or_pretrained
from makemore.runtime.sampling import KeptMass, Sampler

if TYPE_CHECKING:  # the labelled data's module is imported by a conditional model's request only
    from makemore.data.labels import LabelledWords
    from makemore.runtime.novelty import NoveltyCounter

gen_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
eval_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)

SAMPLES_SEED = 0  # mm-eval --samples is reproducible
LABEL_HELP = (
    "A conditional model's label: every name is sampled under it (--beam needs one). Without it each name's label"
    " is drawn from the training frequencies, reproducibly from --seed."
)


@gen_app.command(
    help="Sample names from a makemore ONNX model (one per line on stdout, streamed: memory stays flat for any --n;"
    " --workers threads [default: the usable cores])."
)
def gen_command(
    model: Annotated[Path | None, typer.Argument(help=MODEL_HELP, show_default=False)] = None,
    n: Annotated[int, typer.Option("--n", min=1, help="How many names.")] = 20,
    seed: Annotated[int | None, typer.Option(help="Seed for reproducible names (0 to 2**64-1).")] = None,
    temperature: Annotated[float, typer.Option(help="Above 1: wilder; below 1: safer; 0: greedy.")] = 1.0,
    top_k: Annotated[int | None, typer.Option(help="Sample from the k likeliest characters only.")] = None,
    top_p: Annotated[float | None, typer.Option(help="Nucleus sampling: the smallest set with mass p.")] = None,
    prefix: Annotated[str, typer.Option(help="Every name starts with this.")] = "",
    max_len: Annotated[int | None, typer.Option(help="Longest name [default: longest training word].")] = None,
    min_len: Annotated[int | None, typer.Option(help="Shortest name (at least this many characters).")] = None,
    ends_with: Annotated[str, typer.Option(help="Every name ends with this.")] = "",
    contains: Annotated[str, typer.Option(help="Every name contains this.")] = "",
    match: Annotated[
        str,
        typer.Option(
            help=f"Every name matches this regular expression whole (as Python's re.fullmatch; at most {MAX_REGEX}"
            " characters, and an automaton of bounded size)."
        ),
    ] = "",
    exclude: Annotated[
        Path | None,
        typer.Option(
            help=f"Never print a name of this file (one a line; at most {MAX_EXCLUDE:,} names,"
            f" {MAX_EXCLUDE_CHARS:,} characters in all; their trie within the automaton's bound)."
        ),
    ] = None,
    beam: Annotated[
        int | None,
        typer.Option(
            help="Beam search of W rows: print the --n likeliest distinct names under the constraints, each after its"
            " log-probability and a tab, likeliest first (deterministic: temperature, top-k/p, seed do not apply).",
            metavar="W",
        ),
    ] = None,
    label: Annotated[str | None, typer.Option(help=LABEL_HELP)] = None,
    novel_vs: Annotated[
        Path | None,
        typer.Option(help="Drop names in this file; sample until n new ones (holds the file's lines in memory)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list instead of lines.")] = False,
    as_jsonl: Annotated[
        bool,
        typer.Option(
            "--jsonl", help="Print JSON Lines: each name as a JSON string on its own line (shards concatenate)."
        ),
    ] = False,
    stats: Annotated[
        bool,
        typer.Option(
            "--stats",
            help="Then print on stderr the share of names in train, in val/test and new"
            " (counted as they stream: holds the data's words, not the names); with constraints, also the estimated"
            " share of the model's distribution they keep.",
        ),
    ] = False,
    data: Annotated[Path | None, typer.Option(help=f"For --stats: {DATA_HELP[0].lower()}{DATA_HELP[1:]}")] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Threads sampling chunks of 4,096 names at once; the names do not depend on it."),
    ] = None,
    shard: Annotated[
        str | None,
        typer.Option(
            metavar="I/K",
            help="Print only the I-th of K slices of the request's chunks (with --seed, the K shards"
            " printed in order are the names of one run; with --jsonl, not --json).",
        ),
    ] = None,
) -> None:
    from makemore.runtime.chunks import parse_shard, shard_range
    from makemore.runtime.onnx_sampler import OnnxSampler

    check_beam_flags(beam, novel_vs, shard, stats)
    if data is not None and not stats:
        raise UserError("--data is read by --stats alone: add --stats, or leave --data out")
    options = SamplingOptions(
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        prefix=prefix,
        max_len=max_len,
        seed=seed,
        min_len=min_len,
        ends_with=ends_with,
        contains=contains,
        match=match,
        exclude=tuple(read_exclude(exclude)) if exclude is not None else (),
        label=label,
    )
    workers = check_workers(usable_cores() if workers is None else workers, "--workers")
    start, stop = shard_range(n, *parse_shard(shard)) if shard is not None else (0, n)
    if shard is not None and novel_vs is not None:
        raise UserError("--shard cannot be combined with --novel-vs (what a shard keeps depends on the others)")
    if as_json and (as_jsonl or shard is not None):
        other = "--jsonl" if as_jsonl else "--shard (K JSON lists do not concatenate into one: use --jsonl)"
        raise UserError(f"--json cannot be combined with {other}")
    form = "json" if as_json else "jsonl" if as_jsonl else ""
    sampler = OnnxSampler(model_or_pretrained(model), workers=workers)
    options.for_model(sampler.info)  # a prefix, max_len or label the model cannot take: one error line before any work
    if beam is not None:
        found = sampler.beam(n, options, width=beam)  # checked and searched before anything is printed
        write_scored(stdout(), found, form)
        return
    out = stdout()
    counter = novelty_counter(sampler, data) if stats else None
    mass = KeptMass() if stats and options.constrained else None
    if novel_vs is None:
        chunks = sampler.sample_chunks(stop - start, options, start=start, mass=mass)
    else:
        from makemore.runtime.novelty import known_names, novel_name_chunks

        known = known_names(read_names_file(novel_vs, "--novel-vs"), sampler.info)
        chunks = novel_name_chunks(sampler, n, known, options, mass)
    write_names(out, counter.passing(chunks) if counter else chunks, form)
    if counter is not None:
        from makemore.runtime.novelty import format_novelty

        print(format_novelty(counter.stats), file=sys.stderr)
    if mass is not None and mass.share is not None:
        print(f"constraints keep ~{mass.share:.3g} of the model's distribution (importance estimate)", file=sys.stderr)


def novelty_counter(sampler: Sampler, data: Path | None) -> "NoveltyCounter":
    """--stats' counter of the names in train, in val/test and new (runtime.novelty: imported by --stats only)."""
    from makemore.runtime.novelty import NoveltyCounter, model_split

    return NoveltyCounter(model_split(sampler.info, model_words(sampler, data)))


def check_beam_flags(beam: int | None, novel_vs: Path | None, shard: str | None, stats: bool) -> None:
    """--beam prints one deterministic list: it takes none of --novel-vs, --shard, --stats."""
    if beam is None:
        return
    for flag, given in (("--novel-vs", novel_vs is not None), ("--shard", shard is not None), ("--stats", stats)):
        if given:
            raise UserError(f"--beam cannot be combined with {flag}")


def read_exclude(path: Path) -> list[str]:
    """The names of an --exclude file (data.reader's reader: one a line, stripped, blank lines dropped), refused
    past MAX_EXCLUDE names or MAX_EXCLUDE_CHARS characters (as an option: naming the flag)."""
    names = read_names_file(path, "--exclude")
    if len(names) > MAX_EXCLUDE:
        raise UserError(f"--exclude holds more than {MAX_EXCLUDE:,} names ({len(names):,}): {path}")
    if sum(map(len, names)) > MAX_EXCLUDE_CHARS:
        raise UserError(f"--exclude holds more than {MAX_EXCLUDE_CHARS:,} characters: {path}")
    return names


def read_names_file(path: Path, flag: str) -> list[str]:
    """The names of a file given to `flag` (data.reader's reader: one a line, stripped, blank lines dropped); its
    one-line errors name the flag where the reader's name the data ("--exclude path is a directory, ...")."""
    from makemore.data import DatasetError, read_lines

    try:
        return read_lines(path)
    except DatasetError as err:
        raise UserError(re.sub(r"\bdata (file|path)\b", f"{flag} \\1", str(err), count=1)) from None


def write_scored(out: TextIO, found: list[tuple[str, float]], form: str = "") -> None:
    """Beam search's names with their log-probabilities: `log-prob<TAB>name` lines, or JSON objects
    {"name", "log_prob"} (one list with "json", one a line with "jsonl")."""
    if form == "json":
        out.write(json.dumps([{"name": name, "log_prob": lp} for name, lp in found]) + "\n")
    else:
        for name, log_prob in found:
            line = json.dumps({"name": name, "log_prob": log_prob}) if form == "jsonl" else f"{log_prob:.6f}\t{name}"
            out.write(line + "\n")
    out.flush()


def model_words(sampler: Sampler, data: Path | None) -> list[str]:
    """The words of `data` (default: bundled names; a conditional model's: the items of its label<TAB>item file,
    which it needs), with a warning when the model was trained on other data."""
    if sampler.info.labelled:
        labelled = labelled_data(sampler, data)
        return labelled.items
    from makemore.data import bundled_names_path, read_words_sha256

    data = data or bundled_names_path()
    words, sha256 = read_words_sha256(data)  # read once (a pipe or FIFO has no second read), hashed as read
    if sampler.info.data_sha256 and sha256 != sampler.info.data_sha256:
        warn(f"{data} is not the data this model was trained on (sha256 differs)")
    return words


def labelled_data(sampler: Sampler, data: Path | None) -> "LabelledWords":
    """A conditional model's data file (label<TAB>item lines; --data is required), with the same warning."""
    from makemore.data.labels import read_labelled

    if data is None:
        raise UserError("this model is conditional: give --data, its file of label<TAB>item lines")
    labelled = read_labelled(data)
    if sampler.info.data_sha256 and labelled.sha256 != sampler.info.data_sha256:
        warn(f"{data} is not the data this model was trained on (sha256 differs)")
    return labelled


def label_losses(sampler: Sampler, data: Path | None, split: str, label: str | None) -> list[str]:
    """mm-eval's lines for a conditional model on a split of its labelled data: the mean NLL per character over
    every word (each under its own label), then `loss<TAB>label` for each label that the split holds (with
    `label`: that label's words only, one line)."""
    from makemore.data.dataset import DEFAULT_FRACTIONS
    from makemore.data.labels import split_labelled

    info = sampler.info
    fractions = tuple(info.config.get("split_fractions", DEFAULT_FRACTIONS))
    pairs = split_labelled(labelled_data(sampler, data), info.config.get("split_seed", 42), fractions)[split]
    by_label: dict[str, list[str]] = {}
    for name, item in pairs:
        by_label.setdefault(name, []).append(item)
    if label is not None:
        return [f"{sampler.nll(by_label.get(label, []) or _no_words(label, split), label):.6f}"]
    unknown = sorted(set(by_label) - set(info.labels))
    if unknown:
        raise UserError(f"the data holds a label this model does not know: {unknown[0]!r:.40}")
    totals = {name: sampler.nll_totals(by_label[name], name) for name in info.labels if name in by_label}
    total, count = sum(t for t, _ in totals.values()), sum(c for _, c in totals.values())
    return [f"{total / count:.6f}", *(f"{t / c:.6f}\t{name}" for name, (t, c) in totals.items())]


def _no_words(label: str, split: str) -> list[str]:
    raise UserError(f"the {split} split holds no word of label {label!r:.40}")


def write_names(out: TextIO, chunks: Iterable[list[str]], form: str = "") -> None:
    """Stream names to `out`, chunk by chunk (flushed after each, so the first names appear at once).

    `form`: "" one name per line, "json" one JSON list, "jsonl" one JSON string per line (JSON Lines, which
    concatenate: the shards of a run, printed in order, are that run's output byte for byte).
    """
    opened = False  # a JSON list's "[" goes out with its first chunk: a request failing before it prints nothing
    for chunk in chunks:
        if form == "json":
            for name in chunk:
                out.write(("[" if not opened else ", ") + json.dumps(name))
                opened = True
        elif chunk:
            lines = map(json.dumps, chunk) if form == "jsonl" else chunk
            out.write("\n".join(lines) + "\n")
        out.flush()
    if form == "json":
        out.write(("" if opened else "[") + "]\n")
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
    data: Annotated[Path | None, typer.Option(help=DATA_HELP)] = None,
    split: Annotated[
        str | None, typer.Option(help="train, val or test (the split rule is the model's) [default: val].")
    ] = None,
    score: Annotated[
        bool, typer.Option("--score", help="Print each NAME's NLL per character (lower: more name-like).")
    ] = False,
    samples: Annotated[
        int | None, typer.Option(min=1, help="Sample N names (seed 0): shares in train, in val/test and new.")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Threads sampling chunks of --samples at once [default: the usable cores].")
    ] = None,
    label: Annotated[
        str | None,
        typer.Option(
            help="A conditional model's label: --score scores under it [default: the mixture of the labels];"
            " a split's NLL is that label's words' [default: every word under its own label, then each label's]."
        ),
    ] = None,
) -> None:
    from makemore.runtime.novelty import NoveltyCounter, format_novelty, model_split
    from makemore.runtime.onnx_sampler import OnnxSampler

    check_eval_modes(names or [], score, samples, workers, data, split)
    split = "val" if split is None else split
    workers = check_workers(usable_cores() if workers is None else workers, "--workers")
    out = stdout()
    sampler = OnnxSampler(model, workers=workers)
    SamplingOptions(label=label).label_index(sampler.info)  # an unknown label: one error line
    if score:
        for name, nll in zip(names or [], sampler.score(names or [], label), strict=True):
            out.write(f"{nll:.6f}\t{name}\n")
        return
    if sampler.info.labelled and samples is None:
        if split not in ("train", "val", "test"):
            raise UserError(f"unknown split {split!r:.40}: choose train, val or test")
        out.write("\n".join(label_losses(sampler, data, split, label)) + "\n")
        return
    if label is not None and samples is not None:
        raise UserError("--label cannot be combined with --samples (names are drawn under every label)")
    splits = model_split(sampler.info, model_words(sampler, data))
    if samples is not None:
        counter = NoveltyCounter(splits)
        for chunk in sampler.sample_chunks(samples, seed=SAMPLES_SEED):
            counter.add(chunk)
        out.write(format_novelty(counter.stats) + "\n")
        return
    out.write(f"{sampler.nll(splits[split]):.6f}\n")


def check_eval_modes(
    names: list[str],
    score: bool,
    samples: int | None,
    workers: int | None = None,
    data: Path | None = None,
    split: str | None = None,
) -> None:
    """One mode at a time: --score NAME..., --samples N, or the NLL of a split; --workers only with --samples,
    --data not with --score, --split only for a split's NLL (a flag that would do nothing is refused)."""
    if score and samples is not None:
        raise UserError("choose one of --score and --samples")
    if workers is not None and samples is None:
        raise UserError("--workers applies to --samples (the names it samples); scores and losses run on one thread")
    if score and data is not None:
        raise UserError("--data applies to a split's loss and to --samples; --score scores the names given")
    if split is not None and (score or samples is not None):
        raise UserError("--split applies to a split's loss (mm-eval MODEL --split S), not to --score or --samples")
    if score and not names:
        raise UserError("--score needs at least one name: mm-eval MODEL --score NAME...")
    if names and not score:
        raise UserError(f"unexpected argument {names[0]!r} (to score names, add --score)")


def gen_main() -> None:
    run_cli(gen_app)


def eval_main() -> None:
    run_cli(eval_app)
