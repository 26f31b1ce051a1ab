"""DistributedDataParallel under torchrun: the process group, the wrapped model, and what the ranks agree on.

`Ranks` is what the training loop asks of the other processes. `SINGLE`, one process, asks nothing: the loop runs
exactly as it does without torchrun. `DistributedRanks` (from `session`) makes the ranks agree at every step:

- each rank draws its own batches (its seed offset by its rank) and DDP averages the gradients;
- the step's loss is all-reduced with a stop flag, so a loss that is no longer finite, or Ctrl-C on any rank
  (SIGINT only sets the flag), stops every rank at the same step: no rank is left waiting in a collective;
- rank 0 alone evaluates; the val loss it finds is broadcast, so a diverged val loss stops every rank too.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta

import torch
import torch.distributed as dist
from makemore.data import UserError, first_line
from makemore.train.device import DeviceError
from makemore.train.launch import Launch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

SEED_SPACE = 2**64
# How long the ranks wait for each other (to meet, then at each collective) before one error line: torch's own
# default for gloo is 30 minutes of silence. MAKEMORE_RENDEZVOUS_TIMEOUT (seconds, 1 to 86,400) changes it.
RENDEZVOUS_TIMEOUT = 300
TIMEOUT_ENV = "MAKEMORE_RENDEZVOUS_TIMEOUT"


class Ranks:
    """One process: no collective; Ctrl-C raises KeyboardInterrupt wherever it lands (the loop catches it)."""

    rank = 0
    world_size = 1

    @property
    def is_main(self) -> bool:
        """The rank that evaluates, prints and writes the checkpoint."""
        return self.rank == 0

    def seed(self, seed: int) -> int:
        """This rank's seed for batches and dropout: `seed` on rank 0 (as in one process), seed + rank elsewhere."""
        return (seed + self.rank) % SEED_SPACE

    def generator(self, seed: int) -> torch.Generator:
        """The generator of this rank's batch indices, seeded with seed(seed). It stays on the CPU, so a seed
        draws the same batches on any device. Other ranks than 0 also reseed torch's global generator (dropout)."""
        if self.rank:
            torch.manual_seed(self.seed(seed))
        return torch.Generator().manual_seed(self.seed(seed))

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module that the training steps call (the model itself in one process)."""
        return model

    def step_loss(self, loss: torch.Tensor) -> float:
        """The step's loss as a float, the same on every rank (their mean); KeyboardInterrupt when asked to stop."""
        return loss.item()

    def from_main(self, compute: Callable[[], float]) -> float:
        """compute() run on rank 0 alone; its value on every rank."""
        return compute()


SINGLE = Ranks()


class DistributedRanks(Ranks):
    """One rank of a torchrun job, inside an initialised process group (see `session`)."""

    def __init__(self, launch: Launch, device: torch.device) -> None:
        self.rank, self.world_size, self.device = launch.rank, launch.world_size, device
        self.stop_requested = False

    def request_stop(self, signum: int = signal.SIGINT, frame: object = None) -> None:
        """The SIGINT handler: stop at the next step, together with the other ranks."""
        self.stop_requested = True

    def wrap(self, model: nn.Module) -> nn.Module:
        """The model in DistributedDataParallel: gradients averaged over the ranks during backward."""
        return DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def step_loss(self, loss: torch.Tensor) -> float:
        stop = torch.tensor(float(self.stop_requested), dtype=torch.float64, device=loss.device)
        stats = torch.stack([loss.detach().double(), stop])
        dist.all_reduce(stats)
        if stats[1].item() > 0:
            raise KeyboardInterrupt
        return stats[0].item() / self.world_size

    def from_main(self, compute: Callable[[], float]) -> float:
        value = torch.tensor([compute() if self.is_main else 0.0], dtype=torch.float64, device=self.device)
        dist.broadcast(value, src=0)
        return value.item()


def backend(device: torch.device) -> str:
    """nccl between GPUs, gloo between CPUs; any other device is a DeviceError."""
    if device.type == "cuda":
        return "nccl"
    if device.type == "cpu":
        return "gloo"
    raise DeviceError(f"torchrun trains on cpu or cuda, not {device.type}: use --device cpu")


def check_rendezvous(env: Mapping[str, str] | None = None) -> None:
    """MASTER_ADDR must resolve (torch would retry a name that does not for minutes, warning each time)."""
    env = os.environ if env is None else env
    address, port = env["MASTER_ADDR"], env["MASTER_PORT"]
    try:
        socket.getaddrinfo(address.strip("[]"), int(port), type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError) as err:
        raise UserError(f"torchrun's MASTER_ADDR {address!r:.60} cannot be resolved: {first_line(err)}") from None


def rendezvous_timeout(env: Mapping[str, str] | None = None) -> timedelta:
    """RENDEZVOUS_TIMEOUT, or MAKEMORE_RENDEZVOUS_TIMEOUT's whole seconds (UserError when it is no such number)."""
    text = (os.environ if env is None else env).get(TIMEOUT_ENV, str(RENDEZVOUS_TIMEOUT))
    if not (text.isascii() and text.isdigit() and len(text) <= 5 and 1 <= int(text) <= 86_400):
        raise UserError(f"{TIMEOUT_ENV} must be whole seconds from 1 to 86,400, got {text!r:.40}")
    return timedelta(seconds=int(text))


def wait_for_master(address: str, port: int, timeout: timedelta) -> None:
    """Return once rank 0's store accepts a connection at address:port; TimeoutError after `timeout`. (torch's
    own client retries with growing pauses: a timeout of 2 s took about 10 s.) The meeting that follows has the
    whole timeout again: it is also the timeout of every collective of the run, which must not shrink."""
    deadline = time.monotonic() + timeout.total_seconds()
    while (left := deadline - time.monotonic()) > 0:
        try:
            with socket.create_connection((address.strip("[]"), port), timeout=min(left, 1.0)):
                return
        except OSError:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
    raise TimeoutError(f"rank 0 did not listen within {timeout.total_seconds():g} s")


def join_process_group(name: str, device: torch.device) -> None:
    """init_process_group after check_rendezvous; a rendezvous that fails (a port in use, a master that is not
    there, ranks that do not all come within the timeout) is one UserError, not torch's traceback."""
    check_rendezvous()
    timeout = rendezvous_timeout()
    rank = os.environ.get("RANK", "0")
    try:
        if rank != "0":
            wait_for_master(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), timeout)
        dist.init_process_group(name, device_id=device if device.type == "cuda" else None, timeout=timeout)
    except (dist.DistError, ValueError, TimeoutError) as err:
        where = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
        message = f"the ranks could not meet at {where}: {first_line(err, 300)}"
        if rank != "0" and sys.__stderr__ is not None:  # rank 0, which speaks for the ranks, may never have come
            print(f"error: rank {rank}: {message}", file=sys.__stderr__, flush=True)
        raise UserError(message) from None


@contextmanager
def session(launch: Launch | None, device: torch.device) -> Iterator[Ranks]:
    """The Ranks of this process: SINGLE without torchrun, else a process group for the run's duration.

    Inside it SIGINT only asks the ranks to stop at the next step (see DistributedRanks.step_loss); a second
    Ctrl-C, or torchrun forwarding the first, cannot cut rank 0's final evaluation or checkpoint short.
    """
    if launch is None:
        yield SINGLE
        return
    name = backend(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    join_process_group(name, device)
    ranks = DistributedRanks(launch, device)
    previous = signal.signal(signal.SIGINT, ranks.request_stop)
    try:
        yield ranks
    finally:
        signal.signal(signal.SIGINT, previous)
        dist.destroy_process_group()
