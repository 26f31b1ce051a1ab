"""Exact constraints by masked decoding (runtime/constraints.py): every name satisfies every constraint, or the
request is refused before sampling; no constraint, no change."""

from __future__ import annotations

import re

import numpy as np
import pytest
from clirun import assert_usage_error, run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from makemore.data import Vocab
from makemore.runtime.chunks import ChunkDraws, ChunkSpan
from makemore.runtime.constraints import compile_constraints
from makemore.runtime.options import SamplingError, SamplingOptions
from makemore.runtime.sampling import KeptMass, WindowDecoder, sample_chunk

VOCAB = Vocab("abcdeiklmnorsy")
LETTERS = "aeiklmnrsy"


def regexes() -> st.SearchStrategy[str]:
    """Small regular expressions over a few letters, in the syntax Python's re and interegular read alike."""
    atom = st.sampled_from([*LETTERS, ".", "[aeiou]", "[k-n]", "[^ae]"])
    return st.recursive(
        atom,
        lambda inner: st.one_of(
            st.tuples(inner, inner).map("".join),
            st.tuples(inner, inner).map(lambda p: f"({p[0]}|{p[1]})"),
            inner.map(lambda r: f"({r})*"),
            inner.map(lambda r: f"({r})+"),
            inner.map(lambda r: f"({r})?"),
            inner.map(lambda r: f"({r}){{1,2}}"),
        ),
        max_leaves=6,
    )


def constraints() -> st.SearchStrategy[dict]:
    """Random requests: any mix of prefix, min_len, max_len, ends_with, contains, match and exclude."""
    text = st.text(alphabet=LETTERS, max_size=3)
    return st.fixed_dictionaries(
        {},
        optional={
            "prefix": text,
            "min_len": st.integers(1, 8),
            "max_len": st.integers(1, 10),
            "ends_with": text,
            "contains": text,
            "match": regexes(),
            "exclude": st.lists(st.text(alphabet=LETTERS, min_size=1, max_size=4), max_size=30),
        },
    )


def satisfies(name: str, request: dict, max_len: int) -> bool:
    """Whether `name` meets every constraint of `request`, checked with Python's own string and re functions."""
    return (
        request.get("min_len", 1) <= len(name) <= max_len
        and name.startswith(request.get("prefix", ""))
        and name.endswith(request.get("ends_with", ""))
        and request.get("contains", "") in name
        and re.fullmatch(request.get("match", "") or "(?s:.*)", name) is not None
        and name not in set(request.get("exclude", []))
    )


def bigram_logits(seed: int):
    """A model-free logits function: a fixed random table of the last character's logits."""
    table = np.random.default_rng(seed).normal(0, 2, (VOCAB.size, VOCAB.size)).astype(np.float32)
    return lambda context: table[context[:, -1]]


def fake_names(options: SamplingOptions, seed: int, rows: int = 200) -> list[str]:
    """Names of the one sampling loop over a bigram table, with the request's automaton."""
    max_len = options.max_len or 10
    automaton = compile_constraints(options, VOCAB, max_len)
    decoder = WindowDecoder(bigram_logits(seed), 1)
    draws = ChunkDraws(seed, ChunkSpan(0, 0, rows))
    tokens = sample_chunk(decoder, draws, options.prefix_ids(VOCAB), max_len, options, automaton)
    return VOCAB.decode_rows(tokens)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=constraints(), seed=st.integers(0, 2**32), temperature=st.sampled_from([0.0, 0.5, 1.0, 2.0]))
def test_every_name_satisfies_the_request_or_it_is_refused(request, seed, temperature) -> None:
    try:
        options = SamplingOptions(temperature=temperature, top_k=4 if seed % 2 else None, **request)
        names = fake_names(options, seed)
    except SamplingError as err:
        assert err.field in {"prefix", "min_len", "ends_with", "contains", "match", "exclude"}, err
        assert not any(satisfies(name, request, request.get("max_len", 10)) for name in all_names(request)), err
        return
    assert names and all(satisfies(name, request, request.get("max_len", 10)) for name in names), names


def all_names(request: dict) -> list[str]:
    """Every name over LETTERS of up to 4 characters, with the prefix (a brute-force witness search for refusals:
    a refusal with a short name that satisfies everything is wrong)."""
    prefix = request.get("prefix", "")
    names, level = [], [prefix]
    for _ in range(5):
        names.extend(name for name in level if name)
        level = [name + ch for name in level for ch in LETTERS]
    return names


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32), temperature=st.sampled_from([0.0, 0.7, 1.0, 1.8]))
def test_a_constraint_every_name_meets_changes_no_name(seed, temperature) -> None:
    """A compiled automaton that admits every name masks nothing the plain loop would draw: the same names."""
    plain = SamplingOptions(temperature=temperature, max_len=9)
    assert compile_constraints(plain, VOCAB, 9) is None  # no constraint: no automaton, the loop as it was
    masked = SamplingOptions(temperature=temperature, max_len=9, match=f"[{VOCAB.chars}]*")
    assert compile_constraints(masked, VOCAB, 9) is not None
    assert fake_names(masked, seed) == fake_names(plain, seed)


def test_the_refusal_names_the_constraint_that_leaves_no_name() -> None:
    cases = {
        "ends_with": {"ends_with": "ab", "max_len": 1},
        "match": {"ends_with": "a", "match": "b*"},
        "contains": {"prefix": "k", "contains": "ab", "max_len": 2},
        "exclude": {"max_len": 1, "exclude": list(VOCAB.chars)},
    }
    cases_in_order = [*cases.items(), ("match", {"min_len": 4, "match": "ab?"})]  # min_len joins first
    for field, request in cases_in_order:
        with pytest.raises(SamplingError) as err:
            compile_constraints(SamplingOptions(**request), VOCAB, request.get("max_len", 10))
        assert err.value.field == field, (field, err.value)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        ({"match": "a("}, "match"),
        ({"match": r"(a)\1"}, "match"),  # a back-reference: no automaton
        ({"match": "a" * 201}, "match"),
        ({"ends_with": "z"}, "ends_with"),
        ({"min_len": 11, "max_len": 10}, "min_len"),
        ({"exclude": ["a" * 1000] * 2000}, "exclude"),  # 2,000,000 characters (distinct or not)
        ({"exclude": "abc"}, "exclude"),  # not a list of names
    ],
)
def test_bad_constraints_are_refused_naming_the_field(request_, field) -> None:
    with pytest.raises(SamplingError) as err:
        compile_constraints(SamplingOptions(**request_), VOCAB, 10)
    assert err.value.field == field


def test_an_automaton_past_its_bound_is_refused_not_built() -> None:
    """A regular expression whose DFA explodes (the 16th character from the end is an a), a counted repeat, and an
    exclude trie too big for a large vocabulary stop at their bounds, at once."""
    import time

    began = time.perf_counter()
    for pattern in ("(.*a.{16})", "a{9999}"):
        with pytest.raises(SamplingError) as err:
            compile_constraints(SamplingOptions(match=pattern), VOCAB, 40)
        assert err.value.field == "match"
    big = Vocab("".join(chr(c) for c in range(0x4E00, 0x4E00 + 3000)))
    names = ["".join(chr(0x4E00 + (i * 7 + j) % 3000) for j in range(6)) for i in range(1000)]
    with pytest.raises(SamplingError) as err:
        compile_constraints(SamplingOptions(exclude=names), big, 40)
    assert err.value.field == "exclude"
    assert time.perf_counter() - began < 20


def test_the_kept_share_estimates_the_constraint_probability() -> None:
    """Under the bigram table, P(name ends with a) by importance weights agrees with plain sampling's frequency."""
    options = SamplingOptions(max_len=8, ends_with="a")
    automaton = compile_constraints(options, VOCAB, 8)
    mass = KeptMass()
    for chunk in range(4):
        draws = ChunkDraws(1, ChunkSpan(chunk, 0, 4096))
        kept = np.ones(4096)
        sample_chunk(WindowDecoder(bigram_logits(3), 1), draws, [], 8, options, automaton, kept)
        mass.add(kept)
    plain = []
    for chunk in range(4):
        draws = ChunkDraws(2, ChunkSpan(chunk, 0, 4096))
        plain += VOCAB.decode_rows(sample_chunk(WindowDecoder(bigram_logits(3), 1), draws, [], 8, SamplingOptions()))
    frequency = np.mean([name.endswith("a") for name in plain])
    assert mass.share is not None and frequency > 0.01
    assert abs(mass.share - frequency) < 0.15 * frequency


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request=constraints(), seed=st.integers(0, 2**32))
@pytest.mark.parametrize("kind", ["mlp", "gru"])
def test_a_real_model_meets_random_constraints(samplers, kind, request, seed) -> None:
    onnx_sampler = samplers[kind][1]
    try:
        names = onnx_sampler.sample(50, seed=seed, **request)
    except SamplingError as err:
        assert err.field in {"prefix", "min_len", "ends_with", "contains", "match", "exclude"}, err
        return
    max_len = request.get("max_len", onnx_sampler.info.max_len)
    assert len(names) == 50 and all(satisfies(name, request, max_len) for name in names), names


@pytest.fixture(scope="module")
def samplers(model_files):
    from makemore.runtime.onnx_sampler import OnnxSampler
    from makemore.train.sampler import TorchSampler

    return {kind: (TorchSampler(model_files[kind][0]), OnnxSampler(model_files[kind][1])) for kind in ("mlp", "gru")}


@pytest.mark.parametrize("kind", ["mlp", "gru"])
def test_unconstrained_names_are_unchanged_and_torch_matches_onnxruntime(samplers, kind) -> None:
    torch_sampler, onnx_sampler = samplers[kind]
    request = {"seed": 7, "min_len": 4, "ends_with": "a", "contains": "n", "match": "[a-m].*", "exclude": ["anna"]}
    expected, actual = torch_sampler.sample(500, **request), onnx_sampler.sample(500, **request)
    assert sum(a != b for a, b in zip(actual, expected, strict=True)) <= 1
    assert len(set(actual)) > 100 and all(satisfies(name, request, onnx_sampler.info.max_len) for name in actual)
    every = f"[{onnx_sampler.vocab.chars}]*"  # a compiled automaton that admits every name
    assert onnx_sampler.sample(500, seed=7, match=every) == onnx_sampler.sample(500, seed=7)


def test_cli_constraints_and_their_errors(model_files, tmp_path) -> None:
    onnx_path = model_files["mlp"][1]
    exclude = tmp_path / "exclude.txt"
    exclude.write_text("kara\nkayla\n", encoding="utf-8")
    args = ["--n", "200", "--seed", "3", "--prefix", "ka", "--ends-with", "a", "--min-len", "4", "--match", "ka.*"]
    result = run("mm-gen", onnx_path, *args, "--exclude", exclude, "--stats")
    assert result.returncode == 0, result.stderr
    names = result.stdout.split()
    assert len(names) == 200 and all(n.startswith("ka") and n.endswith("a") and len(n) >= 4 for n in names)
    assert not {"kara", "kayla"} & set(names)
    assert "constraints keep ~" in result.stderr
    unknown = tmp_path / "known.txt"
    unknown.write_text("zzzzzz\n", encoding="utf-8")  # --novel-vs of no name it makes: its first round is the request
    novel = run("mm-gen", onnx_path, *args, "--exclude", exclude, "--stats", "--novel-vs", unknown)
    assert novel.returncode == 0 and novel.stdout == result.stdout, novel.stderr
    assert novel.stderr.splitlines()[-1] == result.stderr.splitlines()[-1]  # the same estimate of what they keep
    for bad in (["--match", "a("], ["--ends-with", "zzz", "--max-len", "2"], ["--contains", "\u00e9"]):
        assert_usage_error(run("mm-gen", onnx_path, *bad))
    too_many = tmp_path / "many.txt"
    too_many.write_text("ab\n" * 100_001, encoding="utf-8")
    assert_usage_error(run("mm-gen", onnx_path, "--exclude", too_many))
    assert_usage_error(run("mm-gen", onnx_path, "--beam", "4", "--novel-vs", exclude))


def test_server_constraints_beam_and_refusals(samplers) -> None:
    from makemore.runtime.serve.app import Limits, create_app
    from starlette.testclient import TestClient

    app = create_app(samplers["mlp"][1], limits=Limits(max_n=100, max_len=40))
    with TestClient(app, raise_server_exceptions=False) as client:
        body = {"n": 30, "seed": 1, "ends_with": "n", "exclude": ["ann"], "min_len": 3}
        answer = client.post("/v1/generate", json=body)
        assert answer.status_code == 200, answer.text
        assert all(n.endswith("n") and n != "ann" and len(n) >= 3 for n in answer.json()["names"])
        beam = client.post("/v1/generate", json={"n": 5, "beam": 4, "contains": "li"}).json()
        assert len(beam["names"]) == 5 and beam["log_probs"] == sorted(beam["log_probs"], reverse=True)
        for bad, field in (
            ({"ends_with": "zz", "max_len": 1}, "ends_with"),
            ({"match": "a("}, "match"),
            ({"exclude": ["a", 3]}, "exclude"),
            ({"exclude": ["a"] * 100_001}, None),  # past the body limit or the bound: never a 5xx
            ({"beam": 0}, "beam"),
            ({"beam": 2, "novel": True}, "novel"),
        ):
            refused = client.post("/v1/generate", json=bad)
            assert 400 <= refused.status_code < 500, (bad, refused.text)
            assert field is None or refused.json()["field"] == field, (bad, refused.text)


def test_classes_read_as_re_reads_them_on_non_ascii_vocabularies() -> None:
    """\\w, \\d and \\s are Unicode classes to Python's re: the automaton spells them out over the vocabulary."""
    accented = Vocab("abcé")
    automaton = compile_constraints(SamplingOptions(match=r"\w+"), accented, 5)
    assert automaton is not None and automaton.walk(accented.encode("é")) != automaton.moves.shape[0] - 1
    assert compile_constraints(SamplingOptions(match=r"[a-cé]+(\\w)?"), accented, 5) is not None  # an escaped \
    names = fake_names(SamplingOptions(match=r"\w+a", max_len=6), seed=1)  # ASCII: both read \w alike
    assert all(re.fullmatch(r"\w+a", name) for name in names)


def test_novel_rounds_that_cannot_finish_stop_early(samplers, monkeypatch) -> None:
    """A greedy request makes the same known name in every round: one round of 2,000 draws, not 100, then masked
    decoding; a rate of new names that the rounds can meet (1% for 100 rounds) never stops them early."""
    from makemore.runtime import novelty

    sampler = samplers["mlp"][1]
    options = SamplingOptions(seed=5, temperature=0)
    known = set(sampler.sample(5, options))
    assert len(known) == 1  # greedy: one name
    calls = []
    real = sampler.sample_chunks
    monkeypatch.setattr(sampler, "sample_chunks", lambda *a, **k: calls.append(k.get("start", 0)) or real(*a, **k))
    names = novelty.novel_names(sampler, 2000, known, options)
    assert len(names) == 2000 and not set(names) & known
    assert calls == [0, novelty.MAX_NOVEL_ROUNDS * 2000]  # the first round, then the masked rest
    from makemore.data.bounds import Bound
    from makemore.runtime import options as options_module

    monkeypatch.setitem(options_module.BOUNDS, "exclude", Bound(tuple, 0, 0))  # no masked rest: it gives up
    with pytest.raises(SamplingError, match="found only 0 novel names in 1 round of 2000 samples"):
        novelty.novel_names(sampler, 2000, known, options)
    for n in (1, 7, 100, 2000, 100_000):
        for rounds in range(1, novelty.MAX_NOVEL_ROUNDS):
            found = min(n - 1, round(0.01 * rounds * n))
            assert not novelty.rounds_cannot_finish(n, found, rounds), (n, found, rounds)


def test_novel_names_come_by_rounds_then_masked_decoding_backs_them(samplers, monkeypatch) -> None:
    """--novel-vs and the server's `novel`: rounds of the model's own names with the known ones dropped; where the
    rounds run out, the rest are drawn with the known names as an exclude set; past the exclude bounds, one error."""
    from makemore.runtime import novelty

    sampler = samplers["mlp"][1]
    options = SamplingOptions(seed=5, ends_with="a")
    known = set(sampler.sample(3000, options)) | {"ann€"}  # a name the vocabulary cannot make is never drawn
    first_round = [name for name in sampler.sample(200, options) if name not in known]
    monkeypatch.setattr(novelty, "MAX_NOVEL_ROUNDS", 1)
    names = novelty.novel_names(sampler, 200, known, options)
    assert names[: len(first_round)] == first_round and len(first_round) < 200  # the masked decoding had work to do
    assert len(names) == 200 and not set(names) & known and all(name.endswith("a") for name in names)
    masked = SamplingOptions.of(options, exclude=tuple(sorted(known - {"ann€"})))
    rest = [name for chunk in sampler.sample_chunks(200 - len(first_round), masked, start=200) for name in chunk]
    assert names[len(first_round) :] == rest  # names 200 on of the masked request: after the one round's
    from makemore.data.bounds import Bound
    from makemore.runtime import options as options_module

    monkeypatch.setitem(options_module.BOUNDS, "exclude", Bound(tuple, 0, 10))  # a known set past the bounds
    with pytest.raises(SamplingError, match="found only"):
        novelty.novel_names(sampler, 200, known, options)


def test_the_last_automaton_is_kept_for_the_same_constraints_only() -> None:
    """A server asked again for the same constraints (its `novel` names) compiles them once; one automaton is kept."""
    first = compile_constraints(SamplingOptions(seed=1, exclude=("anna", "bob")), VOCAB, 8)
    again = compile_constraints(SamplingOptions(seed=2, temperature=0.5, exclude=("bob", "anna")), VOCAB, 8)
    assert again is first
    other = compile_constraints(SamplingOptions(exclude=("anna",)), VOCAB, 8)
    assert other is not first and compile_constraints(SamplingOptions(exclude=("anna",)), VOCAB, 9) is not other
    assert compile_constraints(SamplingOptions(exclude=("anna", "bob")), VOCAB, 8) is not first  # one kept at a time
