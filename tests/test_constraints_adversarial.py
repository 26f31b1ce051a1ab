"""Adversarial regressions for the constraint flags (issue 21): `match` means exactly what Python's re.fullmatch
means, over every vocabulary, or the request is refused before sampling."""

from __future__ import annotations

import itertools
import re
import time
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from makemore.data import Vocab
from makemore.data.bounds import MAX_REGEX_WORK
from makemore.runtime.constraints import CRAWL, Dfa, compile_constraints, prune, regex
from makemore.runtime.options import SamplingError, SamplingOptions

VOCABS = [Vocab("abcdeiklmnorsy"), Vocab("abAB-. é]{}^\\")]
TRICKY = [
    "a",
    "b",
    "A",
    "é",
    ".",
    "]",
    "{",
    "}",
    "-",
    "\\]",
    "\\{",
    "[]a]",
    "[^]a]",
    "[a-]",
    "[^^]",
    "[\\w]",
    "\\w",
    "\\W",
    "\\d",
    "\\s",
    "\\S",
    "[^a]",
    "a{}",
    "a{,}",
    "a{b}",
    "a{ 1}",
    "(?=a)",
    "(?!a)",
    "(?=.*b)",
    "(?!b)",
    "(?i:a)",
    "(?-i:a)",
    "(?s:.)",
]


def accepts(dfa: Dfa, vocab: Vocab, name: str) -> bool:
    """Whether the automaton accepts `name`."""
    state = 0
    for ch in name:
        state = int(dfa.trans[state, vocab.index[ch]])
        if state < 0:
            return False
    return bool(dfa.accept[state])


def patterns() -> st.SearchStrategy[str]:
    """Expressions mixing the tokens Python's re and interegular used to read differently."""
    atom = st.sampled_from(TRICKY)
    inner = st.recursive(
        atom,
        lambda part: st.one_of(
            st.tuples(part, part).map("".join),
            st.tuples(part, part).map(lambda p: f"({p[0]}|{p[1]})"),
            part.map(lambda r: f"(?:{r})*"),
            part.map(lambda r: f"({r})?"),
        ),
        max_leaves=5,
    )
    return st.tuples(st.sampled_from(["", "(?i)", "(?s)"]), inner).map("".join)


def agree(pattern: str, vocab: Vocab, longest: int = 3) -> None:
    """The automaton accepts exactly the names re.fullmatch matches, up to `longest` characters (or refuses)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            machine = re.compile(pattern)
        except re.error:
            return
    try:
        dfa = prune(regex(pattern, vocab), 64)
    except SamplingError:
        return
    for length in range(1, longest + 1):
        for chars in itertools.product(vocab.chars, repeat=length):
            name = "".join(chars)
            assert accepts(dfa, vocab, name) == bool(machine.fullmatch(name)), (pattern, name)


@pytest.mark.parametrize(
    "pattern",
    [
        "[]a]",
        "[^]a]",
        "a{}",
        "a{b}",
        "a(?!b)",
        "a(?=b)",
        "a(?!b).*",
        "(?!ab).*",
        "(?i)(?-i:a)b",
        "\\w+",
        "(?:(a|(?=.*b).))*",
    ],
)
@pytest.mark.parametrize("vocab", VOCABS, ids=["ascii", "mixed"])
def test_match_reads_like_re(pattern: str, vocab: Vocab) -> None:
    """Each of these was read differently by interegular: a class opening with ], braces that are no repeat, a
    lookahead at the end, a flag turned off in a group, \\w over a non-ASCII vocabulary."""
    agree(pattern, vocab)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pattern=patterns(), which=st.integers(0, len(VOCABS) - 1))
def test_match_agrees_with_re_fullmatch(pattern: str, which: int) -> None:
    """For every expression the automaton is built for, it accepts exactly what re.fullmatch matches."""
    agree(pattern, VOCABS[which], longest=2)


@pytest.mark.parametrize("pattern", ["a++", "(?>a)b", "(?<=a)b", "(a)\\1", "^a", "a$", "\\ba"])
def test_match_refuses_what_has_no_automaton(pattern: str) -> None:
    """Possessive repeats, atomic groups, lookbehinds, backreferences and anchors are refused, naming match."""
    with pytest.raises(SamplingError) as caught:
        regex(pattern, VOCABS[0])
    assert caught.value.field == "match"


def test_verbose_and_comments_read_like_re() -> None:
    """(?x) and (?#...) are Python's syntax: read as re reads them (interegular alone refused or crashed)."""
    agree("(?x) a b (?#the end)", VOCABS[0])
    assert accepts(prune(regex("(?x) a b", VOCABS[0]), 64), VOCABS[0], "ab")


@pytest.mark.parametrize(
    "pattern",
    ["(a{1,64}){1,64}", "(a{1,99}){1,99}", "((a{1,15}){1,15}){1,15}", "(((a{1,6}){1,6}){1,6}){1,6}"],
)
def test_nested_repeats_are_refused_by_work_not_after_minutes(pattern: str) -> None:
    """A short expression whose automata stay under MAX_REGEX_STATES states can still take minutes to build (each
    state a large nested set): the work is bounded, the expression refused naming match within seconds."""
    started = time.monotonic()
    with pytest.raises(SamplingError) as caught:
        regex(pattern, Vocab("abcdefghijklmnopqrstuvwxyz"))
    assert caught.value.field == "match"
    assert CRAWL.work <= MAX_REGEX_WORK + 64 * 4096 and CRAWL.work_limit is None
    assert time.monotonic() - started < 20


def test_big_vocabularies_are_refused_before_work_per_character() -> None:
    """A model of 100,000 characters: an expression whose automaton cannot fit AUTOMATON_CELLS is refused before
    the table of states x characters is walked (it was a Python loop of 227 million steps), and one that fits is
    built in seconds."""
    big = Vocab("".join(chr(0x4E00 + i) for i in range(20_000)) + "".join(chr(0x20000 + i) for i in range(80_000)))
    started = time.monotonic()
    with pytest.raises(SamplingError) as caught:
        regex("(.*\u4e00.{5}){3}", big)
    assert caught.value.field == "match"
    dfa = regex("." * 30 + "[\u4e00-\u4e09]", big)
    assert dfa.states == 32 and dfa.trans[30, big.index["\u4e05"]] == 31 and dfa.trans[30, big.index["\u4e0a"]] < 0
    assert time.monotonic() - started < 20


READ_AS_RE = ["[]a]+.*", "a(?!b).*", "(?i)(?-i:m).*", "(?x) k a .*", "(?=.*n).*", "a{}|.*e"]


def test_cli_and_server_names_match_as_re_fullmatch(model_files, tmp_path) -> None:
    """End to end over a real model: mm-gen and /v1/generate (sampling and beam) print only names re.fullmatch
    matches, for expressions interegular alone read differently; what has no automaton is one error line / a 422."""
    from clirun import assert_usage_error, run
    from makemore.runtime.onnx_sampler import OnnxSampler
    from makemore.runtime.serve.app import Limits, create_app
    from starlette.testclient import TestClient

    onnx_path = model_files["mlp"][1]
    for pattern in READ_AS_RE:
        for extra in ([], ["--beam", "4"]):
            result = run("mm-gen", onnx_path, "--n", "40", "--seed", "1", "--match", pattern, *extra)
            assert result.returncode == 0, result.stderr
            names = [line.split("\t")[-1] for line in result.stdout.splitlines()]
            assert names and all(re.fullmatch(pattern, name) for name in names), (pattern, names)
    for bad in ("a++", "(?>a)", "(?<=a)b", "^a"):
        assert_usage_error(run("mm-gen", onnx_path, "--match", bad))
    with TestClient(create_app(OnnxSampler(onnx_path), limits=Limits(max_n=100)), raise_server_exceptions=False) as c:
        for pattern in READ_AS_RE:
            for extra in ({}, {"beam": 4}):
                answer = c.post("/v1/generate", json={"n": 20, "seed": 2, "match": pattern, **extra})
                assert answer.status_code == 200, answer.text
                assert all(re.fullmatch(pattern, name) for name in answer.json()["names"]), pattern
        refused = c.post("/v1/generate", json={"n": 2, "match": "(a{1,64}){1,64}"})
        assert refused.status_code == 422 and refused.json()["field"] == "match", refused.text


@pytest.mark.parametrize("field", ["contains", "ends_with"])
def test_string_constraints_longer_than_max_len_are_refused_at_once(field: str) -> None:
    """A contains / ends_with longer than max_len made a chain automaton whose pruning took time quadratic in its
    length (53 s for 8,000 characters): refused at once, naming the field."""
    started = time.monotonic()
    with pytest.raises(SamplingError) as caught:
        compile_constraints(SamplingOptions(**{field: "a" * 50_000}), VOCABS[0], 15)
    assert caught.value.field == field and "longer" in str(caught.value)
    assert time.monotonic() - started < 5


def test_long_chains_prune_within_max_len_passes() -> None:
    """Whatever the automaton (a regular expression's chain of 4,000 states, an excluded name of 60,000
    characters), pruning and the product take passes bounded by max_len, not by the automaton's depth."""
    started = time.monotonic()
    with pytest.raises(SamplingError) as caught:
        compile_constraints(SamplingOptions(match="a{4000}"), VOCABS[0], 15)
    assert caught.value.field == "match"
    options = SamplingOptions(exclude=("a" * 60_000, "ab"), max_len=20, min_len=2)
    automaton = compile_constraints(options, VOCABS[0], 20)
    assert automaton is not None and automaton.walk(VOCABS[0].encode("ab")) != automaton.moves.shape[0] - 1
    assert not automaton.accept[automaton.walk(VOCABS[0].encode("ab"))]
    assert time.monotonic() - started < 10


def test_pruning_work_is_checked_before_it_is_done() -> None:
    """A chain of 4,096 states over a 1,000-character vocabulary with a large max_len was pruned (thousands of
    passes over 4 million cells) before its size was checked: now refused first, naming match."""
    wide = Vocab("".join(chr(0x4E00 + i) for i in range(999)))
    started = time.monotonic()
    with pytest.raises(SamplingError) as caught:
        compile_constraints(SamplingOptions(match="." * 64 + "(..){0,2000}", max_len=5000), wide, 5000)
    assert caught.value.field == "match"
    assert time.monotonic() - started < 10
