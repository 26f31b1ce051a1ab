"""A hostile checkpoint (issue 19, classes 6 and 7): every field of the wrong type, missing, non-finite, or of the
wrong shape is refused in one line by mm-export, mm-train --resume and every mm-plot command that reads a model;
mm-plot refuses NaN, infinite and undrawable values in .onnx files too. Nothing is written on refusal.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from checkpoint_formats import as_format_1
from conftest import rewrite_metadata
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inprocess import Outcome, is_usage_error, run_main
from makemore.data import bundled_names_path
from makemore.export.cli import main as export_main
from makemore.train.checkpoint import CheckpointError, check_checkpoint, load_checkpoint
from makemore.train.cli import main as train_main
from makemore.train.plot_cli import main as plot_main
from makemore.train.plots import MAX_DRAWN, project_2d
from onnx import numpy_helper

TINY = ("--steps", 20, "--n-embd", 4, "--n-hidden", 16, "--batch-size", 32)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    """One tiny mlp trained once on 1,500 names: its checkpoint (loaded), the files, and its ONNX export."""
    folder = tmp_path_factory.mktemp("tiny")
    data = folder / "names.txt"
    data.write_text("".join(bundled_names_path().read_text().splitlines(keepends=True)[:1500]))
    pt, onnx_path = folder / "model.pt", folder / "model.onnx"
    trained = run_main(train_main, "mlp", "--data", data, *TINY, "--out", pt, "-q", "--samples", 0)
    assert trained.status == 0, trained.stderr
    exported = run_main(export_main, pt, onnx_path)
    assert exported.status == 0, exported.stderr
    return {"data": data, "pt": pt, "onnx": onnx_path, "checkpoint": torch.load(pt, weights_only=True)}


def export(tiny: dict, model: Path, out: Path) -> Outcome:
    return run_main(export_main, model, out / "model.onnx")


def resume(tiny: dict, model: Path, out: Path) -> Outcome:
    args = ("--data", tiny["data"], "--steps", 1, "--out", out / "resumed.pt", "-q", "--samples", 0)
    return run_main(train_main, "mlp", "--resume", model, *args)


def plot_loss(tiny: dict, model: Path, out: Path) -> Outcome:
    return run_main(plot_main, "loss", model, "--out", out / "loss.png")


def plot_embeddings(tiny: dict, model: Path, out: Path) -> Outcome:
    return run_main(plot_main, "embeddings", model, "--out", out / "embeddings.png")


COMMANDS = {"export": export, "resume": resume, "plot-loss": plot_loss, "plot-embeddings": plot_embeddings}


def weight(name: str, change: Callable[[torch.Tensor], object]) -> Callable[[dict], None]:
    """An edit replacing state_dict[name] by change(it)."""

    def edit(checkpoint: dict) -> None:
        checkpoint["state_dict"][name] = change(checkpoint["state_dict"][name])

    return edit


def poke(name: str, value: float) -> Callable[[dict], None]:
    """An edit setting the first element of state_dict[name] to `value`."""

    def change(tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.clone()
        tensor.view(-1)[0] = value
        return tensor

    return weight(name, change)


def setting(*path: object, value: object = None, delete: bool = False) -> Callable[[dict], None]:
    """An edit setting (or deleting) checkpoint[path[0]][path[1]]...; a callable value is applied to the old one."""

    def edit(checkpoint: dict) -> None:
        *parents, last = path
        target = checkpoint
        for key in parents:
            target = target[key]
        if delete:
            del target[last]
        else:
            target[last] = value(target[last]) if callable(value) else value

    return edit


def stride_zero(tensor: torch.Tensor) -> torch.Tensor:
    """A view of one stored element with the tensor's shape (every stride 0)."""
    return torch.zeros(1, dtype=tensor.dtype).as_strided(tensor.shape, (0,) * tensor.dim())


def huge_declared(checkpoint: dict) -> None:
    """A config declaring a hidden layer of 2**20 units, every tensor a stride-0 view of the shape it needs."""
    checkpoint["config"]["model"]["n_hidden"] = 2**20
    state, config, vocab_size = checkpoint["state_dict"], checkpoint["config"]["model"], len(checkpoint["vocab"]) + 1
    shapes = {
        "hidden.weight": (2**20, config["block_size"] * config["n_embd"]),
        "hidden.bias": (2**20,),
        "output.weight": (vocab_size, 2**20),
    }
    for name, shape in shapes.items():
        state[name] = torch.zeros(1).as_strided(shape, (0,) * len(shape))


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def shared(depth: int) -> list:
    """[x, x] of [x, x] ... `depth` deep: 2**depth values as JSON writes it, a few KB as a pickle (shared refs)."""
    value: list = [0.0]
    for _ in range(depth):
        value = [value, value]
    return value


HOSTILE: dict[str, Callable[[dict], None]] = {
    # non-finite values
    "config lr nan": setting("config", "train", "lr", value=math.nan),
    "config dropout inf": setting("config", "model", "dropout", value=math.inf),
    "config unknown key -inf": setting("config", "note", value=-math.inf),
    "config split_fractions nan": setting("config", "split_fractions", value=[math.nan, 0.5, 0.5]),
    "metrics val_loss nan": setting("metrics", "val_loss", value=math.nan),
    "metrics train_seconds inf": setting("metrics", "train_seconds", value=math.inf),
    "history train_loss nan": setting("metrics", "history", "train_loss", 0, value=math.nan),
    "history val_step inf": setting("metrics", "history", "val_step", -1, value=math.inf),
    "weights embedding nan": poke("embedding.weight", math.nan),
    "weights hidden bias inf": poke("hidden.bias", math.inf),
    "weights output -inf": poke("output.weight", -math.inf),
    # bytes
    "config optimizer bytes": setting("config", "train", "optimizer", value=b"adamw"),
    "config unknown key bytes": setting("config", "note", value=b"x"),
    "vocab bytes": setting("vocab", value=lambda chars: chars.encode()),
    "kind bytes": setting("kind", value=b"mlp"),
    "data_sha256 bytes": setting("data_sha256", value=lambda sha: sha.encode()),
    # integer keys
    "config int key": setting("config", 1, value=2),
    "metrics int key": setting("metrics", 0, value=1.0),
    "history int key": setting("metrics", "history", value={1: [1.0]}),
    "state_dict int key": setting("state_dict", 0, value=torch.zeros(2)),
    # wrong types
    "metrics a string": setting("metrics", value="2.5"),
    "metrics a list": setting("metrics", value=[1.0]),
    "history a string": setting("metrics", "history", value="x"),
    "history a list": setting("metrics", "history", value=[1.0, 2.0]),
    "history train_loss a string": setting("metrics", "history", "train_loss", value="abc"),
    "history of booleans": setting("metrics", "history", "step", value=lambda steps: [True] * len(steps)),
    "metrics val_loss a string": setting("metrics", "val_loss", value="2.5"),
    "config a string": setting("config", value="x"),
    "config n_embd a string": setting("config", "model", "n_embd", value="4"),
    "config n_embd a float": setting("config", "model", "n_embd", value=4.0),
    "config block_size a bool": setting("config", "model", "block_size", value=True),
    "config max_len a string": setting("config", "max_len", value="15"),
    "config a tuple": setting("config", "note", value=(1, 2)),
    "config holds a tensor": setting("config", "note", value={"a": torch.zeros(1)}),
    "config seed beyond 2**64": setting("config", "train", "seed", value=10**30),
    "config int of 5000 digits": setting("config", "note", value=10**5000),
    "config nested 100 deep": setting("config", "note", value=nested(100)),
    "format_version a bool": setting("format_version", value=True),
    "format_version a string": setting("format_version", value="1"),
    "kind unknown": setting("kind", value="gpt"),
    "kind a tensor": setting("kind", value=torch.zeros(3)),
    "data_sha256 not hex": setting("data_sha256", value="xyz"),
    "vocab repeats a character": setting("vocab", value=lambda chars: chars[0] + chars[1:-1] + chars[0]),
    # missing keys
    "history without train_loss": setting("metrics", "history", "train_loss", delete=True),
    "history without val_step": setting("metrics", "history", "val_step", delete=True),
    "history train_loss shorter": setting("metrics", "history", "train_loss", value=lambda losses: losses[:-1]),
    "config without block_size": setting("config", "model", "block_size", delete=True),
    "config without n_hidden": setting("config", "model", "n_hidden", delete=True),
    "no metrics": setting("metrics", delete=True),
    "no state_dict": setting("state_dict", delete=True),
    # tensors of the wrong shape, dimension, dtype or kind
    "embedding 1-D": weight("embedding.weight", lambda t: t.reshape(-1)),
    "embedding narrower": weight("embedding.weight", lambda t: t[:, :3].clone()),
    "embedding float64": weight("embedding.weight", lambda t: t.double()),
    "hidden weight int64": weight("hidden.weight", lambda t: t.long()),
    "hidden weight complex": weight("hidden.weight", lambda t: t.to(torch.complex64)),
    "embedding sparse": weight("embedding.weight", lambda t: t.to_sparse()),
    "extra tensor": setting("state_dict", "extra.weight", value=torch.zeros(2)),
    "missing tensor": setting("state_dict", "output.bias", delete=True),
    "weight a list": weight("output.bias", lambda t: t.tolist()),
    "weight a float": weight("output.bias", lambda t: 0.5),
    "weight a string": weight("output.bias", lambda t: "zeros"),
    "state_dict a list": setting("state_dict", value=lambda state: list(state.values())),
    "weight stored as stride 0": weight("hidden.weight", stride_zero),
    "config declares 2**20 units stored as stride 0": huge_declared,
    "vocab one character longer": setting("vocab", value=lambda chars: chars + "!"),
    "config n_embd changed": setting("config", "model", "n_embd", value=8),
    # the nested config of format 2: its parts and their keys
    "config model unknown key": setting("config", "model", "n_labels", value=3),
    "config train unknown key": setting("config", "train", "momentum", value=0.9),
    "config unknown top key": setting("config", "lr", value=0.1),
    "config model a list": setting("config", "model", value=[4, 16]),
    "config train null": setting("config", "train", value=None),
    "config train a string": setting("config", "train", value="adamw"),
    "config kind another": setting("config", "kind", value="wavenet"),
    "config kind a number": setting("config", "kind", value=3),
    "config without kind": setting("config", "kind", delete=True),
    "config without train": setting("config", "train", delete=True),
    "config train without steps": setting("config", "train", "steps", delete=True),
    "config train steps a string": setting("config", "train", "steps", value="7"),
    "config model dropout null": setting("config", "model", "dropout", value=None),
}


def hostile_file(tiny: dict, folder: Path, edit: Callable[[dict], None]) -> Path:
    checkpoint = copy.deepcopy(tiny["checkpoint"])
    edit(checkpoint)
    path = folder / "bad.pt"
    torch.save(checkpoint, path)
    return path


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_checkpoint_is_refused_in_one_line(tiny, tmp_path, case, command) -> None:
    bad = hostile_file(tiny, tmp_path, HOSTILE[case])
    outcome = COMMANDS[command](tiny, bad, tmp_path)
    assert is_usage_error(outcome), outcome
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pt"]


@pytest.mark.parametrize("key", ["metrics", "config", "labels"])
def test_a_value_held_many_times_over_is_counted_as_json_writes_it(tiny, tmp_path, key) -> None:
    """A pickle may hold one list many times over: [x, x] nested 28 deep is a file of a few KB and 2**28 values
    as JSON writes it. Its check walked every path (every reader hung; mm-export wrote 9 MB of metadata at depth
    20): it is refused in one line at MAX_JSON_VALUES values, by the API and by a command."""
    checkpoint = copy.deepcopy(tiny["checkpoint"])
    if key == "labels":
        checkpoint["labels"] = shared(28)
    else:
        checkpoint[key]["shared"] = shared(28)
    with pytest.raises(CheckpointError, match=f"^bad.pt: {key} holds more than 262,144 values$"):
        check_checkpoint(checkpoint, "bad.pt")
    if key == "metrics":
        path = tmp_path / "bad.pt"
        torch.save(checkpoint, path)
        assert path.stat().st_size < 100_000
        assert is_usage_error(COMMANDS["export"](tiny, path, tmp_path))


@pytest.mark.parametrize("case", HOSTILE)
def test_check_checkpoint_names_a_checkpoint_error(tiny, case) -> None:
    """The same refusals at the API, each a CheckpointError of one short line naming the file."""
    checkpoint = copy.deepcopy(tiny["checkpoint"])
    HOSTILE[case](checkpoint)
    with pytest.raises(CheckpointError) as caught:
        check_checkpoint(checkpoint, "bad.pt")
    message = str(caught.value)
    assert message.startswith("bad.pt") and "\n" not in message and len(message) < 400, message


def test_the_tiny_checkpoint_passes_every_command(tiny, tmp_path) -> None:
    """Control for the table: the unedited checkpoint succeeds everywhere (so each refusal is the edit's)."""
    good = hostile_file(tiny, tmp_path, lambda checkpoint: None)
    for command in COMMANDS.values():
        outcome = command(tiny, good, tmp_path)
        assert outcome.status == 0, outcome
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["bad.pt", "embeddings.png", "loss.png", "model.onnx", "resumed.pt"]


def test_checkpoint_errors_keep_the_existing_messages(tiny, tmp_path) -> None:
    message = {
        "weights embedding nan": "non-finite weights (NaN or inf) in embedding.weight",
        "embedding 1-D": "'embedding.weight' is float32 [",
        "config without block_size": "config lacks block_size",
        "config lr nan": "config.train.lr must be a finite number, got nan",
        "config model unknown key": "config model has an unknown key 'n_labels'",
        "config kind another": "config kind 'wavenet' is not the checkpoint's mlp",
        "config int key": "config has a key that is not a string: 1",
        "weight stored as stride 0": "declare",
        "history without train_loss": "step and train_loss must be lists of the same length",
    }
    for case, text in message.items():
        with pytest.raises(CheckpointError) as caught:
            load_checkpoint(hostile_file(tiny, tmp_path, HOSTILE[case]))
        assert text in str(caught.value), (case, str(caught.value))


def test_resume_keeps_a_sequence_block_size_taken_from_long_words(tmp_path) -> None:
    """A sequence kind's block_size comes from the data (the longest word + 1), beyond --block-size's 1,024: the
    checkpoint is valid, so resuming it works and keeps it."""
    data = tmp_path / "long.txt"
    data.write_text("".join(bundled_names_path().read_text().splitlines(keepends=True)[:200]) + "a" * 1100 + "\n")
    first, second = tmp_path / "first.pt", tmp_path / "second.pt"
    tiny = ("--steps", 2, "--n-embd", 4, "--n-hidden", 8, "--batch-size", 4, "-q", "--samples", 0)
    assert run_main(train_main, "rnn", "--data", data, *tiny, "--out", first).status == 0
    resumed = run_main(train_main, "rnn", "--data", data, "--resume", first, *tiny, "--out", second)
    assert resumed.status == 0, resumed
    assert load_checkpoint(second)["config"].block_size == load_checkpoint(first)["config"].block_size == 1101


@pytest.mark.parametrize("key", ["kind", "preset"])
def test_resume_of_a_config_naming_kind_or_preset_keeps_the_model(tiny, tmp_path, key) -> None:
    """A flat config (format 1) key that make_config also takes as an argument (a traceback, or a preset applied)
    is ignored."""
    old = as_format_1(tiny["checkpoint"])
    good = hostile_file({"checkpoint": old}, tmp_path, setting("config", key, value="lecture"))
    outcome = resume(tiny, good, tmp_path)
    assert outcome.status == 0, outcome
    resumed = load_checkpoint(tmp_path / "resumed.pt")["config"].model
    assert all(getattr(resumed, k) == old["config"][k] for k in ("block_size", "n_embd", "n_hidden"))


# --- for every field, any value: success or one line ---------------------------------------------------------

LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.binary(max_size=4),
    st.sampled_from([10**400, -(2**64), 2**64, (1, 2), torch.zeros(2), torch.tensor(math.nan), torch.zeros(0)]),
)
VALUES = st.recursive(
    LEAVES,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.one_of(st.text(max_size=4), st.integers(-2, 2)), children, max_size=3)
    ),
    max_leaves=6,
)


def field_paths(value: object, path: tuple = ()) -> list[tuple]:
    """The path of every field of a checkpoint: each key of each dict, each item of each list (tensors are leaves)."""
    paths = [path] if path else []
    if isinstance(value, dict):
        for key, item in value.items():
            paths += field_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value[:4]):  # a few items of each history list
            paths += field_paths(item, (*path, index))
    return paths


KNOWN_KEYS = ("kind", "preset", "block_size", "n_embd", "quantize", "max_len", "norm", "seed", "warmup", "beta2")


def dict_paths(value: object, path: tuple = ()) -> list[tuple]:
    """The path of every dict in a checkpoint (the checkpoint itself first)."""
    if not isinstance(value, dict):
        return []
    return [path, *(p for key, item in value.items() for p in dict_paths(item, (*path, key)))]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), command=st.sampled_from(list(COMMANDS)))
def test_any_value_in_any_field_is_used_or_refused_in_one_line(tiny, tmp_path_factory, data, command) -> None:
    """A field replaced by any value, deleted, or added to any dict under any key (keys the code knows among them)."""
    folder = tmp_path_factory.mktemp("field")
    delete = False
    if data.draw(st.booleans(), label="add a key"):
        parent = data.draw(st.sampled_from(dict_paths(tiny["checkpoint"])), label="dict")
        path = (*parent, data.draw(st.sampled_from(KNOWN_KEYS) | st.text(max_size=4), label="key"))
    else:
        path = data.draw(st.sampled_from(field_paths(tiny["checkpoint"])), label="field")
        delete = isinstance(path[-1], str) and data.draw(st.booleans(), label="delete")
    value = None if delete else data.draw(VALUES, label="value")
    bad = hostile_file(tiny, folder, setting(*path, value=value, delete=delete))
    outcome = COMMANDS[command](tiny, bad, folder)
    written = sorted(p.name for p in folder.iterdir())
    if outcome.status == 0:
        assert "Traceback" not in outcome.stderr and len(written) == 2, (outcome, written)
    else:
        assert is_usage_error(outcome), outcome
        assert written == ["bad.pt"]


# --- mm-plot of .onnx files, and the numbers behind the pictures -----------------------------------------------


def onnx_with_embedding(tiny: dict, folder: Path, change: Callable[[np.ndarray], np.ndarray]) -> Path:
    """A copy of the tiny ONNX model with its embedding initializer passed through change()."""
    proto = onnx.load(str(tiny["onnx"]))
    for init in proto.graph.initializer:
        table = numpy_helper.to_array(init)
        if table.ndim == 2 and table.shape[0] == len(tiny["checkpoint"]["vocab"]) + 1:
            init.CopyFrom(numpy_helper.from_array(change(table.copy()), init.name))
            break
    else:
        raise AssertionError("no embedding table")
    path = folder / "bad.onnx"
    onnx.save(proto, str(path))
    return path


def set_value(table: np.ndarray, value: float) -> np.ndarray:
    table.flat[0] = value
    return table


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 3e38])
def test_mm_plot_embeddings_of_an_onnx_table_not_drawable_is_one_line(tiny, tmp_path, value) -> None:
    bad = onnx_with_embedding(tiny, tmp_path, lambda table: set_value(table, value))
    outcome = plot_embeddings(tiny, bad, tmp_path)
    assert is_usage_error(outcome), outcome
    if math.isfinite(value):  # NaN and inf: the runtime's probe of the logits refuses the file first
        assert "cannot be drawn" in outcome.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.onnx"]


def with_history(change: Callable[[dict], None]) -> Callable[[dict], None]:
    """A metadata edit passing the metrics' history through change()."""
    import json

    def edit(props: dict) -> None:
        metrics = json.loads(props["makemore.metrics"])
        change(metrics["history"])
        props["makemore.metrics"] = json.dumps(metrics).replace("1e+300", "1e400")  # json.loads reads 1e400 as inf

    return edit


ONNX_HISTORIES = {
    "train_loss inf": lambda history: history["train_loss"].__setitem__(0, 1e300 * 1.0),  # written as 1e400
    "train_loss beyond the drawable": lambda history: history["train_loss"].__setitem__(0, 1e200),
    "step beyond the drawable": lambda history: history["step"].__setitem__(-1, 2**62),
    "no train_loss": lambda history: history.pop("train_loss"),
    "val_loss shorter": lambda history: history["val_loss"].pop(),
}


@pytest.mark.parametrize("case", ONNX_HISTORIES)
def test_mm_plot_loss_of_an_onnx_history_not_drawable_is_one_line(tiny, tmp_path, case) -> None:
    bad = rewrite_metadata(tiny["onnx"], tmp_path / "bad.onnx", with_history(ONNX_HISTORIES[case]))
    outcome = plot_loss(tiny, bad, tmp_path)
    assert is_usage_error(outcome), outcome
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.onnx"]


def test_the_onnx_controls_draw(tiny, tmp_path) -> None:
    """Control for the two tests above: the unedited ONNX file (and values at the bound) draw."""
    at_bound = onnx_with_embedding(tiny, tmp_path, lambda table: set_value(table, MAX_DRAWN / 2))
    assert plot_embeddings(tiny, at_bound, tmp_path).status == 0
    assert plot_loss(tiny, tiny["onnx"], tmp_path).status == 0


@pytest.mark.parametrize("scale", [0.0, 1e-300, 1.0, MAX_DRAWN])
def test_project_2d_says_a_finite_share_of_variance(scale) -> None:
    table = np.random.default_rng(0).normal(size=(27, 8)) * scale
    with np.errstate(all="raise"):
        points, label = project_2d(table)
    assert np.isfinite(points).all()
    share = float(label.split("(")[1].split("%")[0])
    assert 0 <= share <= 100, label
    if scale == 0.0:
        assert share == 0
