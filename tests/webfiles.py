"""Helpers of mm-web's CLI tests: a stand-in onnxruntime-web dist folder and a snapshot of a folder tree."""

from __future__ import annotations

from pathlib import Path

from makemore.runtime.web.site import ORT_FILES, WASM_MAGIC


def fake_ort_dist(folder: Path) -> Path:
    """A dist folder with onnxruntime-web's file names and tiny contents that pass mm-web's checks (scripts that
    are UTF-8 text, a .wasm with WebAssembly's header): mm-web only checks and copies them."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ORT_FILES:
        if name.endswith(".wasm"):
            (folder / name).write_bytes(WASM_MAGIC + b"stand-in")
        else:
            (folder / name).write_text(f"// stand-in for {name}\n")
    return folder


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under `root` (hidden ones included) -> its bytes (None for a folder)."""
    return {
        str(path.relative_to(root)): None if path.is_dir() else path.read_bytes() for path in sorted(root.rglob("*"))
    }
