"""Run the page's JavaScript modules under node (no browser): copy them beside a script and print its JSON."""

from __future__ import annotations

import json
import shutil
import subprocess
from importlib.resources import files
from pathlib import Path

import pytest

NODE = shutil.which("node")


def run_node(tmp_path: Path, script: str, payload: object) -> object:
    """Run the ES module `script` (which reads JSON from stdin, beside the page's modules) and parse its stdout."""
    if NODE is None:
        pytest.fail("node is missing: the JavaScript sampler is tested under node (apt-get install -y nodejs)")
    folder = tmp_path / "js"
    folder.mkdir(exist_ok=True)
    static = files("makemore.runtime.web").joinpath("static")
    for name in ("pcg64.js", "sampler.js", "options.js", "constraints.js"):
        (folder / name).write_bytes(static.joinpath(name).read_bytes())
    (folder / "package.json").write_text('{"type": "module"}\n')
    (folder / "main.js").write_text(script)
    result = subprocess.run(
        [NODE, str(folder / "main.js")], input=json.dumps(payload), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
