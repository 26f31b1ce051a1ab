"""Shared fixtures: small trained checkpoints of every kind and their ONNX exports (built once)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
# Under pytest-xdist each worker (and each process it starts) gets its share of the cores as OpenMP threads. Left at
# torch's default, two workers each spun two threads on two cores, and the suite took 1.45x as long (a gru test 20x).
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    _share = max(1, len(os.sched_getaffinity(0)) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("OMP_NUM_THREADS", str(_share))


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))  # the loopback server and load generator, the browser's flags: bench's tools

from chromium import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from makemore.train.kinds import KINDS as SPECS  # noqa: E402  (torch-free; after the telemetry switch)

# Few steps keep the suite fast; the models still learn well below ln(27) (each kind's `quick` config).
QUICK_OVERRIDES = {name: dict(spec.quick) for name, spec in SPECS.items()}
KINDS = tuple(name for name, spec in SPECS.items() if not spec.sequence)  # the window contract
STEP_KINDS = tuple(name for name, spec in SPECS.items() if spec.sequence)  # the step contract


def rewrite_metadata(source: Path, target: Path, change) -> Path:
    """A copy of the ONNX file `source` at `target`, its makemore metadata dict passed through change(props)."""
    import onnx

    proto = onnx.load(str(source))
    props = {p.key: p.value for p in proto.metadata_props}
    change(props)
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, props)
    onnx.save(proto, str(target))
    return target


@pytest.fixture(scope="session")
def names_path() -> Path:
    from makemore.data import bundled_names_path

    return bundled_names_path()


class LazyModels(Mapping):
    """kind -> (checkpoint path, onnx path): each kind trained and exported the first time a test asks for it,
    so a test run that needs one kind pays for that kind alone. Under pytest-xdist the workers share one folder:
    the first to ask trains a kind (under a file lock) and the others read its files."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.built: dict[str, tuple[Path, Path]] = {}

    def __getitem__(self, kind: str) -> tuple[Path, Path]:
        if kind not in QUICK_OVERRIDES:
            raise KeyError(kind)
        if kind not in self.built:
            from filelock import FileLock

            pt, onnx_path = self.folder / f"{kind}.pt", self.folder / f"{kind}.onnx"
            with FileLock(str(self.folder / f"{kind}.lock")):
                if not onnx_path.is_file():
                    self.build(kind, pt, onnx_path)
            self.built[kind] = (pt, onnx_path)
        return self.built[kind]

    @staticmethod
    def build(kind: str, pt: Path, onnx_path: Path) -> None:
        from makemore.export.onnx_export import export_checkpoint
        from makemore.train.run import TrainRequest, run_training

        run_training(TrainRequest(kind=kind, out=pt, samples=0, quiet=True, overrides=QUICK_OVERRIDES[kind]))
        export_checkpoint(pt, onnx_path)

    def __iter__(self) -> Iterator[str]:
        return iter(QUICK_OVERRIDES)

    def __len__(self) -> int:
        return len(QUICK_OVERRIDES)


@pytest.fixture(scope="session")
def model_files(tmp_path_factory) -> Mapping[str, tuple[Path, Path]]:
    """kind -> (checkpoint path, onnx path), trained quickly on the bundled names when first asked for (once per
    run: pytest-xdist's workers share the folder)."""
    if "PYTEST_XDIST_WORKER" not in os.environ:  # one process
        return LazyModels(tmp_path_factory.mktemp("models"))
    shared = tmp_path_factory.getbasetemp().parent / "models"  # the run's folder, above each worker's own
    shared.mkdir(exist_ok=True)
    return LazyModels(shared)


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium (the pages' tests); fails with the command to install it when it is missing."""
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (or deselect with -m 'not browser')")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


# Modules whose every test starts servers, ranks or browsers, or trains a model of its own: `make check` skips them.
SLOW_MODULES = {
    "test_distributed",
    "test_device",
    "test_serve_load",
    "test_web_browser",
    "test_serve_browser",
    "test_sequence_models",  # each trains sequence models of its own
    "test_training",
    "test_sweep",
    "test_eval_subsets",
}

# Tests elsewhere that train a model of their own for seconds, or need a process of their own (memory, an
# environment): module::function, every parameter of it.
SLOW_TESTS = {
    "test_averaging::test_the_average_is_kept_and_evaluated_and_never_steers_training",
    "test_train_cli::test_unusual_characters_end_to_end",
    "test_train_cli::test_resume_continues_training",
    "test_train_hardening::test_one_long_word_trains_a_sequence_kind_in_bounded_memory",
    "test_train_hardening::test_diverged_run_writes_nothing_and_keeps_the_old_model",
    "test_train_hardening::test_training_stops_when_the_loss_is_no_longer_finite",
    "test_train_hardening::test_resume_cli_refuses_another_split_and_continues_in_place",
    "test_hardening_readers::test_a_sparse_file_is_refused_in_bounded_memory",
    "test_hardening_readers::test_a_pipe_trains_with_the_hash_of_what_was_read",
    "test_hardening_readers::test_a_fifo_fed_once_is_read_once",
    "test_hardening_outputs::test_an_ascii_stdout_gets_backslash_escapes_never_a_traceback",
    "test_hardening_outputs::test_a_bad_flag_under_torchrun_is_one_error_line_then_only_torchruns_report",
    "test_hardening_server::test_big_bodies_at_once_stay_under_500_mb_and_are_handed_back",
    "test_hardening_server::test_a_client_that_does_not_read_its_answer_is_dropped",
    "test_hardening_server::test_healthz_answers_when_stalled_connections_reach_the_file_limit",
    "test_hardening_runtime::test_many_workers_do_not_multiply_memory",
    "test_export::test_export_cli_refuses_bad_checkpoints",
    "test_pretrained::test_mm_gen_without_a_model_samples_it_from_the_wheel_with_torch_unimportable",
}


def pytest_collection_modifyitems(config, items) -> None:
    """Mark `slow` every test that needs a trained model (model_files), a browser, lives in SLOW_MODULES or is
    one of SLOW_TESTS."""
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        needs = set(getattr(item, "fixturenames", ()))
        name = f"{module}::{getattr(item, 'originalname', item.name)}"
        if (
            module in SLOW_MODULES
            or name in SLOW_TESTS
            or needs & {"model_files", "browser"}
            or item.get_closest_marker("browser")
        ):
            item.add_marker(pytest.mark.slow)
