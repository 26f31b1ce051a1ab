"""Build the served app from a configuration, in this process or in each of uvicorn's worker processes.

uvicorn starts worker processes (`mm-serve --workers N`) from an import string, so each worker builds its own
app, with its own onnxruntime session, by calling `app_from_environment`, which reads the configuration the
parent process put in the environment variable CONFIG_ENV.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from makemore.runtime.parallel import usable_cores
from makemore.runtime.serve.flow import Admission

CONFIG_ENV = "MAKEMORE_SERVE_CONFIG"
FACTORY = "makemore.runtime.serve.factory:app_from_environment"  # uvicorn's import string (factory=True)


@dataclass(frozen=True)
class ServeConfig:
    """What one server process needs to build its app: the model, the known names, the limits, its threads."""

    model: str
    data: str | None = None  # training names that "novel" drops (None: the bundled names)
    max_n: int = 10_000
    max_body: int = 1 << 20
    processes: int = 1  # uvicorn worker processes sharing the machine's cores
    web: bool = False  # mm-web's page (and the model file) under /web/ too
    ort_dist: str | None = None  # onnxruntime-web's dist for /web/ (None: the checkout's, after `make web`)
    in_flight: int = 16  # POST requests held at once (body to answer); more get 503
    timeout: float = 20.0  # seconds a client has to send a request's head or body, or to take a piece of an answer
    max_connections: int | None = None  # connections kept open (None: from the file limit)

    @property
    def sample_threads(self) -> int:
        """Threads each process samples one request's chunks on: its share of the usable cores."""
        return max(1, usable_cores() // self.processes)

    def to_environment(self) -> None:
        """Put this configuration where app_from_environment reads it (inherited by uvicorn's workers)."""
        os.environ[CONFIG_ENV] = json.dumps(asdict(self))


def known_names(config: ServeConfig) -> frozenset[str]:
    """The names that "novel" drops: the lines of --data (read once: it may be a pipe), or the bundled names."""
    from makemore.data import bundled_names_path, read_lines

    return frozenset(read_lines(Path(config.data) if config.data else bundled_names_path()))


@contextmanager
def for_workers(config: ServeConfig, known: frozenset[str]) -> Iterator[ServeConfig]:
    """The configuration uvicorn's worker processes read: a --data pipe or FIFO, already read (it cannot be read
    again), becomes a temporary file of its names (`known`) for as long as the server runs."""
    from makemore.data.reader import is_regular_file

    if config.data is None or is_regular_file(Path(config.data)):
        yield config
        return
    with tempfile.TemporaryDirectory(prefix="mm-serve-") as folder:
        names = Path(folder) / "names.txt"
        names.write_text("".join(f"{name}\n" for name in sorted(known)), encoding="utf-8")
        yield replace(config, data=str(names))


def build_app(config: ServeConfig, known: frozenset[str] | None = None) -> Admission:
    """The app of one server process: the model loaded into a session of its own; `known`: the names that
    "novel" drops, when already read (default: `known_names(config)`)."""
    from makemore.runtime.onnx_sampler import OnnxSampler
    from makemore.runtime.serve.app import Limits, create_app
    from makemore.runtime.serve.in_browser import browser_files

    sampler = OnnxSampler(config.model, workers=config.sample_threads)
    known = known_names(config) if known is None else known
    limits = Limits(max_n=config.max_n, max_body=config.max_body, in_flight=config.in_flight, timeout=config.timeout)
    web = browser_files(config.model, sampler.info, config.ort_dist) if config.web else None
    return create_app(sampler, known, limits, name=Path(config.model).name, web=web)


def http_protocol(config: ServeConfig) -> functools.partial[Any]:
    """uvicorn's `http` for this configuration: its h11 protocol with the head timeout and the connection bound."""
    from makemore.runtime.serve.protocol import GuardedH11, connection_bound

    return functools.partial(
        GuardedH11, timeout=config.timeout, max_connections=connection_bound(config.max_connections)
    )


def app_from_environment() -> Admission:
    """uvicorn's factory in each worker process: the app of the configuration in CONFIG_ENV."""
    return build_app(ServeConfig(**json.loads(os.environ[CONFIG_ENV])))
