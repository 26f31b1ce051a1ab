"""The results table: every model kind with its default config, and those quantized to int8.

    python bench/results.py [--models out/bench] [--kinds KIND ...] [--quick] [--out docs/results.md]

Trains each kind's default (`mm-train KIND`) unless --models already holds KIND.pt (the transformer's takes
about 14 minutes on 2 cores, the recurrent kinds' 2 to 5, the wavenet's 5), exports it (`mm-export`; mlp,
wavenet and the sequence kinds also with --quantize int8), and prints a Markdown table with the machine:
parameters; val and test loss as the runtime computes them (`mm-eval`: OnnxSampler.nll on the model's own
split), the int8 rows with their val loss's rise over the float model's; training time (the checkpoint's
metrics["train_seconds"]); ONNX file size; OnnxSampler.sample names/s at n = 10,000 and 100,000; and the
latency of 20 names.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import budget_median_time, load_average, machine, markdown_table, median_time, trained_model  # noqa: E402
from makemore.data import bundled_names_path, read_words  # noqa: E402
from makemore.runtime.novelty import model_split  # noqa: E402
from makemore.runtime.onnx_sampler import OnnxSampler  # noqa: E402
from makemore.train.kinds import MODEL_KINDS, SEQUENCE_KINDS  # noqa: E402

KINDS = MODEL_KINDS  # the registry's (train/kinds.py)
QUANTIZED = ("mlp", "wavenet", *SEQUENCE_KINDS)  # kinds also shown as int8
SIZES = (10_000, 100_000)  # names per OnnxSampler.sample call for names/s
LATENCY_NAMES = 20
REPEATS = 3
BUDGET = 60.0  # seconds one names/s figure may take: slower calls are repeated fewer times


@dataclass(frozen=True)
class Measured:
    """One model file's figures."""

    label: str
    params: int
    train_seconds: float | None
    val: float
    test: float
    size_bytes: int
    names_per_second: dict[int, float]
    latency_seconds: float


def int8_model(pt: Path) -> Path:
    """The int8 export of a checkpoint, beside it (made once)."""
    from makemore.export.onnx_export import export_checkpoint

    out = pt.with_suffix(".int8.onnx")
    if not out.exists():
        export_checkpoint(pt, out, quantize="int8")
    return out


def checkpoint_facts(pt: Path) -> tuple[int, float | None]:
    """(parameter count, training seconds if the checkpoint's metrics record them)."""
    from makemore.train.checkpoint import load_checkpoint, load_model

    checkpoint = load_checkpoint(pt)
    params = sum(p.numel() for p in load_model(checkpoint).parameters())
    return params, checkpoint.get("metrics", {}).get("train_seconds")


def measure(label: str, pt: Path, onnx_path: Path, words: list[str], sizes: tuple[int, ...]) -> Measured:
    """The figures of one model file: losses on the model's own split of `words`, size, speed."""
    sampler = OnnxSampler(onnx_path)
    split = model_split(sampler.info, words)
    params, train_seconds = checkpoint_facts(pt)
    rates = {n: n / budget_median_time(lambda n=n: sampler.sample(n, seed=0), REPEATS, BUDGET) for n in sizes}
    return Measured(
        label,
        params,
        train_seconds,
        sampler.nll(split.val),
        sampler.nll(split.test),
        onnx_path.stat().st_size,
        rates,
        median_time(lambda: sampler.sample(LATENCY_NAMES, seed=0), 20),
    )


def table_row(m: Measured, float_val: float | None) -> list[object]:
    """A Markdown row; `float_val` is the float model's val loss for an int8 row (None for a float row)."""
    trained = "—" if float_val is not None else "n/a" if m.train_seconds is None else f"{m.train_seconds:,.0f} s"
    return [
        m.label,
        f"{m.params:,}",
        f"{m.val:.4f}",
        "" if float_val is None else f"{m.val - float_val:+.4f}",
        f"{m.test:.4f}",
        trained,
        f"{m.size_bytes / 1024:.1f} KiB",
        *(f"{rate:,.0f}" for rate in m.names_per_second.values()),
        f"{m.latency_seconds * 1e3:.2f}",
    ]


def kind_rows(kind: str, words: list[str], sizes: tuple[int, ...]) -> list[list[object]]:
    """The row of a kind's default model, and of its int8 export when the kind is quantized."""
    pt, onnx_path = trained_model(kind)
    base = measure(kind, pt, onnx_path, words, sizes)
    rows = [table_row(base, None)]
    if kind in QUANTIZED:
        from makemore.data import UserError

        try:
            quantized = int8_model(pt)
        except UserError as refused:  # mm-export's parity check refused the file
            return [*rows, [f"{kind} int8", f"refused by mm-export: {refused}", *[""] * (len(rows[0]) - 2)]]
        rows.append(table_row(measure(f"{kind} int8", pt, quantized, words, sizes), base.val))
    return rows


def report(kinds: list[str], sizes: tuple[int, ...]) -> str:
    """The machine, what the columns mean, and the table."""
    words = read_words(bundled_names_path())
    rows = [row for kind in kinds for row in kind_rows(kind, words, sizes)]
    headers = ["kind", "params", "val loss", "int8 Δ val", "test loss", "training", "ONNX size"]
    headers += [f"names/s (n = {n:,})" for n in sizes] + [f"{LATENCY_NAMES} names (ms)"]
    return "\n".join(
        [
            f"Machine: {machine()}; load average (1, 5, 15 min) at the end of the run: {load_average()}.",
            "Each kind with its default config; val and test loss as `mm-eval` reports them (int8 Δ val: the int8 "
            "file's val loss minus the float one's); training: wall time recorded in the checkpoint (int8 rows: "
            f"the float checkpoint, quantized at export); names/s = OnnxSampler.sample(n) names per second, median "
            f"of {REPEATS} (one run where it takes over {BUDGET:.0f} s); latency: OnnxSampler.sample({LATENCY_NAMES}), "
            "median of 20.",
            "",
            markdown_table(headers, rows),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=common.MODELS, help="folder of KIND.pt (trained if missing)")
    parser.add_argument(
        "--kinds", nargs="+", choices=KINDS, default=list(KINDS), metavar="KIND", help=f"of {', '.join(KINDS)} (all)"
    )
    parser.add_argument("--quick", action="store_true", help=f"names/s at n = {SIZES[0]:,} only")
    parser.add_argument("--out", type=Path, help="also write the table to its generated section of this page")
    args = parser.parse_args()
    common.MODELS = args.models  # where trained_model() looks for and writes the checkpoints
    text = report(args.kinds, SIZES[:1] if args.quick else SIZES)
    print(text)
    if args.out is not None:
        common.write_results_section("kinds", text, args.out)


if __name__ == "__main__":
    main()
