"""The checkpoint file (model.pt): a plain dict, saved atomically, loaded with weights_only=True.

Keys: format_version (1), kind, config, vocab (characters of indices 1..V-1), state_dict,
metrics (train/val/test loss and the loss history), data_sha256; a conditional model's also `labels`
({"names": [...], "counts": [...]}: its labels in index order and their training frequencies; config n_labels
counts them). A checkpoint without `labels` is an unlabelled model's, as every older one. check_checkpoint is
the one check of all of them that every reader (mm-export, mm-train --resume, mm-plot, TorchSampler) gets from
load_checkpoint.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import torch
from makemore.contract import CHECKPOINT_FORMAT_VERSION, STEP, WINDOW, ModelFileError, ModelInfo
from makemore.contract.metadata import MAX_BLOCK_SIZE, check_int, is_finite_number, is_int
from makemore.data import UserError, Vocab, first_line
from makemore.data.files import atomic_write
from makemore.train.config import ARCHITECTURE_KEYS, DEFAULTS, check_architecture
from makemore.train.kinds import MODEL_KINDS, SEQUENCE_KINDS, build_model, state_spec
from torch import nn
from torch.overrides import TorchFunctionMode

KEYS = ("format_version", "kind", "config", "vocab", "state_dict", "metrics", "data_sha256")
MAX_JSON_DEPTH = 32  # nesting of a config or metrics value
RANDOM_INIT = ("normal_", "uniform_", "trunc_normal_")  # what SkipRandomInit skips
MAX_JSON_INT = 2**64  # the largest integer magnitude in a config or metrics (a seed is at most 2**64 - 1)


class CheckpointError(UserError):
    """A checkpoint that cannot be used; the message is one line meant for the user."""


def make_checkpoint(
    kind: str,
    config: dict,
    vocab: Vocab,
    model: nn.Module,
    metrics: dict,
    data_sha256: str,
    labels: tuple[tuple[str, ...], tuple[int, ...]] | None = None,
) -> dict:
    """The checkpoint dict of a trained model; its tensors are CPU copies, whatever device the model is on.
    `labels`: a conditional model's (names, training counts)."""
    extra = {} if labels is None else {"labels": {"names": list(labels[0]), "counts": list(labels[1])}}
    return extra | {
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "kind": kind,
        "config": dict(config),
        "vocab": vocab.chars,
        "state_dict": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()},
        "metrics": dict(metrics),
        "data_sha256": data_sha256,
    }


def save_checkpoint(checkpoint: dict, path: str | Path, inputs: tuple[str | Path, ...] = ()) -> None:
    """Write the checkpoint atomically (a temporary file, then rename); never over one of `inputs`."""
    atomic_write(path, lambda tmp: torch.save(checkpoint, tmp), inputs)


def load_checkpoint(path: str | Path) -> dict:
    """Load and check a checkpoint (check_checkpoint); untrusted input, so weights_only=True (no code runs)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():  # e.g. torch's pickle-protocol notice on a foreign file: errors are one line
            warnings.simplefilter("ignore")
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(f"{path} was refused by the safe loader (weights_only): {first_line(err, 160)}") from None
    except Exception as err:  # a damaged or foreign file makes the unpickler raise many types (IndexError, ...)
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(err).__name__})") from None
    check_checkpoint(checkpoint, str(path))
    return checkpoint


def check_checkpoint(checkpoint: object, source: str) -> ModelInfo:
    """The one check of a checkpoint's schema that export, resume and plot rely on; its ModelInfo.

    Every field has its type; config and metrics hold only what JSON holds exactly (finite numbers, string keys);
    the config has what the kind's model needs, each value in its range; the contract's checks pass (vocabulary,
    block size, losses, history); the state_dict holds exactly the tensors (names, shapes, dtypes) of the model
    that the config builds, finite, stored in full. CheckpointError (one line) on the first that fails.
    """
    if not isinstance(checkpoint, dict) or "format_version" not in checkpoint:
        raise CheckpointError(f"{source} is not a makemore checkpoint")
    version = checkpoint["format_version"]
    if not is_int(version) or version != CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(
            f"{source} has checkpoint format version {brief(version)}; this reads {CHECKPOINT_FORMAT_VERSION}"
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
    check_model_config(kind, checkpoint["config"], source)
    if "labels" in checkpoint:
        check_labels_entry(checkpoint["labels"], source)
    try:
        info = model_info(checkpoint).checked(source)  # the vocabulary's check among the contract's
    except ModelFileError as err:
        raise CheckpointError(str(err)) from None
    check_state_dict(checkpoint, source)
    return info


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


def check_json(value: object, name: str, source: str, depth: int = 0) -> None:
    """`value` is what strict JSON holds exactly: None, a bool, an int within +-2**64, a finite float, a str, and
    lists and string-keyed dicts of these, at most MAX_JSON_DEPTH deep. CheckpointError naming where otherwise."""
    if depth > MAX_JSON_DEPTH:
        raise CheckpointError(f"{source}: {name:.80} nests deeper than {MAX_JSON_DEPTH} levels")
    if value is None or isinstance(value, (bool, str)):
        return
    if is_int(value):
        if abs(value) > MAX_JSON_INT:
            raise CheckpointError(f"{source}: {name:.80} is an integer beyond 2**64")
        return
    if isinstance(value, float):
        if not is_finite_number(value):
            raise CheckpointError(f"{source}: {name:.80} must be a finite number, got {brief(value)}")
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            check_json(item, f"{name}[{index}]", source, depth + 1)
        return
    if not isinstance(value, dict):
        raise CheckpointError(f"{source}: {name:.80} holds {brief(value)}, which JSON cannot hold")
    for key, item in value.items():
        if not isinstance(key, str):
            raise CheckpointError(f"{source}: {name:.80} has a key that is not a string: {brief(key)}")
        check_json(item, f"{name}.{key}", source, depth + 1)


def check_model_config(kind: str, config: dict, source: str) -> None:
    """The config holds what the kind's model is built from, each known value in its range (as mm-train checks
    them, except a sequence kind's block_size, which comes from the data: the contract bounds it)."""
    needed = ("block_size", *(key for key in ARCHITECTURE_KEYS if key in DEFAULTS[kind] and key != "block_size"))
    missing = [key for key in needed if key not in config]
    if missing:
        raise CheckpointError(f"{source}: config lacks {', '.join(missing)}, which a {kind} model needs")
    try:
        if kind in SEQUENCE_KINDS:
            check_int(config["block_size"], "config block_size", 1, MAX_BLOCK_SIZE, source)
            check_architecture(kind, {k: v for k, v in config.items() if k != "block_size"})
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
    if getattr(expected, "block_size", checkpoint["config"]["block_size"]) != checkpoint["config"]["block_size"]:
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
    """The runtime's view of a checkpoint (vocabulary, block size, config, losses; a sequence kind's state)."""
    state = state_spec(checkpoint["kind"], checkpoint["config"])
    labels = checkpoint.get("labels", {"names": [], "counts": []})
    names, counts = (labels.get(key) if isinstance(labels, dict) else None for key in ("names", "counts"))
    return ModelInfo(
        kind=checkpoint["kind"],
        vocab=Vocab(checkpoint["vocab"]),
        block_size=checkpoint["config"]["block_size"],
        config=checkpoint["config"],
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
