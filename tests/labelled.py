"""Labelled data and conditional models for the tests: bundled names labelled by their last letter, and models of
any kind trained on them the first time a test asks (tests/test_labels.py, tests/test_labels_surfaces.py)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

from conftest import QUICK_OVERRIDES
from makemore.data import read_words
from makemore.train.kinds import MODEL_KINDS

LABELS = ("a-end", "n-end", "other")


def label_of(name: str) -> str:
    """A label that the names' endings make learnable."""
    return "a-end" if name.endswith("a") else "n-end" if name.endswith("n") else "other"


def write_labelled(names_path: Path, folder: Path, every: int, count: int) -> Path:
    """`count` of the bundled names (one in `every`), each labelled by its last letter, as a labelled file."""
    names = read_words(names_path)[::every][:count]
    path = folder / "names.tsv"
    path.write_text("".join(f"{label_of(name)}\t{name}\n" for name in names), encoding="utf-8")
    return path


class LabelledModels(Mapping):
    """kind -> (checkpoint, onnx file) of a conditional model trained on `data` (each kind's quick config, its steps
    replaced by `steps[kind]` where given), trained and exported the first time a test asks for it."""

    def __init__(self, folder: Path, data: Path, steps: Mapping[str, int] | None = None, threads: int | None = None):
        self.folder, self.data, self.steps, self.threads = folder, data, steps or {}, threads
        self.built: dict[str, tuple[Path, Path]] = {}

    def __getitem__(self, kind: str) -> tuple[Path, Path]:
        if kind not in self.built:
            from makemore.export.onnx_export import export_checkpoint
            from makemore.train.run import TrainRequest, run_training

            pt, onnx_path = self.folder / f"{kind}.pt", self.folder / f"{kind}.onnx"
            overrides = {**QUICK_OVERRIDES[kind], **({"steps": self.steps[kind]} if kind in self.steps else {})}
            request = TrainRequest(
                kind=kind,
                data=self.data,
                out=pt,
                samples=0,
                quiet=True,
                overrides=overrides,
                labelled=True,
                threads=self.threads,
            )
            assert run_training(request)
            export_checkpoint(pt, onnx_path)
            self.built[kind] = (pt, onnx_path)
        return self.built[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(self.steps or MODEL_KINDS)

    def __len__(self) -> int:
        return len(self.steps or MODEL_KINDS)
