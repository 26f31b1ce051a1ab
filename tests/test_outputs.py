"""Outputs, as a class: no command writes over something that is not a regular file, or over its input;
a full or closed stdout is one line and a non-zero exit; a reader that leaves early is no error message."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from clirun import BIN, assert_usage_error, run
from makemore.data import OutputError, UserError, atomic_write, check_output_path

BAD_OUTPUTS = ["folder", "fifo", "link-to-device", "link-to-folder", "missing-folder", "unwritable-folder"]
UNWRITABLE = Path("/sys")  # sysfs: no file can be made in it, by root either (root ignores a folder's mode bits)


def bad_output(kind: str, tmp_path: Path, name: str = "out.x") -> Path:
    """A path no command may write a file at (its target is left as it was)."""
    if kind == "folder":
        (tmp_path / name).mkdir()
    elif kind == "fifo":
        os.mkfifo(tmp_path / name)
    elif kind == "link-to-device":
        (tmp_path / name).symlink_to("/dev/null")
    elif kind == "link-to-folder":
        (tmp_path / "sub").mkdir()
        (tmp_path / name).symlink_to(tmp_path / "sub")
    elif kind == "unwritable-folder":
        return UNWRITABLE / name
    else:
        return tmp_path / "nowhere" / name
    return tmp_path / name


def snapshot(folder: Path) -> dict[str, tuple[bool, bool]]:
    """What is in `folder`: name -> (is a link, is a regular file) — a replaced device or fifo would show."""
    return {p.name: (p.is_symlink(), p.is_file()) for p in folder.rglob("*")}


@pytest.mark.parametrize("kind", BAD_OUTPUTS)
def test_check_output_path_refuses(tmp_path, kind) -> None:
    with pytest.raises(OutputError):
        check_output_path(bad_output(kind, tmp_path))


def test_atomic_write_refuses_the_input_and_follows_a_link_to_a_file(tmp_path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("keep")
    for path in (source, tmp_path / "." / "in.txt"):
        with pytest.raises(OutputError, match="input file itself"):
            atomic_write(path, lambda tmp: Path(tmp).write_text("new"), inputs=(source,))
    link = tmp_path / "link.txt"
    link.symlink_to(source)
    with pytest.raises(OutputError, match="input file itself"):
        atomic_write(link, lambda tmp: Path(tmp).write_text("new"), inputs=(source,))
    assert source.read_text() == "keep"
    atomic_write(link, lambda tmp: Path(tmp).write_text("new"))  # no inputs: the link's file is replaced
    assert link.is_symlink() and source.read_text() == "new"


@pytest.mark.parametrize("kind", BAD_OUTPUTS)
def test_export_refuses_bad_outputs(model_files, tmp_path, kind) -> None:
    out = bad_output(kind, tmp_path)
    before = snapshot(tmp_path)
    assert_usage_error(run("mm-export", model_files["bigram"][0], out))
    assert snapshot(tmp_path) == before


def test_an_unwritable_folder_is_refused_before_training() -> None:
    """A folder where no file can be made is found before the run (it was found after a run of any length): a
    million steps of the mlp would take an hour here."""
    result = subprocess.run(
        [BIN / "mm-train", "mlp", "--steps", "1000000", "--out", UNWRITABLE / "model.pt", "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert_usage_error(result)
    assert result.stderr.startswith(f"error: cannot write {UNWRITABLE / 'model.pt'}: ")


@pytest.mark.parametrize("kind", BAD_OUTPUTS)
def test_train_refuses_bad_outputs(tmp_path, kind) -> None:
    out = bad_output(kind, tmp_path)
    before = snapshot(tmp_path)
    assert_usage_error(run("mm-train", "bigram", "--out", out, "--quiet"))
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("kind", BAD_OUTPUTS)
def test_plot_refuses_bad_outputs(tmp_path, kind) -> None:
    out = bad_output(kind, tmp_path, "out.png")
    before = snapshot(tmp_path)
    assert_usage_error(run("mm-plot", "bigram-counts", "-o", out))
    assert snapshot(tmp_path) == before


def test_no_command_overwrites_its_input(model_files, tmp_path, names_path) -> None:
    pt = tmp_path / "model.pt"
    pt.write_bytes(model_files["mlp"][0].read_bytes())
    data = tmp_path / "names.png"  # a data file whose name looks like an image
    data.write_bytes(names_path.read_bytes())
    onnx_copy = tmp_path / "model.onnx"
    onnx_copy.write_bytes(model_files["mlp"][1].read_bytes())
    before = {p: p.read_bytes() for p in (pt, data, onnx_copy)}
    assert_usage_error(run("mm-export", pt, pt))
    assert_usage_error(run("mm-train", "bigram", "--data", data, "--out", data, "--quiet"))
    assert_usage_error(run("mm-plot", "bigram-counts", "--data", data, "-o", data))
    assert all(p.read_bytes() == content for p, content in before.items())


@pytest.mark.parametrize("command", [("mm-gen", "--n", "5"), ("mm-eval", "--score", "emma")])
def test_full_stdout_is_one_line(model_files, command) -> None:
    script, *args = command
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [str(BIN / script), str(model_files["mlp"][1]), *args], stdout=full, stderr=subprocess.PIPE, text=True
        )
    assert result.returncode == 2 and result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, (
        result.stderr
    )


@pytest.mark.parametrize("command", [("mm-gen", "--n", "5"), ("mm-eval", "--score", "emma")])
def test_closed_stdout_is_one_line(model_files, command) -> None:
    script, *args = command
    result = subprocess.run(
        [str(BIN / script), str(model_files["mlp"][1]), *args],
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: os.close(1),
    )
    assert result.returncode == 2 and result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, (
        result.stderr
    )


def test_a_reader_that_leaves_early_is_quiet(model_files) -> None:
    gen = subprocess.Popen(
        [str(BIN / "mm-gen"), str(model_files["mlp"][1]), "--n", "1000000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert gen.stdout.readline()  # the first name arrives before the million are made
    gen.stdout.close()
    _, stderr = gen.communicate(timeout=60)
    assert gen.returncode != 0 and stderr == b""


@pytest.mark.parametrize("form", ["", "json", "jsonl"])
def test_a_request_failing_before_its_first_name_prints_nothing(form) -> None:
    """A model that fails mid-request (non-finite logits at a later position): no lone "[" of a JSON list."""
    import io

    from makemore.runtime.cli import write_names

    def failing(empty_chunks: int):
        yield from [[] for _ in range(empty_chunks)]
        raise UserError("the model gave non-finite logits")

    for empty_chunks in (0, 2):
        out = io.StringIO()
        with pytest.raises(UserError):
            write_names(out, failing(empty_chunks), form)
        assert out.getvalue() == ""
    for chunks, expected in (([], "[]\n"), ([[], ["ann"], ["bo", "cy"]], '["ann", "bo", "cy"]\n')):
        out = io.StringIO()
        write_names(out, iter(chunks), "json")
        assert out.getvalue() == expected
