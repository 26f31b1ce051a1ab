"""mm-web: write a static site that samples names from a makemore ONNX model in the browser (torch-free)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from makemore.data.cli import run_cli, stdout
from makemore.runtime.pretrained import MODEL_HELP, model_or_pretrained

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)


@app.command(
    help="Write a static site (index.html, scripts, the model, onnxruntime-web's WebAssembly files) that samples"
    " names in the browser with no server behind it: serve the folder from any static host."
)
def web_command(
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Site folder: new, empty, or a site mm-web wrote before (replaced whole)."),
    ],
    model: Annotated[Path | None, typer.Argument(help=MODEL_HELP, show_default=False)] = None,
    ort_dist: Annotated[
        Path | None,
        typer.Option(help="onnxruntime-web's dist folder [default: ort-web/node_modules/... of the checkout]."),
    ] = None,
) -> None:
    from makemore.runtime.web.site import build_site

    out_stream = stdout()
    report = build_site(model_or_pretrained(model), out, ort_dist)
    out_stream.write(
        f"wrote {report.folder}/ ({len(report.files)} files, {report.size_bytes / 1e6:.1f} MB);"
        f" try it: python -m http.server -d {report.folder} 8000, then open http://127.0.0.1:8000/\n"
    )


def main() -> None:
    run_cli(app)


if __name__ == "__main__":
    main()
