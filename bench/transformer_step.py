"""Milliseconds per training step of the last release's default transformer (the `makemore` preset: 128 words,
n_layer 4, n_head 4, n_embd 64, dropout 0.1), on the bundled names, the same batches for every version of the code.

python bench/transformer_step.py                    # this checkout: ms per step, useful tokens per second
python bench/transformer_step.py --against ../old   # side by side with another checkout (its .venv), A B A B ...

A step is what the training loop does: build the batch's rows, forward, loss, backward, clip, AdamW. Under
`--against` each round runs this script once in each checkout (a fresh process, alternately) and the medians,
their ratio and the load average are printed. Older checkouts (no packed rows) time their own padded batches.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()


def setup() -> tuple:
    """(model, its train rows, optimizer, batch size, seed, grad clip) of the last release's default transformer,
    in this checkout's API or the last release's (dict configs, everything in train/trainer.py)."""
    import torch
    from makemore.data import Vocab, bundled_names_path, read_words, split_words
    from makemore.data.tokens import tokenize_split
    from makemore.train import trainer

    words = read_words(bundled_names_path())
    vocab = Vocab.from_words(words)
    split = tokenize_split(split_words(words, 42), vocab)
    try:
        from makemore.train.config import make_config, with_block_size
        from makemore.train.evaluate import split_rows
        from makemore.train.kinds import build_model
    except ImportError:  # the last release
        from makemore.train.models import build_model
        from makemore.train.trainer import make_config, split_rows, with_block_size

        config = with_block_size("transformer", make_config("transformer"), split)
        rows = split_rows("transformer", split, config["block_size"])["train"]
        torch.manual_seed(config["seed"])
        model = build_model("transformer", vocab.size, config).train()
        optimizer = trainer.make_optimizer(model, config)
        return model, rows, optimizer, config["batch_size"], config["seed"], config["grad_clip"]
    from train_speed import release_config  # beside this file

    config = with_block_size("transformer", release_config(make_config, "transformer"), split)
    rows = split_rows("transformer", split, config.block_size)["train"]
    torch.manual_seed(config.seed)
    model = build_model("transformer", vocab.size, config).train()
    train = config.train
    return model, rows, trainer.make_optimizer(model, train), train.batch_size, train.seed, train.grad_clip


def time_steps(steps: int, warmup: int, threads: int) -> dict:
    """Train that transformer for warmup + steps steps; ms per timed step and useful tokens per second."""
    import numpy as np
    import torch
    from makemore.train import trainer
    from makemore.train.models import cross_entropy

    torch.set_num_threads(threads)
    model, rows, optimizer, batch_size, seed, grad_clip = setup()
    draws = trainer.batch_indices(len(rows), batch_size, 1, torch.Generator().manual_seed(seed))
    device, targets, started = torch.device("cpu"), 0, 0.0
    for step in range(warmup + steps):
        if step == warmup:
            targets, started = 0, time.perf_counter()
        indices = next(draws).numpy()
        if hasattr(trainer, "training_batch"):  # this checkout's batches (packed rows)
            batch = trainer.training_batch(model, rows, indices)
            loss = trainer.batch_loss(model, batch, device)
        else:  # the last release: padded rows
            batch = tuple(map(torch.from_numpy, rows.take(indices)))
            loss = cross_entropy(model, *batch)
        targets += int((batch[1] != -100).sum())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
    seconds = time.perf_counter() - started
    assert np.isfinite(loss.item())
    return {"ms_per_step": 1000 * seconds / steps, "tokens_per_s": targets / seconds}


def side_by_side(other: Path, rounds: int, steps: int, warmup: int, threads: int) -> None:
    """Alternate the other checkout and this one, `rounds` times each; print medians, ratio and load."""
    sides = {"old": (other / ".venv" / "bin" / "python", other), "new": (Path(sys.executable), HERE.parent.parent)}
    results: dict[str, list[dict]] = {"old": [], "new": []}
    loads = [Path("/proc/loadavg").read_text().split()[0]]
    for _ in range(rounds):
        for name, (python, cwd) in sides.items():
            args = [str(python), str(HERE), "--steps", str(steps), "--warmup", str(warmup), "--threads", str(threads)]
            out = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=True).stdout
            results[name].append(json.loads(out.strip().splitlines()[-1]))
            print(name, results[name][-1], flush=True)
        loads.append(Path("/proc/loadavg").read_text().split()[0])
    ms = {name: statistics.median(r["ms_per_step"] for r in runs) for name, runs in results.items()}
    tokens = {name: statistics.median(r["tokens_per_s"] for r in runs) for name, runs in results.items()}
    pairs = [a["ms_per_step"] / b["ms_per_step"] for a, b in zip(results["old"], results["new"], strict=True)]
    print(
        f"old {ms['old']:.1f} ms/step ({tokens['old']:,.0f} useful tokens/s), new {ms['new']:.1f} ms/step "
        f"({tokens['new']:,.0f} useful tokens/s): {ms['old'] / ms['new']:.2f}x (median of the rounds' ratios "
        f"{statistics.median(pairs):.2f}x); load average {' '.join(loads)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--against", type=Path, help="another checkout (with its .venv) to time side by side")
    args = parser.parse_args()
    if args.against is None:
        print(json.dumps(time_steps(args.steps, args.warmup, args.threads)))
    else:
        side_by_side(args.against.resolve(), args.rounds, args.steps, args.warmup, args.threads)


if __name__ == "__main__":
    main()
