"""mm-export: checkpoint -> self-contained ONNX file, verified against torch."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from makemore.train.extra import run_training_cli

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)


@app.command(help="Export a checkpoint (model.pt) to one self-contained ONNX file with its metadata.")
def export_command(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint written by mm-train.")],
    out: Annotated[Path, typer.Argument(help="ONNX file to write.")] = Path("model.onnx"),
    opset: Annotated[int, typer.Option(help="ONNX opset version.")] = 17,
    quantize: Annotated[
        str | None, typer.Option(help="int8: weights stored as int8, computed in float32 (a file about 3x smaller).")
    ] = None,
) -> None:
    from makemore.export.onnx_export import INT8_MAX_MEAN_KL, export_checkpoint

    report = export_checkpoint(checkpoint, out, opset=opset, quantize=quantize)
    if report.quantize is None:
        print(
            f"wrote {report.path} ({report.size_bytes:,} bytes, opset {report.opset});"
            f" onnxruntime vs torch max |diff| {report.max_abs_diff:.2e}",
            file=sys.stderr,
        )
    else:
        print(
            f"wrote {report.path} ({report.size_bytes:,} bytes {report.quantize}, float32 {report.float_size_bytes:,};"
            f" opset {report.opset}); vs torch: mean KL {report.mean_kl:.2e} (limit {INT8_MAX_MEAN_KL}),"
            f" max |logit diff| {report.max_abs_diff:.2e}",
            file=sys.stderr,
        )


def main() -> None:
    run_training_cli(app, "mm-export")


if __name__ == "__main__":
    main()
