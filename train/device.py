"""Which torch device trains: `--device auto|cpu|cuda|mps`, checked before any work.

auto takes CUDA when torch sees a GPU, then Apple's MPS, then the CPU. A device named but not available is a
DeviceError (one line, exit status 2). Under torchrun each rank takes the GPU of its LOCAL_RANK.
"""

from __future__ import annotations

import os

import torch
from makemore.data import UserError

DEVICES = ("auto", "cpu", "cuda", "mps")


class DeviceError(UserError):
    """A device that this machine (or this torch build) does not have; the message is one line."""


def check_threads(threads: object) -> None:
    """`--threads`: None (torch's own choice, every core) or 1 to this machine's cores; UserError naming the flag."""
    cores = os.cpu_count() or 1
    if threads is None or (isinstance(threads, int) and not isinstance(threads, bool) and 1 <= threads <= cores):
        return
    from makemore.train.config import shown

    raise UserError(f"--threads must be from 1 to {cores} (this machine's cores), got {shown(threads)}")


def mps_available() -> bool:
    """Apple's Metal backend is built into this torch and usable on this machine."""
    backend = getattr(torch.backends, "mps", None)
    return backend is not None and backend.is_available()


def resolve_device(name: str, local_rank: int = 0, local_world_size: int = 1) -> torch.device:
    """The torch device for `--device NAME`; for CUDA, GPU `local_rank` of the `local_world_size` this node needs.

    Every rank of a node runs the same check (against the node's rank count, not its own index), so all of
    them fail alike and none waits for the others.
    """
    if name not in DEVICES:
        raise DeviceError(f"--device must be one of {', '.join(DEVICES)}, got {name!r:.40}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if mps_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            build = "a torch built without CUDA" if torch.version.cuda is None else "no GPU visible to torch"
            raise DeviceError(f"--device cuda is not available here ({build}): use --device cpu or auto")
        if local_world_size > torch.cuda.device_count():
            raise DeviceError(
                f"--device cuda: {local_world_size} processes on this node but {torch.cuda.device_count()}"
                " GPU(s): start at most one process per GPU (--nproc-per-node)"
            )
        return torch.device("cuda", local_rank)
    if name == "mps":
        if not mps_available():
            raise DeviceError("--device mps is not available here (no Apple Metal GPU): use --device cpu or auto")
        return torch.device("mps")
    return torch.device("cpu")


def model_device(model: torch.nn.Module) -> torch.device:
    """The device a model's weights are on (the CPU for a model without any)."""
    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")


def to_device(device: torch.device, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The tensors on `device` (no copy when they are there already, so the CPU path is unchanged)."""
    return tuple(tensor.to(device) for tensor in tensors)
