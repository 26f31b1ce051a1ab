"""Helpers of mm-web's tests: a stand-in onnxruntime-web dist folder, a snapshot of a folder tree, a stand-in of a
model's metadata for the site JSON, and a page opened in the browser with its console watched."""

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


def site_info(kind: str, block_size: int, longest_name: int, chars: str = "ab"):
    """A stand-in of what site_json reads of a model's metadata (an unlabelled window model, max_len 9)."""

    class Info:
        labelled = False
        state, vocab, max_len, contract, metrics = None, type("V", (), {"chars": chars}), 9, "window", {}

    info = Info()
    info.kind, info.block_size, info.longest_name = kind, block_size, longest_name
    return info


class Console:
    """The page's console errors and uncaught exceptions."""

    def __init__(self, page) -> None:
        self.errors: list[str] = []
        page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        page.on("pageerror", lambda err: self.errors.append(f"pageerror: {err}"))


def open_site(browser, port: int, name: str, state: str = "ready", height: int = 620):
    """The site served at /name/ on `port`, opened and waited for until its body's data-state is `state`."""
    page = browser.new_page(viewport={"width": 900, "height": height})
    console = Console(page)
    page.goto(f"http://127.0.0.1:{port}/{name}/")
    page.wait_for_selector(f"body[data-state='{state}']", timeout=60_000)
    return page, console


def same_names(page: list[str], expected: list[str]) -> bool:
    """The page's names are onnxruntime's, by the parity rule of two backends: the same count, and at most one name
    differs (a draw that lands on a last-bit rounding flip changes that name only: every name has its own
    uniforms). Seen: 1 of 200 gru names after the runtime's batch of rows changed (its GEMMs round differently)."""
    return len(page) == len(expected) and sum(a != b for a, b in zip(page, expected, strict=True)) <= 1
