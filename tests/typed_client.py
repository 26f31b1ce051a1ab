"""The Python API as a client program types it (docs/api.md): `make typecheck` checks this file strictly against the
packages, so a public name that a type checker cannot see (a lazy import), a method a view lacks, or an argument
type the docs allow and the hints refuse fails the build. It is never run."""

from __future__ import annotations

import threading

import numpy as np
from makemore.runtime import OnnxSampler, SamplingError, SamplingOptions, Stopped
from makemore.train import TorchSampler


def client() -> None:
    sampler = OnnxSampler("model.onnx", workers=2)
    names: list[str] = sampler.sample(5, seed=1, temperature=0.8, top_k=10, prefix="ka")
    options = SamplingOptions(seed=1, temperature=0, max_len=12, exclude=["alia", "ava"])
    SamplingOptions(exclude={"alia"}), SamplingOptions(exclude=("alia",))
    SamplingOptions(exclude="alia")  # type: ignore[arg-type]  # one string is no list of names (refused at runtime)
    for chunk in sampler.sample_chunks(10**9, options, start=5):
        names.extend(chunk)
    stop = threading.Event()
    context = np.zeros((1, sampler.block_size), dtype=np.int64)
    logits: np.ndarray = sampler.until(stop).logits(context)
    scores: list[float] = sampler.score(["emma", "xqzt"]) + TorchSampler("model.pt").score(["emma"])
    best: list[tuple[str, float]] = sampler.beam(10, width=8, ends_with="a")
    try:
        sampler.until(stop).sample(10, options)
    except (Stopped, SamplingError):
        pass
    print(names, logits.shape, scores, best, sampler.vocab.chars, sampler.info.metrics)
