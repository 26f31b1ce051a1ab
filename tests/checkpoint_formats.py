"""A checkpoint of the previous format (1: one flat config dict), made from a stored one of format 2, written here
independently of the code under test (train/config_types.py's flat() is what it checks against)."""

from __future__ import annotations

import copy

FLAT_CONFIG_VERSION = 1


def as_format_1(checkpoint: dict) -> dict:
    """A deep copy of a stored (torch.load-ed) format-2 checkpoint with its config flat, as format 1 wrote it: the
    model's keys, the training keys the kind uses (not null), the record's keys; no kind, model or train key."""
    old = copy.deepcopy(checkpoint)
    nested = old["config"]
    flat = {**nested["model"], **(nested["train"] or {})}
    flat.update({key: nested[key] for key in ("split_seed", "split_fractions", "max_len", "steps_done")})
    old["config"] = {key: value for key, value in flat.items() if value is not None}
    old["format_version"] = FLAT_CONFIG_VERSION
    return old
