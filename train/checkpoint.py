"""The checkpoint file (model.pt): a plain dict, saved atomically, loaded with weights_only=True.

Keys: format_version, kind, config, vocab (characters of indices 1..V-1), state_dict,
metrics (train/val/test loss and the loss history), data_sha256; a conditional model's also `labels`
({"names": [...], "counts": [...]}: its labels in index order and their training frequencies; config n_labels
counts them). A checkpoint without `labels` is an unlabelled model's, as every older one. check_checkpoint is the
one check of all of them that every reader (mm-export, mm-train --resume, mm-plot, TorchSampler) gets from
load_checkpoint.

The format version decides the form of the stored config (plain data either way, which weights_only reads):
- 2 (CHECKPOINT_FORMAT_VERSION, written now): the typed Config's `to_dict()`, nested: kind, model (the model
  family's fields), train (TrainConfig's fields, null for a bigram) and the record (split_seed, ...).
- 1 (FLAT_CONFIG_VERSION, read only): one flat dict of every key, as `Config.flat()` gives; `config.from_flat`
  makes it the typed Config of the kind (as a resume always did), so such a file exports, resumes and plots.
In memory (what make_checkpoint makes and load_checkpoint returns) `config` is the typed Config, whatever the
version read; save_checkpoint writes version 2.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import NamedTuple

import torch
from makemore.contract import CHECKPOINT_FORMAT_VERSION, STEP, WINDOW, ModelFileError, ModelInfo
from makemore.contract.metadata import MAX_BLOCK_SIZE, check_int, is_finite_number, is_int
from makemore.data import UserError, Vocab, first_line, input_file_problem
from makemore.data.files import atomic_write
from makemore.train.config import ARCHITECTURE_KEYS, DEFAULTS, check_architecture, from_flat
from makemore.train.config_types import Config, config_from_dict, fields_of, known
from makemore.train.kinds import MODEL_KINDS, SEQUENCE_KINDS, build_model, state_spec
from torch import nn
from torch.overrides import TorchFunctionMode

KEYS = ("format_version", "kind", "config", "vocab", "state_dict", "metrics", "data_sha256")
MAX_JSON_DEPTH = 32  # nesting of a config or metrics value
MAX_JSON_VALUES = 1 << 18  # values in one (a run's loss history holds a few thousand)
RANDOM_INIT = ("normal_", "uniform_", "trunc_normal_")  # what SkipRandomInit skips
MAX_JSON_INT = 2**64  # the largest integer magnitude in a config or metrics (a seed is at most 2**64 - 1)
FLAT_CONFIG_VERSION = 1  # the format whose config was one flat dict (before the typed configs)
READ_VERSIONS = (FLAT_CONFIG_VERSION, CHECKPOINT_FORMAT_VERSION)


class CheckpointError(UserError):
    """A checkpoint that cannot be used; the message is one line meant for the user."""


def make_checkpoint(
    kind: str,
    config: Config,
    vocab: Vocab,
    model: nn.Module,
    metrics: dict,
    data_sha256: str,
    labels: tuple[tuple[str, ...], tuple[int, ...]] | None = None,
) -> dict:
    """The checkpoint dict of a trained model (its config typed); its tensors are CPU copies, whatever device the
    model is on. `labels`: a conditional model's (names, training counts)."""
    extra = {} if labels is None else {"labels": {"names": list(labels[0]), "counts": list(labels[1])}}
    return extra | {
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "kind": kind,
        "config": config,
        "vocab": vocab.chars,
        "state_dict": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()},
        "metrics": dict(metrics),
        "data_sha256": data_sha256,
    }


def save_checkpoint(checkpoint: dict, path: str | Path, inputs: tuple[str | Path, ...] = ()) -> None:
    """Write the checkpoint atomically (a temporary file, then rename); never over one of `inputs`. A typed config
    is written in the current format (its to_dict())."""
    config = checkpoint["config"]
    if isinstance(config, Config):
        checkpoint = {**checkpoint, "format_version": CHECKPOINT_FORMAT_VERSION, "config": config.to_dict()}
    atomic_write(path, lambda tmp: torch.save(checkpoint, tmp), inputs)


def load_checkpoint(path: str | Path) -> dict:
    """Load and check a checkpoint (check_checkpoint); untrusted input, so weights_only=True (no code runs).

    The checkpoint comes back with its config typed (a Config), whichever format version the file has."""
    path = Path(path)
    if (problem := input_file_problem(path, "checkpoint")) is not None:
        raise CheckpointError(problem)
    with open(path, "rb") as file:
        head = file.read(4)
    if not head.startswith((b"PK\x03\x04", b"\x80")):  # torch.save's zip archive, or its legacy pickle
        onnx_model = head[:1] == b"\x08" or path.suffix.lower() == ".onnx"  # an ONNX protobuf starts with ir_version
        raise CheckpointError(
            f"{path} is not a checkpoint (a model.pt of mm-train)" + (": it is an ONNX model" if onnx_model else "")
        )
    try:
        with warnings.catch_warnings():  # e.g. torch's pickle-protocol notice on a foreign file: errors are one line
            warnings.simplefilter("ignore")
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(f"{path} was refused by the safe loader (weights_only): {first_line(err, 160)}") from None
    except Exception as err:  # a damaged or foreign file makes the unpickler raise many types (IndexError, ...)
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(err).__name__})") from None
    config = check_checkpoint(checkpoint, str(path)).config
    return {**checkpoint, "config": config}


def check_checkpoint(checkpoint: object, source: str) -> CheckedCheckpoint:
    """The one check of a checkpoint's schema that export, resume and plot rely on; its typed config and ModelInfo.

    Every field has its type; config and metrics hold only what JSON holds exactly (finite numbers, string keys);
    the config has the form of its format version and what the kind's model needs, each value in its range; the
    contract's checks pass (vocabulary, block size, losses, history); the state_dict holds exactly the tensors
    (names, shapes, dtypes) of the model that the config builds, finite, stored in full. CheckpointError (one line)
    on the first that fails.
    """
    if not isinstance(checkpoint, dict) or "format_version" not in checkpoint:
        raise CheckpointError(f"{source} is not a makemore checkpoint")
    version = checkpoint["format_version"]
    if not is_int(version) or version not in READ_VERSIONS:
        raise CheckpointError(
            f"{source} has checkpoint format version {brief(version)};"
            f" this reads {' and '.join(map(str, READ_VERSIONS))}"
        )
    missing = [k for k in KEYS if k not in checkpoint]
    if missing:
        raise CheckpointError(f"{source} lacks checkpoint keys: {', '.join(missing)}")
    kind = checkpoint["kind"]
    if not isinstance(kind, str) or kind not in MODEL_KINDS:
        raise CheckpointError(f"{source}: kind must be one of {', '.join(MODEL_KINDS)}, got {brief(kind)}")
    for key in ("config", "metrics"):
        if not isinstance(checkpoint[key], dict):
            raise CheckpointError(f"{source}: {key} must be a dict, got {type(checkpoint[key]).__name__}")
        check_json(checkpoint[key], key, source)
    if "labels" in checkpoint:
        check_labels_entry(checkpoint["labels"], source)
    typed = {**checkpoint, "config": typed_config(kind, checkpoint["config"], version, source)}
    try:
        info = model_info(typed).checked(source)  # the vocabulary's check among the contract's
    except ModelFileError as err:
        raise CheckpointError(str(err)) from None
    check_state_dict(typed, source)
    return CheckedCheckpoint(typed["config"], info)


class CheckedCheckpoint(NamedTuple):
    """What check_checkpoint found: the typed config and the runtime's view of the checkpoint."""

    config: Config
    info: ModelInfo


def check_labels_entry(labels: object, source: str) -> None:
    """A checkpoint's `labels`: {"names": [...], "counts": [...]} of JSON values (the contract checks the rest)."""
    check_json(labels, "labels", source)
    if not (
        isinstance(labels, dict)
        and set(labels) == {"names", "counts"}
        and all(isinstance(labels[key], list) for key in labels)
    ):
        raise CheckpointError(f"{source}: labels must be a dict of two lists, names and counts")


def brief(value: object) -> str:
    """A value as an error message shows it: the repr of a short scalar, else its type (never a huge repr)."""
    if value is None or isinstance(value, (bool, float)) or (is_int(value) and abs(value) < 10**30):
        return repr(value)
    if isinstance(value, (str, bytes)):
        return f"{value[:40]!r}" + ("..." if len(value) > 40 else "")
    return f"a value of type {type(value).__name__}"


def check_json(value: object, name: str, source: str) -> None:
    """`value` is what strict JSON holds exactly: None, a bool, an int within +-2**64, a finite float, a str, and
    lists and string-keyed dicts of these, at most MAX_JSON_DEPTH deep and MAX_JSON_VALUES values in all (counted
    as JSON writes them: a pickle may hold one list many times over, [x, x] nested 28 deep is 2**28 values in a
    file of 120 KB). CheckpointError naming where otherwise."""
    count = 0

    def walk(value: object, path: str, depth: int) -> None:
        nonlocal count
        count += 1
        if count > MAX_JSON_VALUES:
            raise CheckpointError(f"{source}: {name:.80} holds more than {MAX_JSON_VALUES:,} values")
        if depth > MAX_JSON_DEPTH:
            raise CheckpointError(f"{source}: {path:.80} nests deeper than {MAX_JSON_DEPTH} levels")
        if value is None or isinstance(value, (bool, str)):
            return
        if is_int(value):
            if abs(value) > MAX_JSON_INT:
                raise CheckpointError(f"{source}: {path:.80} is an integer beyond 2**64")
            return
        if isinstance(value, float):
            if not is_finite_number(value):
                raise CheckpointError(f"{source}: {path:.80} must be a finite number, got {brief(value)}")
            return
        if isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{path}[{index}]", depth + 1)
            return
        if not isinstance(value, dict):
            raise CheckpointError(f"{source}: {path:.80} holds {brief(value)}, which JSON cannot hold")
        for key, item in value.items():
            if not isinstance(key, str):
                raise CheckpointError(f"{source}: {path:.80} has a key that is not a string: {brief(key)}")
            walk(item, f"{path}.{key}", depth + 1)

    walk(value, name, 0)


def typed_config(kind: str, stored: dict, version: int, source: str) -> Config:
    """The typed Config of a stored config of format `version` (see the module's docstring), each value checked."""
    if version == FLAT_CONFIG_VERSION:
        check_needed(kind, stored, source)
        config = from_flat(kind, stored)
    else:
        config = nested_config(kind, stored, source)
    check_model_config(kind, config, source)
    return config


def nested_config(kind: str, stored: dict, source: str) -> Config:
    """The Config of format 2's nested form: every model field set, every training field the kind uses set, no
    other key, the checkpoint's kind (CheckpointError otherwise)."""
    model = stored.get("model")
    check_needed(kind, model if isinstance(model, dict) else {}, source, every=True)
    try:
        config = config_from_dict(stored, DEFAULTS[kind])
    except ValueError as err:
        raise CheckpointError(f"{source}: {first_line(err, 200)}") from None
    if config.kind != kind:
        raise CheckpointError(f"{source}: config kind {brief(config.kind)} is not the checkpoint's {kind}")
    unset = unset_training(config, DEFAULTS[kind])
    if unset:
        raise CheckpointError(f"{source}: config train lacks {', '.join(unset)}, which a {kind} trains with")
    return config


def unset_training(config: Config, defaults: Config) -> list[str]:
    """The training fields that `defaults` (a kind's) sets and `config` leaves null."""
    if config.train is None or defaults.train is None:
        return []
    values = fields_of(config.train)
    return [key for key, default in fields_of(defaults.train).items() if default is not None and values[key] is None]


def check_needed(kind: str, model: dict, source: str, every: bool = False) -> None:
    """The stored config (flat, or the model part of a nested one) holds what a model of `kind` is built from: its
    architecture (format 1, where the rest had defaults), or `every` field of its model config (format 2)."""
    fields = fields_of(DEFAULTS[kind].model)
    keys = list(fields) if every else [key for key in ARCHITECTURE_KEYS if key in fields]
    missing = [key for key in dict.fromkeys(("block_size", *keys)) if model.get(key) is None]
    if missing:
        raise CheckpointError(f"{source}: config lacks {', '.join(missing)}, which a {kind} model needs")


def check_model_config(kind: str, config: Config, source: str) -> None:
    """Each known value of the config in its range (as mm-train checks them, except a sequence kind's block_size,
    which comes from the data: the contract bounds it)."""
    try:
        if kind in SEQUENCE_KINDS:
            check_int(config.block_size, "config block_size", 1, MAX_BLOCK_SIZE, source)
            check_architecture(kind, config.replace(block_size=None))
        else:
            check_architecture(kind, config)
    except ModelFileError as err:
        raise CheckpointError(str(err)) from None
    except UserError as err:
        raise CheckpointError(f"{source}: config: {first_line(err, 200)}") from None


def check_state_dict(checkpoint: dict, source: str) -> None:
    """The state_dict holds plain CPU tensors, stored in full, with exactly the names, shapes and dtypes of the
    model that the config builds (built on the meta device: no memory, whatever the config declares), all finite."""
    state = checkpoint["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(name, str) for name in state):
        raise CheckpointError(f"{source}: state_dict must map names to tensors")
    for name, tensor in state.items():
        if not isinstance(tensor, torch.Tensor) or tensor.layout != torch.strided or tensor.device.type != "cpu":
            raise CheckpointError(f"{source}: state_dict {name!r:.60} is {brief(tensor)}, not a plain tensor")
    check_stored_in_full(state, source)
    with torch.device("meta"), SkipRandomInit():
        expected = build_model(checkpoint["kind"], len(checkpoint["vocab"]) + 1, checkpoint["config"])
    if getattr(expected, "block_size", checkpoint["config"].block_size) != checkpoint["config"].block_size:
        raise CheckpointError(f"{source}: a {checkpoint['kind']} model has block_size {expected.block_size}")
    wanted = expected.state_dict()
    missing, unexpected = [n for n in wanted if n not in state], [n for n in state if n not in wanted]
    if missing or unexpected:
        which = f"lacks {missing[0]!r:.60}" if missing else f"has an unexpected {unexpected[0]!r:.60}"
        raise CheckpointError(f"{source}: state_dict {which} for a {checkpoint['kind']} model of this config")
    for name, want in wanted.items():
        got = state[name]
        if got.shape != want.shape or got.dtype != want.dtype:
            raise CheckpointError(
                f"{source}: state_dict {name!r:.60} is {str(got.dtype)[6:]} {list(got.shape)!s:.60};"
                f" this config's {checkpoint['kind']} has {str(want.dtype)[6:]} {list(want.shape)}"
            )
        if got.is_floating_point() and not torch.isfinite(got).all():
            raise CheckpointError(f"{source} has non-finite weights (NaN or inf) in {name}: did training diverge?")


class SkipRandomInit(TorchFunctionMode):
    """Random initialisation does nothing: a model built on the meta device has no values to draw, and torch's first
    meta normal_ imports its compiler (seconds)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") in RANDOM_INIT:
            return args[0] if args else kwargs["tensor"]
        return func(*args, **kwargs)


def check_stored_in_full(state: dict, source: str) -> None:
    """The tensors' elements fit in the distinct storages the file holds: no stride-0 or shared view may declare
    more memory than the file brought (building the model allocates what the tensors declare)."""
    declared = sum(t.numel() * t.element_size() for t in state.values())
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in state.values()}
    if declared > sum(storages.values()):
        raise CheckpointError(f"{source}: state_dict tensors declare {declared:,} bytes but store fewer")


def model_info(checkpoint: dict) -> ModelInfo:
    """The runtime's view of a checkpoint whose config is typed (vocabulary, block size, the flat config as the
    ONNX metadata records it, losses; a sequence kind's state; a conditional model's labels)."""
    config: Config = checkpoint["config"]
    state = state_spec(checkpoint["kind"], config)
    labels = checkpoint.get("labels", {"names": [], "counts": []})
    names, counts = (labels.get(key) if isinstance(labels, dict) else None for key in ("names", "counts"))
    return ModelInfo(
        kind=checkpoint["kind"],
        vocab=Vocab(checkpoint["vocab"]),
        block_size=known(config.block_size, "block_size"),
        config=config.flat(),
        metrics=checkpoint["metrics"],
        data_sha256=checkpoint["data_sha256"],
        contract=WINDOW if state is None else STEP,
        state=state,
        labels=tuple(names) if isinstance(names, list) else (),
        label_counts=tuple(counts) if isinstance(counts, list) else (),
    )


def load_model(checkpoint: dict, source: str = "checkpoint") -> nn.Module:
    """Rebuild the model of a checkpoint (one that check_checkpoint passed), in eval mode."""
    try:
        model = build_model(checkpoint["kind"], len(checkpoint["vocab"]) + 1, checkpoint["config"])
        model.load_state_dict(checkpoint["state_dict"])
    except (KeyError, ValueError, TypeError, RuntimeError) as err:
        raise CheckpointError(f"{source} does not match its model kind: {first_line(err, 160)}") from None
    return model.eval()
