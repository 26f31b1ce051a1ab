"""The torch-free runtime: OnnxSampler semantics, mm-gen / mm-eval, no torch, no stray files, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from clirun import assert_usage_error, run
from conftest import rewrite_metadata
from makemore.data import BOUNDARY, read_lines
from makemore.runtime.onnx_sampler import OnnxSampler
from makemore.runtime.sampling import Sampler, WindowForward


@pytest.fixture(scope="module")
def mlp_onnx(model_files) -> Path:
    return model_files["mlp"][1]


@pytest.fixture(scope="module")
def sampler(mlp_onnx) -> OnnxSampler:
    return OnnxSampler(mlp_onnx)


def test_sampler_reads_metadata(sampler) -> None:
    assert sampler.vocab.chars == "abcdefghijklmnopqrstuvwxyz"
    assert sampler.block_size == 4
    assert sampler.info.kind == "mlp" and sampler.info.max_len == 15
    assert sampler.logits(np.zeros((3, 4), dtype=np.int64)).shape == (3, 27)


def test_same_seed_same_names(sampler) -> None:
    first = sampler.sample(300, seed=3, temperature=1.2)
    assert first == sampler.sample(300, seed=3, temperature=1.2)
    assert first != sampler.sample(300, seed=4, temperature=1.2)


@pytest.mark.parametrize("kind", ["bigram", "bigram-nn", "mlp"])
def test_names_are_never_empty_and_bounded(model_files, kind) -> None:
    onnx_sampler = OnnxSampler(model_files[kind][1])
    names = onnx_sampler.sample(2000, seed=0, temperature=2.0)
    assert all(names)
    assert max(len(name) for name in names) <= onnx_sampler.info.max_len  # default bound: longest training word
    short = onnx_sampler.sample(500, seed=0, max_len=3)
    assert all(1 <= len(name) <= 3 for name in short)
    assert any(len(name) == 3 for name in short)
    assert all(len(name) == 1 for name in onnx_sampler.sample(100, seed=0, max_len=1))


def test_prefix_is_respected(sampler) -> None:
    names = sampler.sample(500, seed=1, prefix="ka")
    assert all(name.startswith("ka") for name in names)
    assert len(set(names)) > 50


def test_top_k_1_is_the_greedy_name(sampler) -> None:
    context, greedy = np.zeros((1, sampler.block_size), dtype=np.int64), []
    while len(greedy) < sampler.info.max_len:
        logits = sampler.logits(context)[0]
        if not greedy:
            logits[BOUNDARY] = -np.inf  # a name is never empty
        ix = int(np.argmax(logits))
        if ix == BOUNDARY:
            break
        greedy.append(ix)
        context = np.concatenate([context[:, 1:], [[ix]]], axis=1)
    expected = sampler.vocab.decode(greedy)
    assert sampler.sample(50, seed=11, top_k=1) == [expected] * 50


class CountingSampler(Sampler):
    """Another sampler's logits, counting forward calls; optionally pushes row 0 of the first call to 'z'."""

    def __init__(self, base: Sampler, flip_first_row: bool = False) -> None:
        self.base, self.info, self.flip, self.calls = base, base.info, flip_first_row, 0
        self.forward = WindowForward(self.logits, self.info)

    def logits(self, context: np.ndarray) -> np.ndarray:
        out = self.base.logits(context).copy()
        if self.flip and self.calls == 0:
            out[0, self.vocab.index["z"]] = out[0].max() + 50
        self.calls += 1
        return out


def test_sampling_is_batched(sampler) -> None:
    counting = CountingSampler(sampler)
    names = counting.sample(1000, seed=0)
    longest = max(len(name) for name in names)
    assert longest <= counting.calls <= min(longest + 1, sampler.info.max_len)  # one call per position, not per name


def test_one_flipped_draw_changes_one_name(sampler) -> None:
    """One uniform per original row: a different pick in row 0 must not shift the other rows' draws."""
    expected = sampler.sample(1000, seed=8)
    flipped = CountingSampler(sampler, flip_first_row=True).sample(1000, seed=8)
    assert flipped[0].startswith("z") and not expected[0].startswith("z")
    assert flipped[1:] == expected[1:]


def test_tiny_temperature_is_greedy(sampler) -> None:
    names = sampler.sample(20, seed=0, temperature=1e-300)
    assert all(names), f"temperature=1e-300 gave empty names {names[:3]}"
    assert names == sampler.sample(20, seed=0, top_k=1)


def test_gen_cli_huge_max_len_is_one_line(mlp_onnx) -> None:
    result = run("mm-gen", mlp_onnx, "--n", 3, "--seed", 0, "--max-len", 10**12)
    assert_usage_error(result)
    assert "max_len" in result.stderr


def test_eval_cli_warns_about_other_data(mlp_onnx, tmp_path) -> None:
    data = tmp_path / "other.txt"
    data.write_text("emma\nolivia\nava\nisabella\nsophia\n", encoding="utf-8")
    result = run("mm-eval", mlp_onnx, "--data", data, "--split", "train")
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("warning:") and "sha256" in result.stderr
    assert 1.0 < float(result.stdout) < 3.3


@pytest.mark.parametrize(
    ("command", "error"),
    [
        (("mm-eval", "--split", "train"), "vocabulary"),  # a character the model does not know
        (("mm-gen", "--stats", "--match", "q+", "--ends-with", "a"), "no name satisfies"),  # checked with the model
    ],
    ids=["mm-eval", "mm-gen"],
)
def test_a_warning_never_comes_before_an_error_line(mlp_onnx, tmp_path, command, error) -> None:
    """Data the model was not trained on (a warning), then an error: the one error line alone."""
    data = tmp_path / "other.txt"
    data.write_text("emma\nolivia\nzo\u00eb\n", encoding="utf-8")
    result = run(command[0], mlp_onnx, *command[1:], "--data", data)
    assert_usage_error(result)
    assert error in result.stderr


def test_gen_cli_prints_the_sampler_names(mlp_onnx, sampler) -> None:
    result = run("mm-gen", mlp_onnx, "--n", 20, "--seed", 5, "--temperature", 0.8)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == sampler.sample(20, seed=5, temperature=0.8)
    assert "." not in result.stdout


def test_gen_cli_json(mlp_onnx, sampler) -> None:
    result = run("mm-gen", mlp_onnx, "--n", 15, "--seed", 2, "--top-k", 5, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == sampler.sample(15, seed=2, top_k=5)


def test_gen_cli_novel_vs_drops_known_names(mlp_onnx, names_path, tmp_path) -> None:
    plain = run("mm-gen", mlp_onnx, "--n", 40, "--seed", 9).stdout.splitlines()
    known_path = tmp_path / "known.txt"
    known_path.write_text("\n".join(plain) + "\n", encoding="utf-8")
    novel = run("mm-gen", mlp_onnx, "--n", 40, "--seed", 9, "--novel-vs", known_path).stdout.splitlines()
    assert len(novel) == 40 and not set(novel) & set(plain)
    novel = run("mm-gen", mlp_onnx, "--n", 40, "--seed", 9, "--novel-vs", names_path).stdout.splitlines()
    assert len(novel) == 40 and not set(novel) & set(read_lines(names_path))


def _python(code: str, *args: object, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env)


def test_gen_runs_where_torch_cannot_be_imported(mlp_onnx) -> None:
    code = (
        "import sys\n"
        "sys.modules['torch'] = None  # `import torch` now raises ImportError\n"
        "sys.argv = ['mm-gen', *sys.argv[1:]]\n"
        "from makemore.runtime.cli import gen_main\n"
        "gen_main()\n"
    )
    result = _python(code, mlp_onnx, "--n", 20, "--seed", 0)
    assert result.returncode == 0, result.stderr
    names = result.stdout.splitlines()
    assert len(names) == 20 and all(names)


def test_runtime_and_gen_never_import_torch(mlp_onnx) -> None:
    code = (
        "import sys\n"
        "import makemore.runtime\n"
        "from makemore.runtime import OnnxSampler\n"
        "sys.argv = ['mm-gen', *sys.argv[1:]]\n"
        "from makemore.runtime.cli import gen_main\n"
        "try:\n"
        "    gen_main()\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx')))\n"
    )
    result = _python(code, mlp_onnx, "--n", 5, "--seed", 0)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 6
    assert lines[-1] == "[]"


def _clean_env(tmp_path: Path) -> tuple[dict, Path, Path]:
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    # onnxruntime also stays quiet when CI is set: drop it, so these tests mean the same in CI
    env = {k: v for k, v in os.environ.items() if k not in ("ORT_DISABLE_TELEMETRY", "XDG_CACHE_HOME", "CI")}
    env.update(HOME=str(home), TMPDIR=str(tmp))
    return env, home, tmp


def test_plain_onnxruntime_import_writes_files(tmp_path) -> None:
    """Control for the test below: without our runtime, importing onnxruntime leaves device-id files."""
    env, home, tmp = _clean_env(tmp_path)
    assert _python("import onnxruntime", env=env).returncode == 0
    assert list(home.rglob("*")) or list(tmp.rglob("*"))


def test_gen_leaves_home_and_tmpdir_empty(mlp_onnx, tmp_path) -> None:
    env, home, tmp = _clean_env(tmp_path)
    result = run("mm-gen", mlp_onnx, "--n", 5, env=env)
    assert result.returncode == 0, result.stderr
    assert list(home.rglob("*")) == [] and list(tmp.rglob("*")) == []


# ----- bad input -----------------------------------------------------------------------------------


def _bad_model(case: str, source: Path, folder: Path) -> Path:
    path = folder / "model.onnx"
    if case == "not-onnx":
        path.write_text("emma\nolivia\n", encoding="utf-8")
    elif case == "truncated":
        data = source.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "no-metadata":
        rewrite_metadata(source, path, dict.clear)
    elif case == "other-format-version":
        rewrite_metadata(source, path, lambda props: props.update({"makemore.format_version": "2"}))
    elif case == "foreign-onnx":
        node = onnx.helper.make_node("Identity", ["x"], ["y"])
        graph = onnx.helper.make_graph(
            [node],
            "identity",
            [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
            [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
        )
        onnx.save(onnx.helper.make_model(graph), str(path))
    return path  # "missing": never created


@pytest.mark.parametrize(
    "case", ["missing", "not-onnx", "truncated", "no-metadata", "other-format-version", "foreign-onnx"]
)
def test_gen_refuses_bad_model_files(mlp_onnx, tmp_path, case) -> None:
    path = _bad_model(case, mlp_onnx, tmp_path)
    before = sorted(tmp_path.iterdir())
    assert_usage_error(run("mm-gen", path, "--n", 3, cwd=tmp_path))
    assert sorted(tmp_path.iterdir()) == before


@pytest.mark.parametrize(
    ("where", "said"),
    [("folder", "model path is a directory, not a file"), ("/dev/null", "model path is not a regular file")],
)
def test_a_model_path_that_is_no_file_says_what_it_is(tmp_path, where, said) -> None:
    path = tmp_path if where == "folder" else Path(where)
    out = tmp_path / "e.png"
    for args in (("mm-gen", path, "--n", 3), ("mm-eval", path), ("mm-plot", "embeddings", path, "--out", out)):
        result = run(*args)
        assert_usage_error(result)
        assert f"{said}: {path}" in result.stderr and not out.exists()


@pytest.mark.parametrize("flag", ["--exclude", "--novel-vs"])
@pytest.mark.parametrize(
    ("where", "said"),
    [
        ("folder", "path is a directory, not a file"),
        ("/dev/null", "path is a device, not a file"),
        ("missing", "file not found"),
        ("latin-1", "file is not UTF-8 text"),
    ],
)
def test_a_names_file_that_cannot_be_read_is_one_line_naming_its_flag(mlp_onnx, tmp_path, flag, where, said) -> None:
    path = {"folder": tmp_path, "/dev/null": Path("/dev/null"), "missing": tmp_path / "none.txt"}.get(where)
    if path is None:
        path = tmp_path / "latin-1.txt"
        path.write_bytes("zoë\n".encode("latin-1"))
    result = run("mm-gen", mlp_onnx, flag, path, "--n", 3)
    assert_usage_error(result)
    assert f"error: {flag} {said}: {path}" in result.stderr and not result.stdout


@pytest.mark.parametrize("case", ["missing", "no-metadata"])
def test_eval_refuses_bad_model_files(mlp_onnx, tmp_path, case) -> None:
    assert_usage_error(run("mm-eval", _bad_model(case, mlp_onnx, tmp_path)))


@pytest.mark.parametrize(
    "args",
    [
        ("--n", 0),
        ("--n", -3),
        ("--temperature", -1),
        ("--temperature", "nan"),
        ("--temperature", "inf"),
        ("--seed", -1),
        ("--seed", 2**64),
        ("--top-p", "nan"),
        ("--max-len", 10**12),
        ("--top-k", 0),
        ("--top-p", 0),
        ("--top-p", 1.5),
        ("--prefix", "k!"),
        ("--prefix", "Ka"),
        ("--max-len", 0),
    ],
    ids=lambda a: " ".join(map(str, a)),
)
def test_gen_refuses_bad_options(mlp_onnx, tmp_path, args) -> None:
    assert_usage_error(run("mm-gen", mlp_onnx, *args, cwd=tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_eval_refuses_unknown_split(mlp_onnx) -> None:
    assert_usage_error(run("mm-eval", mlp_onnx, "--split", "dev"))


@pytest.mark.parametrize("args", [("--n", 0), ("--top-p", 1.5)], ids=lambda a: " ".join(map(str, a)))
def test_gen_json_writes_nothing_on_bad_options(mlp_onnx, args) -> None:
    result = run("mm-gen", mlp_onnx, "--json", *args)
    assert_usage_error(result)  # nothing on stdout, not even the opening '['
