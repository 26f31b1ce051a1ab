"""Issue 19, classes 9 and 10: outputs and folders (mm-web's site folder and onnxruntime-web's files, shards that
concatenate, a killed writer's temporary file), noise and encodings (huge sweep grids, tiny temperatures, an
ASCII stdout, undecodable arguments, torchrun's variables and what a failing torchrun run prints)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from clirun import BIN
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inprocess import is_usage_error, run_main
from makemore.data import atomic_write
from makemore.runtime.cli import eval_main, gen_main
from makemore.runtime.web.cli import main as web_main
from makemore.runtime.web.folder import MARKER, replace_folder
from makemore.runtime.web.site import MODEL_NAME, ORT_FILES, ORT_MAX_BYTES, PAGE_FILES, WASM_MAGIC
from webfiles import fake_ort_dist, snapshot

SITE_NAMES = (*PAGE_FILES, *ORT_FILES, MODEL_NAME, MARKER)
ACCENTED = ["josé", "zoë", "anna", "noé", "léa", "çava", "emma", "olivia", "mia", "lucas", "éloïse", "bob"]
UNDECODABLE = "\udcff"  # how Python hands over an argument's byte 0xff (surrogateescape)


@pytest.fixture(scope="module")
def accented(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(data, checkpoint, onnx) of a tiny MLP trained on names with accents (a few seconds)."""
    from makemore.export.onnx_export import export_checkpoint
    from makemore.train.run import TrainRequest, run_training

    folder = tmp_path_factory.mktemp("accented")
    data, pt, onnx_path = folder / "names.txt", folder / "model.pt", folder / "model.onnx"
    data.write_text("\n".join(ACCENTED * 20) + "\n", encoding="utf-8")
    overrides = {"steps": 60, "n_hidden": 16, "batch_size": 32}
    run_training(TrainRequest(kind="mlp", data=data, out=pt, samples=0, quiet=True, overrides=overrides))
    export_checkpoint(pt, onnx_path)
    return data, pt, onnx_path


# -- 9. Outputs and folders ---------------------------------------------------------------------------------------


def odd_entry(path: Path, kind: str, outside: Path) -> None:
    """Put at `path` something that has a site file's name but is not a regular file."""
    if kind == "folder":
        path.mkdir()
        (path / "mine.txt").write_text("a user's file")
    elif kind == "link":
        path.symlink_to(outside)
    else:
        os.mkfifo(path)


@pytest.mark.parametrize("kind", ["folder", "link", "fifo"])
@pytest.mark.parametrize("name", SITE_NAMES)
def test_a_site_name_that_is_not_a_regular_file_is_refused_and_nothing_is_touched(tmp_path, name, kind) -> None:
    (tmp_path / "model.onnx").write_bytes(b"never opened: the folder is refused first")
    fake_ort_dist(tmp_path / "dist")
    (tmp_path / "outside.txt").write_text("the user's")
    site = tmp_path / "site"
    site.mkdir()
    for other in SITE_NAMES:
        if other != name:
            (site / other).write_text("{}" if other == MARKER else "old site")
    odd_entry(site / name, kind, tmp_path / "outside.txt")
    before = snapshot(tmp_path) if kind != "fifo" else None
    outcome = run_main(web_main, tmp_path / "model.onnx", "-o", site, "--ort-dist", tmp_path / "dist")
    assert is_usage_error(outcome), outcome
    assert repr(name) in outcome.stderr or f"no {MARKER}" in outcome.stderr, outcome
    assert sorted(os.listdir(tmp_path)) == ["dist", "model.onnx", "outside.txt", "site"]  # no temporary folder
    assert sorted(os.listdir(site)) == sorted(SITE_NAMES)
    if before is not None:
        assert snapshot(tmp_path) == before


def broken_ort_file(path: Path, kind: str, tmp_path: Path) -> None:
    """Replace one of onnxruntime-web's files of a dist folder by something that is not it."""
    path.unlink()
    secret = tmp_path / "secret.txt"
    secret.write_text("any readable file of the machine")
    if kind == "link-to-a-file":
        path.symlink_to(secret)
    elif kind == "link-to-a-device":
        path.symlink_to("/dev/zero")
    elif kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00" * 10)  # neither WebAssembly nor UTF-8 text
    elif kind == "huge":
        with open(path, "wb") as handle:  # a sparse file just above the limit: no disk used
            handle.truncate(ORT_MAX_BYTES[path.suffix] + 1)


@pytest.mark.parametrize("kind", ["link-to-a-file", "link-to-a-device", "folder", "fifo", "empty", "garbage", "huge"])
@pytest.mark.parametrize("name", ORT_FILES)
def test_an_ort_dist_that_is_not_onnxruntime_web_is_refused(tmp_path, name, kind) -> None:
    (tmp_path / "model.onnx").write_bytes(b"never opened: the dist folder is refused first")
    dist = fake_ort_dist(tmp_path / "dist")
    broken_ort_file(dist / name, kind, tmp_path)
    outcome = run_main(web_main, tmp_path / "model.onnx", "-o", tmp_path / "site", "--ort-dist", dist)
    assert is_usage_error(outcome) and name in outcome.stderr, outcome
    assert not (tmp_path / "site").exists()
    assert sorted(os.listdir(tmp_path)) == ["dist", "model.onnx", "secret.txt"]


def test_the_ort_files_checks_accept_what_onnxruntime_web_ships(tmp_path) -> None:
    from makemore.runtime.web.site import check_ort_file

    dist = fake_ort_dist(tmp_path / "dist")
    assert all(check_ort_file(dist / name) is None for name in ORT_FILES)
    (dist / "ort-wasm-simd-threaded.wasm").write_bytes(WASM_MAGIC[:4] + b"\x02\0\0\0")  # a WebAssembly version 2
    assert "WebAssembly" in check_ort_file(dist / "ort-wasm-simd-threaded.wasm")
    (dist / "ort.wasm.min.js").write_bytes(b"/*! ONNX Runtime Web */ export const x = '\xc3\xa9';\n")
    assert check_ort_file(dist / "ort.wasm.min.js") is None


def gen(*args: object) -> str:
    """mm-gen's stdout, asserting it succeeded quietly."""
    outcome = run_main(gen_main, *args)
    assert outcome.status == 0 and outcome.stderr == "", outcome
    return outcome.stdout


def test_jsonl_shards_concatenate_into_one_runs_output_byte_for_byte(accented) -> None:
    model = accented[2]
    n = 9_000  # three chunks of 4,096 names
    whole = gen(model, "--n", n, "--seed", 5, "--jsonl")
    assert [json.loads(line) for line in whole.splitlines()] == gen(model, "--n", n, "--seed", 5).splitlines()
    assert whole.endswith("\n") and len(whole.splitlines()) == n
    for k in (1, 2, 3, 5):
        shards = [gen(model, "--n", n, "--seed", 5, "--jsonl", "--shard", f"{i}/{k}") for i in range(1, k + 1)]
        assert "".join(shards) == whole, k
    assert json.loads(gen(model, "--n", 30, "--seed", 5, "--json")) == json.loads(
        f"[{','.join(whole.splitlines()[:30])}]"
    )


@pytest.mark.parametrize("extra", [("--shard", "1/2"), ("--shard", "1/1"), ("--jsonl",)])
def test_json_with_shard_or_jsonl_is_refused(accented, extra) -> None:
    outcome = run_main(gen_main, accented[2], "--n", 5, "--json", *extra)
    assert is_usage_error(outcome) and "--json" in outcome.stderr, outcome


KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from makemore.data import atomic_write
from makemore.runtime.web.folder import replace_folder

def die(tmp):
    Path(tmp, "part").write_bytes(b"x") if Path(tmp).is_dir() else Path(tmp).write_bytes(b"x" * 100_000)
    os.kill(os.getpid(), signal.SIGKILL)

target = Path(sys.argv[1])
atomic_write(target, die) if sys.argv[2] == "file" else replace_folder(target, die)
"""


@pytest.mark.parametrize("what", ["file", "folder"])
def test_a_killed_writers_temporary_file_is_removed_by_the_next_write(tmp_path, what) -> None:
    target = tmp_path / ("model.pt" if what == "file" else "site")
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(target), what], capture_output=True)
    assert killed.returncode == -signal.SIGKILL
    left = [name for name in os.listdir(tmp_path) if name.startswith(f".{target.name}.")]
    assert len(left) == 1 and left[0].endswith(".tmp") and not target.exists(), left
    live = tmp_path / f".{target.name}.{os.getpid()}.abcdefgh.tmp"  # a writer that still runs: its file stays
    live.write_bytes(b"in progress")
    other = tmp_path / f".{target.name}.notapid.tmp"  # not a writer's name: never ours to delete
    other.write_bytes(b"the user's")
    if what == "file":
        atomic_write(target, lambda tmp: Path(tmp).write_bytes(b"new"))
        assert target.read_bytes() == b"new"
    else:
        replace_folder(target, lambda tmp: (tmp / "index.html").write_text("new"), frozenset({"index.html", "part"}))
        assert os.listdir(target) == ["index.html"]
    assert sorted(os.listdir(tmp_path)) == sorted([target.name, live.name, other.name])


def test_an_old_site_moved_aside_by_a_killed_build_is_put_back(tmp_path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()  # its pid no longer runs
    aside = tmp_path / f".site.{dead.pid}.abcdefgh.old"  # killed between moving the old site aside and the new in
    aside.mkdir()
    (aside / "index.html").write_text("old")
    (aside / MARKER).write_text("{}")

    def failing(tmp: Path) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(Exception, match="No space left"):
        replace_folder(tmp_path / "site", failing, frozenset({"index.html"}))
    assert os.listdir(tmp_path) == ["site"] and (tmp_path / "site" / "index.html").read_text() == "old"


@pytest.mark.parametrize("inside", ["no marker", "a user's file", "a folder", "a link"])
def test_a_users_folder_named_like_an_old_site_is_never_put_in_place_nor_deleted(tmp_path, inside) -> None:
    """Only a site mm-web wrote is put back from `.NAME.PID.XXXXXXXX.old` (a killed build's): a user's folder of
    that name (a thesis, a .git) was renamed into the site's place and then deleted as the old site."""
    aside = tmp_path / f".site.{DEAD_PID}.abcdefgh.old"
    aside.mkdir()
    (aside / "index.html").write_text("mine")
    if inside != "no marker":
        (aside / MARKER).write_text("{}")
    if inside == "a user's file":
        (aside / "thesis.tex").write_text("precious")
    elif inside == "a folder":
        (aside / "app.js").mkdir()
        (aside / "app.js" / "HEAD").write_text("precious")
    elif inside == "a link":
        (tmp_path / "elsewhere").write_text("precious")
        (aside / "app.js").symlink_to(tmp_path / "elsewhere")
    before = snapshot(aside)
    replace_folder(
        tmp_path / "site", lambda tmp: (tmp / "index.html").write_text("new"), frozenset({"index.html", "app.js"})
    )
    assert (tmp_path / "site" / "index.html").read_text() == "new"  # built, not the folder put in its place
    assert snapshot(aside) == before and (aside / "index.html").read_text() == "mine"  # (an .old without the marker
    # is no killed build's: its .old is a site moved aside or the empty folder made for one)


# -- 10. Noise and encodings --------------------------------------------------------------------------------------


def test_a_huge_sweep_grid_is_refused_before_it_is_built() -> None:
    from makemore.train.sweep import MAX_CONFIGS, grid, iter_sweep
    from makemore.train.sweep import main as sweep_main

    sizes = ",".join(str(i) for i in range(1, 1001))
    start = time.perf_counter()
    outcome = run_main(sweep_main, "--block-size", sizes, "--n-embd", sizes, "--n-hidden", sizes)
    assert is_usage_error(outcome) and "1,000,000,000 configs" in outcome.stderr, outcome
    assert time.perf_counter() - start < 5
    huge = grid(list(range(1, 1001)), list(range(1, 1001)), list(range(1, 1001)))  # lazy: nothing built
    assert next(huge) == {"block_size": 1, "n_embd": 1, "n_hidden": 1}
    with pytest.raises(Exception, match=f"more than {MAX_CONFIGS:,} configs"):
        next(iter_sweep(huge, steps=1))


@pytest.mark.parametrize("temperature", ["5e-324", "1e-320", "2.2e-308", "1e-300", "1e-45", "1e-12"])
def test_a_tiny_temperature_is_greedy_and_warns_nothing(accented, temperature) -> None:
    model = accented[2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any numpy warning becomes a traceback, which run_main reports
        tiny = gen(model, "--n", 200, "--seed", 3, "--temperature", temperature)
        greedy = gen(model, "--n", 200, "--seed", 3, "--temperature", 0)
    assert tiny == greedy


def ascii_run(script: str, *args: object, encoding: str = "ascii") -> subprocess.CompletedProcess:
    """`script args` with an ASCII-only (or `encoding`) stdout and stderr, as bytes."""
    env = {**os.environ, "PYTHONIOENCODING": encoding}
    return subprocess.run([str(BIN / script), *map(str, args)], capture_output=True, env=env, timeout=120)


def test_an_ascii_stdout_gets_backslash_escapes_never_a_traceback(accented, tmp_path) -> None:
    data, pt, model = accented
    for args in (("--n", 50, "--seed", 1), ("--n", 50, "--seed", 1, "--json"), ("--n", 50, "--seed", 1, "--jsonl")):
        utf8 = ascii_run("mm-gen", model, *args, encoding="utf-8").stdout.decode("utf-8")
        plain = ascii_run("mm-gen", model, *args)
        assert plain.returncode == 0 and plain.stderr == b"", plain.stderr
        assert plain.stdout == utf8.encode("ascii", "backslashreplace")
        assert len(args) > 4 or any(ord(ch) > 127 for ch in utf8)  # one name a line: the test saw non-ASCII names
    scored = ascii_run("mm-eval", model, "--score", "josé", "léa")
    assert scored.returncode == 0 and scored.stdout.decode("ascii").split("\t")[-1] == "l\\xe9a\n", scored
    out = tmp_path / "modèle.onnx"
    exported = ascii_run("mm-export", pt, out)
    assert exported.returncode == 0 and b"mod\\xe8le.onnx" in exported.stdout + exported.stderr, exported
    plotted = ascii_run("mm-plot", "loss", pt, "-o", tmp_path / "courbe-é.png")
    assert plotted.returncode == 0 and b"\\xe9.png" in plotted.stdout + plotted.stderr, plotted
    trained = ascii_run("mm-train", "mlp", "--data", data, "--out", tmp_path / "t.pt", "--steps", 5, "--threads", 1)
    assert trained.returncode == 0 and b"samples: " in trained.stderr + trained.stdout, trained.stderr[-2000:]
    for result in (plain, scored, exported, plotted, trained):
        assert b"Traceback" not in result.stderr and b"UnicodeEncodeError" not in result.stderr


def cli_mains() -> dict[str, object]:
    from makemore.export.cli import main as export_main
    from makemore.runtime.serve.cli import main as serve_main
    from makemore.train.cli import main as train_main
    from makemore.train.plot_cli import main as plot_main
    from makemore.train.sweep import main as sweep_main

    return {
        "mm-gen": gen_main,
        "mm-eval": eval_main,
        "mm-web": web_main,
        "mm-serve": serve_main,
        "mm-train": train_main,
        "mm-export": export_main,
        "mm-plot": plot_main,
        "mm-sweep": sweep_main,
    }


BAD = UNDECODABLE


def undecodable_args(data: Path, model: Path, out: Path) -> list[tuple[str, tuple[object, ...]]]:
    """Commands with an argument holding a byte that is not UTF-8, where it names nothing that exists."""
    return [
        ("mm-gen", (BAD,)),
        ("mm-gen", (model, "--prefix", BAD)),
        ("mm-gen", (model, "--shard", BAD)),
        ("mm-gen", (model, "--n", BAD)),
        ("mm-gen", (model, "--stats", "--data", f"{BAD}.txt")),
        ("mm-gen", (model, "--novel-vs", f"{BAD}.txt")),
        ("mm-gen", (model, f"--{BAD}")),
        ("mm-eval", (model, "--score", BAD)),
        ("mm-eval", (model, "--score", f"ann{BAD}")),
        ("mm-eval", (model, "--data", f"{BAD}.txt")),
        ("mm-eval", (model, "--data", data, "--split", BAD)),
        ("mm-eval", (model, BAD)),
        ("mm-web", (BAD, "-o", out / "site")),
        ("mm-web", (model, "-o", out / "site", "--ort-dist", BAD)),
        ("mm-serve", (model, "--host", BAD)),
        ("mm-serve", (BAD,)),
        ("mm-train", (BAD,)),
        ("mm-train", ("mlp", "--data", BAD, "--out", out / "x.pt")),
        ("mm-train", ("mlp", "--device", BAD, "--out", out / "x.pt")),
        ("mm-export", (BAD, out / "x.onnx")),
        ("mm-plot", (BAD,)),
        ("mm-plot", ("loss", BAD, "-o", out / "x.png")),
        ("mm-sweep", ("--block-size", BAD)),
    ]


def test_an_undecodable_argument_is_one_line(accented, tmp_path) -> None:
    data, _, model = accented
    mains = cli_mains()
    out = tmp_path / "out"
    out.mkdir()
    for script, args in undecodable_args(data, model, out):
        outcome = run_main(mains[script], *args)
        assert is_usage_error(outcome), (script, args, outcome)
    assert os.listdir(out) == []


def test_an_undecodable_file_name_that_exists_works(accented, tmp_path) -> None:
    data, pt, model = accented
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/\xffnames.txt"))
    odd.write_bytes(data.read_bytes())
    outcome = run_main(eval_main, model, "--data", odd)
    assert outcome.status == 0 and float(outcome.stdout) > 0, outcome
    exported = run_main(cli_mains()["mm-export"], pt, odd.with_suffix(".onnx"))
    assert exported.status == 0 and odd.with_suffix(".onnx").is_file(), exported
    raw = subprocess.run([bytes(BIN / "mm-eval"), bytes(model), b"--score", b"ann\xff"], capture_output=True)
    assert raw.returncode == 2 and raw.stderr.count(b"\n") == 1 and raw.stderr.startswith(b"error: "), raw.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


MALFORMED = {
    "RANK": ["x", "-1", "²", "1" * 40, "1", " 0"],
    "WORLD_SIZE": ["0", "abc", "1.0", "٣"],
    "LOCAL_RANK": ["x", "5", "-0"],
    "LOCAL_WORLD_SIZE": ["0", "y"],
    "MASTER_PORT": ["abc", "99999", "-1", "²", "1e3", "8" * 30],
    "MASTER_ADDR": ["bad host", "nonexistent.invalid", "$$$", UNDECODABLE, "a" * 300],
}


@pytest.mark.parametrize("variable", MALFORMED)
def test_malformed_torchrun_variables_are_one_line_before_the_ranks_meet(tmp_path, monkeypatch, variable) -> None:
    from makemore.train.cli import main as train_main

    base = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1"}
    base |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
    for value in MALFORMED[variable]:
        for name, text in {**base, variable: value}.items():
            monkeypatch.setenv(name, text)
        outcome = run_main(train_main, "mlp", "--steps", 5, "--threads", 1, "--out", tmp_path / "x.pt")
        assert is_usage_error(outcome) and "torchrun" in outcome.stderr, (variable, value, outcome)
        assert os.listdir(tmp_path) == []


def test_a_rendezvous_that_fails_is_one_line(tmp_path, monkeypatch) -> None:
    from makemore.train.cli import main as train_main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        env = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1"}
        env |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(busy.getsockname()[1])}
        for name, text in env.items():
            monkeypatch.setenv(name, text)
        outcome = run_main(train_main, "mlp", "--steps", 5, "--threads", 1, "--out", tmp_path / "x.pt")
    assert is_usage_error(outcome) and "could not meet" in outcome.stderr, outcome
    assert os.listdir(tmp_path) == []


def test_a_bad_flag_under_torchrun_is_one_error_line_then_only_torchruns_report(tmp_path) -> None:
    from test_distributed import torchrun

    result = torchrun(tmp_path, "mlp", "--no-such-flag", timeout=90)
    assert result.returncode != 0
    assert result.stderr.count("error: ") == 1 and "No such option: --no-such-flag" in result.stderr, result.stderr
    frames = [line for line in result.stderr.splitlines() if line.strip().startswith('File "')]
    assert all("/torch/" in line or "torchrun" in line for line in frames), frames  # no frame of ours
    assert list(tmp_path.iterdir()) == []


DEAD_PID = 999_999_999  # above any pid_max: no process has it


@pytest.mark.parametrize("writer", ["file", "folder"])
def test_a_users_folder_named_like_a_stale_temporary_is_left_alone(tmp_path, writer) -> None:
    """Stale-temporary cleanup deletes only what a writer makes: a regular file, or a folder of site files (for
    mm-web); a user's folder of that name, with anything else in it, stays."""
    target = tmp_path / ("out.bin" if writer == "file" else "site")
    users = tmp_path / f".{target.name}.{DEAD_PID}.abcdefgh.tmp"
    users.mkdir()
    (users / "precious.txt").write_text("keep")
    stale = tmp_path / f".{target.name}.{DEAD_PID}.zyxwvuts.tmp"
    if writer == "file":
        stale.write_text("left by a killed writer")
        atomic_write(target, lambda tmp: Path(tmp).write_text("new"))
    else:
        stale.mkdir()
        (stale / "index.html").write_text("half a site")
        replace_folder(target, lambda tmp: (tmp / "index.html").write_text("new"), frozenset({"index.html"}))
    assert (users / "precious.txt").read_text() == "keep"
    assert not stale.exists()


@pytest.mark.parametrize("length", [120, 121, 200, 255])
def test_an_output_name_of_any_allowed_length_is_written(tmp_path, length) -> None:
    """The temporary beside an output carries a hash of a long name, so every name the file system allows works."""
    target = tmp_path / ("n" * length)
    atomic_write(target, lambda tmp: Path(tmp).write_text("done"))
    atomic_write(target, lambda tmp: Path(tmp).write_text("again"))
    assert target.read_text() == "again"
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


@pytest.mark.parametrize("command", ["mm-gen", "mm-eval"])
def test_a_model_at_a_path_that_is_not_utf8_is_read(model_files, tmp_path, command) -> None:
    """onnxruntime takes UTF-8 paths only: a model file whose name holds an undecodable byte is read and given as
    bytes, so it samples and scores as at any other path."""
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/\xff.onnx"))
    odd.write_bytes(model_files["bigram"][1].read_bytes())
    args = ("--n", 3, "--seed", 1) if command == "mm-gen" else ("--score", "emma")
    outcome = run_main(gen_main if command == "mm-gen" else eval_main, odd, *args)
    plain = run_main(gen_main if command == "mm-gen" else eval_main, model_files["bigram"][1], *args)
    assert outcome.status == 0 and outcome.stderr == "", outcome
    assert outcome.stdout == plain.stdout


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(message=st.text(st.characters(codec="utf-8"), max_size=40))
def test_an_error_line_is_one_line_a_terminal_only_prints(message, capsys) -> None:
    """Whatever text an error carries (a file's, a library's: torch's unpickling error holds ESC [ 1 m), its line is
    one line of printable characters and spaces, the others escaped; printable text stays as it was."""
    from makemore.data.cli import fail

    with pytest.raises(SystemExit) as exit_:
        fail(message)
    line = capsys.readouterr().err
    assert exit_.value.code == 2 and line.startswith("error: ") and line.endswith("\n")
    body = line[len("error: ") : -1]
    assert all(ch.isprintable() or ch == " " for ch in body)
    assert body == message or not message.isprintable()
