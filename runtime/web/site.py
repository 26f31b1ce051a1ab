"""Build the static site: the page and its scripts, the model file, what the page needs from its metadata, and
onnxruntime-web's WebAssembly backend (from ort-web/node_modules after `make web`, or a folder given)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from makemore.contract import CONTEXT, LABEL, LOGITS, TOKENS, ModelInfo
from makemore.data import UserError, file_sha256
from makemore.data.bounds import AUTOMATON_CELLS, AUTOMATON_WORK, MAX_EXCLUDE_CHARS, SAMPLING, Bound
from makemore.runtime.chunks import CHUNK_SIZE
from makemore.runtime.web.folder import MARKER, check_site_folder, replace_folder

ORT_WEB_VERSION = "1.30.0"  # pinned in ort-web/package.json; what the page says it runs
ORT_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")  # wasm backend only
ORT_MAX_BYTES = {".js": 16 << 20, ".mjs": 16 << 20, ".wasm": 128 << 20}  # 1.30.0's: ~0.1 MB scripts, ~12 MB wasm
WASM_MAGIC = b"\0asm\x01\0\0\0"  # every WebAssembly binary starts so (magic, version 1)
PAGE_FILES = ("index.html", "app.js", "sampler.js", "options.js", "pcg64.js", "constraints.js")
MODEL_NAME = "model.onnx"
MAX_COUNT = 10_000  # names the page makes at once (mm-serve's default --max-n) ...
MAX_NAME_LEN = 256  # ... and the longest name it makes (mm-serve's default --max-len): a request's work in the tab is
# at most MAX_COUNT x MAX_NAME_LEN characters (10,000 names of 10,000 characters froze a tab for minutes, 2.6 GB)
CHECKOUT_DIST = Path(__file__).resolve().parents[2] / "ort-web" / "node_modules" / "onnxruntime-web" / "dist"


@dataclass(frozen=True)
class SiteReport:
    """What a build wrote: the folder, its files and their total size."""

    folder: Path
    files: tuple[str, ...]
    size_bytes: int


def find_ort_dist(ort_dist: str | Path | None) -> Path:
    """The onnxruntime-web `dist` folder to copy from: `ort_dist`, else the source checkout's ort-web/node_modules.

    Each of ORT_FILES must be a regular file (not a link: a link could bring any file of the machine into the
    site) within ORT_MAX_BYTES, and look like what it is (check_ort_file); anything else is one UserError.
    """
    folder = Path(ort_dist) if ort_dist is not None else CHECKOUT_DIST
    where = f"--ort-dist {folder}" if ort_dist is not None else f"{folder}"
    missing = [name for name in ORT_FILES if not os.path.lexists(folder / name)]
    if missing:
        raise UserError(
            f"onnxruntime-web's {missing[0]} is not in {where}: run `make web` in the source checkout, or pass"
            f" --ort-dist DIR (the dist folder of `npm install onnxruntime-web@{ORT_WEB_VERSION}`)"
        )
    for name in ORT_FILES:
        problem = check_ort_file(folder / name)
        if problem:
            raise UserError(f"{where}/{name} {problem}: not onnxruntime-web {ORT_WEB_VERSION}'s dist folder")
    return folder


def check_ort_file(path: Path) -> str | None:
    """What is wrong with one of onnxruntime-web's files (None: nothing): a link, not a regular file, empty or
    above ORT_MAX_BYTES, a .wasm without WebAssembly's magic bytes, a script that is not UTF-8 text."""
    try:
        with open(path, "rb", opener=no_follow) as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                return "is not a regular file"
            if not 0 < info.st_size <= ORT_MAX_BYTES[path.suffix]:
                return f"has {info.st_size:,} bytes (expected 1 to {ORT_MAX_BYTES[path.suffix]:,})"
            head = handle.read(8) if path.suffix == ".wasm" else handle.read()
    except OSError as err:
        if err.errno in (errno.ELOOP, errno.EISDIR):
            return "is a link" if err.errno == errno.ELOOP else "is not a regular file"
        return f"cannot be read ({err.strerror})"
    if path.suffix == ".wasm":
        return None if head == WASM_MAGIC else "is not WebAssembly (no \\0asm version 1 header)"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "is not UTF-8 text (not JavaScript)"
    return "holds NUL bytes (not JavaScript)" if "\0" in text else None


def no_follow(path: str, flags: int) -> int:
    """os.open that refuses a link (ELOOP) and never blocks on a fifo: for open(..., opener=no_follow)."""
    return os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK)


def copy_ort_file(source: Path, target: Path) -> None:
    """Copy one checked file of onnxruntime-web, again refusing a link (it may have changed since the check)."""
    problem = check_ort_file(source)
    if problem:
        raise UserError(f"{source} {problem}")
    with open(source, "rb", opener=no_follow) as src, open(target, "wb") as dst:
        shutil.copyfileobj(src, dst)


def site_json(info: ModelInfo, model_sha256: str) -> dict[str, Any]:
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
        "max_len": min(info.max_len, MAX_NAME_LEN),
        "longest_name": min(info.longest_name, MAX_NAME_LEN),
        "contract": info.contract,
        "state": state,
        "inputs": [CONTEXT if info.state is None else TOKENS, *([LABEL] if info.labelled else [])],
        "labels": labels_json(info),
        "logits": LOGITS,
        "val_loss": info.metrics.get("val_loss"),
        "chunk_size": CHUNK_SIZE,
        "max_count": MAX_COUNT,
        "bounds": {"count": Bound(int, 1, MAX_COUNT).to_json(), **{k: b.to_json() for k, b in SAMPLING.items()}},
        "limits": {  # the constraint automaton's bounds (runtime.constraints), as the page's constraints.js reads them
            "automaton_cells": AUTOMATON_CELLS,
            "automaton_work": AUTOMATON_WORK,
            "exclude_chars": MAX_EXCLUDE_CHARS,
        },
        "onnxruntime_web": ORT_WEB_VERSION,
    }


def labels_json(info: ModelInfo) -> dict[str, Any] | None:
    """A conditional model's labels for the page: its `label` input, the names (index order) and their training
    counts, which the page draws a name's label from when none is chosen (as chunks.chunk_labels); None: no labels."""
    if not info.labelled:
        return None
    return {"input": LABEL, "names": list(info.labels), "counts": list(info.label_counts)}


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
    site_names = frozenset((*PAGE_FILES, *ORT_FILES, MODEL_NAME))
    real = check_site_folder(out, inputs=(model,), site_names=site_names)
    content = site_files(model, OnnxSampler(model).info, dist)

    def write(folder: Path) -> None:
        for name, source in content.items():
            if name in ORT_FILES and isinstance(source, Path):
                copy_ort_file(source, folder / name)
            elif isinstance(source, Path):
                shutil.copyfile(source, folder / name)
            else:
                (folder / name).write_bytes(source)

    replace_folder(real, write, contents=frozenset(content))  # what a build of this site writes
    names = tuple(sorted(p.name for p in real.iterdir()))
    return SiteReport(Path(out), names, sum((real / name).stat().st_size for name in names))
