"""Beam search (runtime/beam.py): deterministic, distinct, sorted names, the first at least as likely as the greedy
name, each log-probability the model's own score; decoders gather and duplicate rows by index."""

from __future__ import annotations

import re

import numpy as np
import pytest
from clirun import assert_usage_error, run
from hypothesis import given, settings
from hypothesis import strategies as st
from makemore.data import Vocab
from makemore.runtime.beam import beam_search, check_beam
from makemore.runtime.options import SamplingError, SamplingOptions
from makemore.runtime.sampling import WindowDecoder

REQUESTS = [
    {},
    {"prefix": "ma"},
    {"ends_with": "a", "min_len": 5},
    {"contains": "li", "match": "[a-m].*", "exclude": ["ali", "eli"]},
]


@pytest.fixture(scope="module")
def samplers(model_files):
    from makemore.runtime.onnx_sampler import OnnxSampler
    from makemore.train.sampler import TorchSampler

    return {kind: (TorchSampler(model_files[kind][0]), OnnxSampler(model_files[kind][1])) for kind in ("mlp", "gru")}


def log_likelihood(sampler, name: str) -> float:
    """The model's log-probability of `name` and its end, from runtime.scoring (mean NLL per predicted character)."""
    return -sampler.score([name])[0] * (len(name) + 1)


@pytest.mark.parametrize("kind", ["mlp", "gru"])
@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: "-".join(r) or "plain")
def test_beam_names_are_sorted_distinct_scored_and_beat_greedy(samplers, kind, request_) -> None:
    torch_sampler, onnx_sampler = samplers[kind]
    found = onnx_sampler.beam(8, width=8, **request_)
    names, log_probs = [name for name, _ in found], [lp for _, lp in found]
    assert len(names) == 8 and len(set(names)) == 8  # n <= width: the beam finishes n names at the latest at max_len
    assert log_probs == sorted(log_probs, reverse=True)
    assert onnx_sampler.beam(8, width=8, **request_) == found  # deterministic
    for name, log_prob in found:
        assert log_prob == pytest.approx(log_likelihood(onnx_sampler, name), abs=1e-3)
        assert name.startswith(request_.get("prefix", "")) and name.endswith(request_.get("ends_with", ""))
        assert request_.get("contains", "") in name and len(name) >= request_.get("min_len", 1)
        assert re.fullmatch(request_.get("match", ".*"), name) and name not in request_.get("exclude", [])
    greedy = onnx_sampler.sample(1, temperature=0, **request_)[0]
    assert log_probs[0] >= log_likelihood(onnx_sampler, greedy) - 1e-6
    torch_found = torch_sampler.beam(8, width=8, **request_)
    assert [name for name, _ in torch_found] == names  # the same search over torch's logits
    np.testing.assert_allclose([lp for _, lp in torch_found], log_probs, atol=1e-3)


@pytest.mark.parametrize("kind", ["mlp", "gru"])
def test_a_wider_beam_finds_names_at_least_as_likely(samplers, kind) -> None:
    onnx_sampler = samplers[kind][1]
    narrow, wide = onnx_sampler.beam(5, width=2), onnx_sampler.beam(5, width=32)
    assert wide[0][1] >= narrow[0][1] - 1e-9


def test_cli_beam_prints_scored_names_and_refuses_bad_widths(model_files) -> None:
    onnx_path = model_files["mlp"][1]
    result = run("mm-gen", onnx_path, "--beam", "4", "--n", "6", "--ends-with", "n")
    assert result.returncode == 0, result.stderr
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert len(lines) == 6 and all(name.endswith("n") for _, name in lines)
    scores = [float(lp) for lp, _ in lines]
    assert scores == sorted(scores, reverse=True) and all(s < 0 for s in scores)
    for bad in (["--beam", "0"], ["--beam", "257"], ["--beam", "4", "--n", "1001"], ["--beam", "2", "--stats"]):
        assert_usage_error(run("mm-gen", onnx_path, *bad))


def test_fewer_names_than_asked_when_fewer_satisfy_the_constraints() -> None:
    vocab = Vocab("ab")
    table = np.random.default_rng(0).normal(size=(3, 3)).astype(np.float32)

    def decoder() -> WindowDecoder:
        return WindowDecoder(lambda context: table[context[:, -1]], 1)

    class Info:
        longest_name, max_len = 3, 3

    Info.vocab = vocab  # type: ignore[attr-defined]
    found = beam_search(decoder, Info(), 50, SamplingOptions(max_len=3), 8)  # type: ignore[arg-type]
    every = {a + b + c for a in ("", *"ab") for b in ("", *"ab") for c in "ab"} | set("ab")
    assert {name for name, _ in found} == {name for name in every if 1 <= len(name) <= 3}
    total = sum(np.exp(lp) for _, lp in found)  # every name of 1..3 characters, ended: the whole distribution
    assert total <= 1 + 1e-9


def test_window_decoder_keep_gathers_and_duplicates_rows() -> None:
    decoder = WindowDecoder(lambda context: context.astype(np.float32), 3)
    decoder.start([1, 2], 3)
    decoder.step(np.array([3, 4, 5]))
    decoder.keep(np.array([2, 2, 0]))
    np.testing.assert_array_equal(decoder.context, [[1, 2, 5], [1, 2, 5], [1, 2, 3]])
    decoder.keep(np.array([True, False, True]))
    np.testing.assert_array_equal(decoder.context, [[1, 2, 5], [1, 2, 3]])


@pytest.mark.parametrize(
    ("n", "width", "max_len", "field"), [(0, 4, 10, "n"), (5, 0, 10, "beam"), (5, 256, 100_000, "beam")]
)
def test_beam_bounds(n, width, max_len, field) -> None:
    with pytest.raises(SamplingError) as err:
        check_beam(n, width, max_len)
    assert err.value.field == field


def reference_search(table: np.ndarray, max_len: int, width: int, n: int, min_len: int) -> list[tuple[float, str]]:
    """The beam of runtime.beam.search written plainly (every row's whole name carried, every end scored): the
    oracle the back-pointer search must match name for name and bit for bit."""
    from makemore.runtime.beam import Finished, log_softmax

    vocab = Vocab("abc")
    rows, scores, finished = [[]], np.array([0.0]), Finished(n)
    for length in range(max_len + 1):
        cand = scores[:, None] + log_softmax(table[[row[-1] if row else 0 for row in rows]])
        cand[:, 1:] = -np.inf if length >= max_len else cand[:, 1:]
        if length >= min_len:
            for row, name in enumerate(rows):
                finished.add(float(cand[row, 0]), vocab.decode(name))
        flat = cand[:, 1:].ravel()
        order = np.argsort(-flat, kind="stable")[:width]
        order = order[flat[order] > finished.floor]
        if order.size == 0:
            break
        parents, chars = np.divmod(order, table.shape[1] - 1)
        rows, scores = [[*rows[p], c + 1] for p, c in zip(parents, chars, strict=True)], flat[order]
    return finished.heap


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    max_len=st.integers(1, 12),
    width=st.integers(1, 6),
    n=st.integers(1, 10),
    min_len=st.integers(1, 12),
)
def test_the_back_pointer_beam_matches_a_plain_one_and_rebuilds_only_names_that_enter(seed, max_len, width, n, min_len):
    from makemore.runtime.beam import Finished, search
    from makemore.runtime.constraints import compile_constraints

    min_len = min(min_len, max_len)
    vocab, table = Vocab("abc"), np.random.default_rng(seed).normal(size=(4, 4)) * 2
    automaton = compile_constraints(SamplingOptions(max_len=max_len, min_len=min_len), vocab, max_len)
    decoder = WindowDecoder(lambda context: table[context[:, -1]], 1)
    entered: list[bool] = []

    class Watched(Finished):
        def add(self, log_prob: float, name: str) -> None:  # each name rebuilt is offered here: did it enter?
            before, floor = list(self.heap), self.floor
            super().add(log_prob, name)
            entered.append(self.heap != before or log_prob == floor)  # (a tie with the n-th: its name decides)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("makemore.runtime.beam.Finished", Watched)
        found = search(decoder, automaton, [], max_len, width, n, vocab.decode)
    assert sorted(found) == sorted(reference_search(table, max_len, width, n, min_len))
    assert all(entered)  # a name less likely than the n-th best is never rebuilt
