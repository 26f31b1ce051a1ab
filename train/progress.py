"""What a training run reports while it works: a bar over the steps, and a line for each slow phase.

`Reporter` is silent (the library's default); `ConsoleReporter` is mm-train's: a rich bar that shows the
optimisation steps only, and for setup (reading, tokenising, splitting) and the final evaluation a spinner
that appears once a phase has run for a second, then one line with the phase's time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as Bar

PHASE_DELAY = 1.0  # seconds a phase runs before it gets its own progress line


@dataclass
class Progress:
    """What the loop reports after each step (for a progress bar)."""

    step: int
    steps: int
    loss: float


class Reporter:
    """Reports nothing: the phases and steps of a run in a library call or a test."""

    @contextmanager
    def phase(self, text: str) -> Iterator[None]:
        """Around a piece of work that is not a step (reading, tokenising, evaluating)."""
        yield

    @contextmanager
    def steps(self, total: int) -> Iterator[Callable[[Progress], None]]:
        """Around the optimisation loop; yields the callback to call after each step."""
        yield lambda progress: None


class ConsoleReporter(Reporter):
    """mm-train's progress on a rich console (stderr): a bar over the steps, a line per phase over a second."""

    def __init__(self, console: Console, kind: str) -> None:
        self.console, self.kind = console, kind

    @contextmanager
    def phase(self, text: str) -> Iterator[None]:
        lock, started = threading.Lock(), time.perf_counter()
        state: dict = {"done": False, "status": None}

        def show() -> None:  # on the timer's thread, once the phase has run PHASE_DELAY seconds
            with lock:
                if not state["done"]:
                    state["status"] = self.console.status(text)
                    state["status"].start()

        timer = threading.Timer(PHASE_DELAY, show)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()
            with lock:
                state["done"] = True
                if state["status"] is not None:
                    state["status"].stop()
        took = time.perf_counter() - started
        if state["status"] is not None or took > PHASE_DELAY:
            self.console.print(f"{text}: {took:.1f} s")

    @contextmanager
    def steps(self, total: int) -> Iterator[Callable[[Progress], None]]:
        columns = [
            TextColumn(f"[bold]{self.kind}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(),
        ]
        with Bar(*columns, console=self.console, transient=False) as bar:
            task = bar.add_task("train", total=total, loss="-")
            last: list[Progress] = []

            def on_step(p: Progress) -> None:
                last[:] = [p]
                if p.step % 50 == 0 or p.step == p.steps:
                    bar.update(task, completed=p.step, loss=f"{p.loss:.4f}")

            try:
                yield on_step
            except BaseException:  # an error leaves its one line: no bar, no blank line above it
                bar.live.transient = True
                bar.live.stop()
                bar.disable = True  # so that leaving the `with` prints nothing more
                raise
            if last:  # the step reached, also when Ctrl-C stopped the loop between two updates
                bar.update(task, completed=last[0].step, loss=f"{last[0].loss:.4f}")
