"""What `mm-train` does: read the data, train (or resume), save the checkpoint, report.

Under torchrun (see distributed.py) every rank makes the same checks before the process group starts, so a
bad flag stops them all alike; then they train one model together, and rank 0 alone prints and writes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from makemore.contract import MAX_LEN_LIMIT
from makemore.data import bundled_names_path, check_output_path
from makemore.data.bounds import TRAINING
from makemore.data.corpus import read_corpus, read_labelled_corpus, split_corpus
from makemore.data.dataset import DEFAULT_FRACTIONS
from makemore.data.labels import label_counts
from makemore.train.checkpoint import (
    CheckpointError,
    load_checkpoint,
    make_checkpoint,
    model_info,
    save_checkpoint,
)
from makemore.train.config import (
    ARCHITECTURE_KEYS,
    Config,
    check_values,
    flag,
    make_config,
    shown,
    size_defaults,
    with_block_size,
)
from makemore.train.config_types import known
from makemore.train.device import check_threads, resolve_device
from makemore.train.distributed import session
from makemore.train.kinds import SEQUENCE_KINDS, ConfigError, kind_spec
from makemore.train.launch import launch_from_env
from makemore.train.memory import check_memory, split_sizes
from makemore.train.progress import ConsoleReporter
from makemore.train.sampler import TorchSampler
from makemore.train.trainer import TrainResult, train
from rich.console import Console
from rich.table import Table


@dataclass
class TrainRequest:
    kind: str
    data: Path | None = None
    out: Path = Path("model.pt")
    resume: Path | None = None
    preset: str | None = None
    split_seed: int | None = None  # None: DEFAULT_SPLIT_SEED, or the checkpoint's when resuming
    samples: int = 5
    quiet: bool = False
    threads: int | None = None  # torch intra-op threads; None keeps torch's default (all cores)
    device: str = "auto"  # auto (cuda, then mps, then cpu), cpu, cuda or mps
    labelled: bool = False  # the data's lines are label<TAB>item: a conditional model
    overrides: dict = field(default_factory=dict)


DEFAULT_SPLIT_SEED = 42
SAMPLES_MAX = 10_000  # names printed after training
SAMPLE_MAX_LEN = 64  # characters of each printed name, whatever the longest training word


def check_request(request: TrainRequest) -> None:
    """The numbers that are no hyperparameters (threads, samples, split seed), before any work."""
    check_threads(request.threads)
    if not (isinstance(request.samples, int) and 0 <= request.samples <= SAMPLES_MAX):
        raise ConfigError(f"--samples must be from 0 to {SAMPLES_MAX:,}, got {shown(request.samples)}")
    if request.split_seed is not None:
        check_values({"split_seed": request.split_seed})


def resolve_config(request: TrainRequest, resumed: dict | None) -> Config:
    """Hyperparameters: from the checkpoint when resuming (training flags may change), else new.

    When resuming, a flag that would change the model (architecture, preset) or the split is an error.
    """
    check_applicable(request.kind, request.overrides)
    if resumed is None:
        split_seed = DEFAULT_SPLIT_SEED if request.split_seed is None else request.split_seed
        return make_config(request.kind, request.preset, **request.overrides, split_seed=split_seed)
    if resumed["kind"] != request.kind:
        raise ConfigError(f"--resume checkpoint is a {resumed['kind']} model, not {request.kind}")
    if request.preset is not None:
        raise ConfigError("--preset cannot be used with --resume: the checkpoint's config is kept")
    config = {"split_seed": DEFAULT_SPLIT_SEED, **resumed["config"].flat()}
    changes = dict(request.overrides, split_seed=request.split_seed)
    for key, value in changes.items():
        if value is None:
            continue
        if key in (*ARCHITECTURE_KEYS, "split_seed") and config.get(key) != value:
            raise ConfigError(f"{flag(key)} cannot change when resuming (checkpoint has {config.get(key)})")
        config[key] = value
    if request.kind not in SEQUENCE_KINDS:
        return make_config(request.kind, **config)
    block_size = config.pop("block_size", None)  # from the data: maybe beyond --block-size's range (the schema's bound)
    typed = make_config(request.kind, **config)
    return typed if block_size is None else typed.replace(block_size=block_size)


def check_applicable(kind: str, overrides: dict) -> None:
    """A flag given for a setting that `kind` does not have is an error (ConfigError), on a new run as on a resume:
    `mm-train mlp --n-layer 8` would otherwise train the default mlp as if asked for nothing."""
    takes = kind_spec(kind).flags
    given = [key for key, value in overrides.items() if value is not None and key not in takes]
    if given:
        its = ", ".join(flag(key) for key in overrides if key in takes)
        raise ConfigError(f"{flag(given[0])} does not apply to {kind}" + (f" (it takes {its})" if its else ""))


def run_training(request: TrainRequest) -> bool:
    """Train and save; returns False when Ctrl-C cut training short (the checkpoint is still saved).

    Under torchrun, ranks other than 0 print nothing and write nothing. A bigram (counts, no gradient) is
    counted by rank 0 alone; the other ranks return at once.
    """
    launch = launch_from_env()
    console = Console(stderr=True, quiet=request.quiet or (launch is not None and not launch.is_main))
    check_request(request)
    device = resolve_device(request.device, *((launch.local_rank, launch.local_world_size) if launch else ()))
    if request.threads is not None:
        torch.set_num_threads(request.threads)
    data_path = request.data or bundled_names_path()
    check_output_path(request.out, (data_path,))  # --resume X --out X continues X in place: allowed
    resumed = load_checkpoint(request.resume) if request.resume else None  # every field checked, weights included
    config = resolve_config(request, resumed)
    steps_before = check_steps_done(resumed, config)
    reporter = ConsoleReporter(console, request.kind)
    setup_started = time.perf_counter()
    with reporter.phase("reading and tokenising the data"):
        # streamed into tokens: no Python string per word (labelled data: read as text, at most MAX_TEXT_BYTES)
        corpus = read_labelled_corpus(data_path) if request.labelled else read_corpus(data_path)
    vocab, data_sha256, label_names = corpus.vocab, corpus.sha256, corpus.labels  # a pipe has no second read
    if resumed is not None and resumed["vocab"] != vocab.chars:
        raise CheckpointError("--resume checkpoint was trained on data with another vocabulary")
    check_resumed_labels(resumed, label_names)
    with reporter.phase("splitting"):
        split = split_corpus(corpus.tokens, known(config.split_seed, "split_seed"), DEFAULT_FRACTIONS)
        del corpus  # the split holds every word's tokens
    if label_names:
        config = config.replace(n_labels=len(label_names))
    setup_seconds = round(time.perf_counter() - setup_started, 1)
    longest = int(split["train"].lengths.max())
    config = config.replace(split_fractions=tuple(DEFAULT_FRACTIONS), max_len=min(MAX_LEN_LIMIT, longest))
    config = with_block_size(request.kind, config, split)  # sequence kinds: from the data
    n_words = sum(split[name].n_words for name in ("train", "val", "test"))
    check_memory(
        request.kind,
        config,
        vocab.size,
        split_sizes(split),
        size_defaults(request.kind, split),
        words=n_words,
        train_sizes=split["train"].lengths + 1,
    )
    if launch is not None and request.kind == "bigram":  # nothing to average: rank 0 counts, alone
        if not launch.is_main:
            return True
        launch = None

    state_dict = resumed["state_dict"] if resumed else None
    with session(launch, device) as ranks:
        result = train(
            request.kind,
            config,
            split,
            vocab,
            state_dict=state_dict,
            reporter=reporter,
            device=device,
            ranks=ranks,
            labels=label_names,
        )
        if not ranks.is_main:
            return not result.interrupted
        config = config.replace(steps_done=steps_before + result.steps_done)
        metrics = dict(result.metrics, setup_seconds=setup_seconds, history=result.history)
        labels = (label_names, tuple(label_counts(split["train"], len(label_names)))) if label_names else None
        checkpoint = make_checkpoint(request.kind, config, vocab, result.model, metrics, data_sha256, labels)
        save_checkpoint(checkpoint, request.out, (data_path,))
        _report(checkpoint, result, request, console)
    return not result.interrupted


def check_steps_done(resumed: dict | None, config: Config) -> int:
    """The steps a resumed checkpoint has done (0 for a new run); CheckpointError when this run's steps would take
    them past the most a checkpoint records."""
    done = (resumed["config"].steps_done or 0) if resumed else 0
    steps, most = config.train.steps if config.train else 0, int(TRAINING["steps_done"].high or 0)
    if done + steps > most:
        raise CheckpointError(
            f"--resume checkpoint has done {done:,} steps: {steps:,} more would pass the most one records ({most:,})"
        )
    return done


def check_resumed_labels(resumed: dict | None, label_names: tuple[str, ...]) -> None:
    """A resumed checkpoint continues on data with its own labels (none for an unlabelled model)."""
    if resumed is None:
        return
    had = tuple(resumed.get("labels", {}).get("names", ()))
    if had and not label_names:
        raise CheckpointError("--resume checkpoint is a conditional model: give --labelled and its label<TAB>item data")
    if label_names and not had:
        raise CheckpointError("--resume checkpoint was trained on unlabelled data: leave --labelled out")
    if had != label_names:
        raise CheckpointError("--resume checkpoint was trained on labelled data with other labels")


def _report(checkpoint: dict, result: TrainResult, request: TrainRequest, console: Console) -> None:
    if result.interrupted:
        console.print(f"[yellow]interrupted at step {result.steps_done}: saved what was trained so far")
    table = Table(title=f"{checkpoint['kind']} -> {request.out}")
    for name in ("train", "val", "test"):
        table.add_column(f"{name} loss", justify="right")
    table.add_row(*(f"{checkpoint['metrics'][f'{n}_loss']:.4f}" for n in ("train", "val", "test")))
    console.print(table)
    if request.samples > 0:
        sampler = TorchSampler.from_model(result.model, model_info(checkpoint))  # either contract
        max_len = min(sampler.info.max_len, SAMPLE_MAX_LEN)
        names = sampler.sample(request.samples, seed=checkpoint["config"].seed, max_len=max_len)
        console.print("samples: " + ", ".join(names))
