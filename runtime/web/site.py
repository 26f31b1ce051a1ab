"""Build the static site: the page and its scripts, the model file, what the page needs from its metadata, and
onnxruntime-web's WebAssembly backend (from web/node_modules after `make web`, or a folder given)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from makemore.contract import CONTEXT, LOGITS, TOKENS, ModelInfo
from makemore.data import UserError, file_sha256
from makemore.runtime.chunks import CHUNK_SIZE
from makemore.runtime.web.folder import MARKER, check_site_folder, replace_folder

ORT_WEB_VERSION = "1.30.0"  # pinned in web/package.json; what the page says it runs
ORT_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")  # wasm backend only
PAGE_FILES = ("index.html", "app.js", "sampler.js", "options.js", "pcg64.js")
MODEL_NAME = "model.onnx"
MAX_COUNT = 10_000  # names the page makes at once (mm-serve's default --max-n)
CHECKOUT_DIST = Path(__file__).resolve().parents[2] / "web" / "node_modules" / "onnxruntime-web" / "dist"


@dataclass(frozen=True)
class SiteReport:
    """What a build wrote: the folder, its files and their total size."""

    folder: Path
    files: tuple[str, ...]
    size_bytes: int


def find_ort_dist(ort_dist: str | Path | None) -> Path:
    """The onnxruntime-web `dist` folder to copy from: `ort_dist`, else the source checkout's web/node_modules."""
    folder = Path(ort_dist) if ort_dist is not None else CHECKOUT_DIST
    missing = [name for name in ORT_FILES if not (folder / name).is_file()]
    if missing:
        where = f"--ort-dist {folder}" if ort_dist is not None else f"{folder}"
        raise UserError(
            f"onnxruntime-web's {missing[0]} is not in {where}: run `make web` in the source checkout, or pass"
            f" --ort-dist DIR (the dist folder of `npm install onnxruntime-web@{ORT_WEB_VERSION}`)"
        )
    return folder


def site_json(info: ModelInfo, model_sha256: str) -> dict:
    """What the page needs from the model's metadata (the page never parses the ONNX file's metadata itself)."""
    state = None
    if info.state is not None:
        tensors = [{"input": t.input, "output": t.output, "shape": list(t.shape)} for t in info.state.tensors]
        state = {"tensors": tensors, "max_positions": info.state.max_positions}
    return {
        "generator": "mm-web",
        "format_version": 1,
        "model": MODEL_NAME,
        "model_sha256": model_sha256,
        "kind": info.kind,
        "vocab": info.vocab.chars,
        "block_size": info.block_size,
        "max_len": info.max_len,
        "contract": info.contract,
        "state": state,
        "inputs": [CONTEXT if info.state is None else TOKENS],
        "logits": LOGITS,
        "val_loss": info.metrics.get("val_loss"),
        "chunk_size": CHUNK_SIZE,
        "max_count": MAX_COUNT,
        "onnxruntime_web": ORT_WEB_VERSION,
    }


def site_files(model: str | Path, info: ModelInfo, dist: Path, server: str | None = None) -> dict[str, bytes | Path]:
    """The site's files: name -> its bytes, or the path of the file to copy (the model, onnxruntime-web's).
    `server`: the address of mm-serve's page, for the page's switch back to it (None: a static site)."""
    page = files("makemore.runtime.web").joinpath("static")
    meta = {**site_json(info, file_sha256(model)), "server": server}
    return {
        **{name: page.joinpath(name).read_bytes() for name in PAGE_FILES},
        **{name: dist / name for name in ORT_FILES},
        MODEL_NAME: Path(model),
        MARKER: (json.dumps(meta, indent=1, ensure_ascii=False) + "\n").encode(),
    }


def build_site(model: str | Path, out: str | Path, ort_dist: str | Path | None = None) -> SiteReport:
    """Check the model (opened and probed by onnxruntime, as mm-gen does) and the output folder, then write the
    site into a new folder that replaces `out` whole. Nothing is written when any check fails."""
    from makemore.runtime.onnx_sampler import OnnxSampler

    dist = find_ort_dist(ort_dist)
    real = check_site_folder(out, inputs=(model,), site_names=frozenset((*PAGE_FILES, *ORT_FILES, MODEL_NAME)))
    content = site_files(model, OnnxSampler(model).info, dist)

    def write(folder: Path) -> None:
        for name, source in content.items():
            if isinstance(source, Path):
                shutil.copyfile(source, folder / name)
            else:
                (folder / name).write_bytes(source)

    replace_folder(real, write)
    names = tuple(sorted(p.name for p in real.iterdir()))
    return SiteReport(Path(out), names, sum((real / name).stat().st_size for name in names))
