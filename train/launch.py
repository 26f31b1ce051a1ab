"""torchrun's environment (no torch needed): whether this process is one rank of a distributed run, and which.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT for every process it
starts. Without RANK and WORLD_SIZE a run is a plain single process, exactly as before torchrun existed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from makemore.data import UserError

REQUIRED = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
RANK_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")  # LOCAL_WORLD_SIZE: default WORLD_SIZE
MAX_PORT = 65_535
MAX_DIGITS = 9  # no rank, world size or port needs more
HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:[]%")


@dataclass(frozen=True)
class Launch:
    """This process's place in a torchrun job."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that evaluates, prints and writes."""
        return self.rank == 0


def launch_from_env(env: Mapping[str, str] | None = None) -> Launch | None:
    """The Launch that torchrun's variables describe; None without them (RANK and WORLD_SIZE both unset).

    Variables that are set but incomplete or not consistent integers are a UserError (one line).
    """
    env = os.environ if env is None else env
    if "RANK" not in env and "WORLD_SIZE" not in env:
        return None
    missing = [name for name in REQUIRED if not env.get(name)]
    if missing:
        raise UserError(f"torchrun's environment is incomplete: {', '.join(missing)} not set (start with torchrun)")
    values = {name: env_int(name, env.get(name) or env["WORLD_SIZE"]) for name in RANK_VARIABLES}
    check_address(env["MASTER_ADDR"])
    port = env_int("MASTER_PORT", env["MASTER_PORT"])
    if port > MAX_PORT:
        raise UserError(f"torchrun's MASTER_PORT must be a port number 0 to {MAX_PORT}, got {port}")
    launch = Launch(values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"], values["LOCAL_WORLD_SIZE"])
    if not (0 <= launch.rank < launch.world_size and 0 <= launch.local_rank < launch.local_world_size):
        raise UserError(f"torchrun's ranks are inconsistent: {launch}")
    return launch


def env_int(name: str, text: str) -> int:
    """The value of torchrun's variable `name`: ASCII digits (at most MAX_DIGITS), else a UserError."""
    if not (text.isascii() and text.isdigit() and len(text) <= MAX_DIGITS):
        raise UserError(f"torchrun's {name} must be an integer >= 0, got {text!r:.40}")
    return int(text)


def check_address(address: str) -> None:
    """MASTER_ADDR must look like a host name or an IP address (it is resolved when the ranks meet)."""
    if len(address) > 253 or not set(address) <= HOST_CHARS:
        raise UserError(f"torchrun's MASTER_ADDR must be a host name or an IP address, got {address!r:.60}")


def is_secondary_rank() -> bool:
    """A torchrun rank other than 0 (which prints nothing); False for a plain run or malformed variables."""
    try:
        launch = launch_from_env()
    except UserError:
        return False
    return launch is not None and not launch.is_main
