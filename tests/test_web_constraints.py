"""The page's constraints (runtime/web/static/constraints.js) against runtime/constraints.py: the same allowed masks
along the same names, the same refusals, the same option messages (under node); and in Chromium, the page's
constraint fields give exactly mm-gen's names for the same seed and constraints."""

from __future__ import annotations

import random

import numpy as np
import pytest
from makemore.contract import ModelInfo
from makemore.data import Vocab
from makemore.data.bounds import AUTOMATON_CELLS, AUTOMATON_WORK, MAX_EXCLUDE_CHARS, SAMPLING, Bound
from makemore.runtime.constraints import compile_constraints
from makemore.runtime.options import SamplingError, SamplingOptions
from makemore.runtime.web.site import MAX_COUNT
from nodejs import run_node
from webfiles import open_site, same_names, site_info

LIMITS = {"automaton_cells": AUTOMATON_CELLS, "automaton_work": AUTOMATON_WORK, "exclude_chars": MAX_EXCLUDE_CHARS}
WALKS = 6  # random names walked through each automaton

MASKS_SCRIPT = """
import { readFileSync } from "node:fs";
import { compileConstraints, Constraint } from "./constraints.js";
const cases = JSON.parse(readFileSync(0, "utf8"));
const out = cases.map(({ vocab, maxLen, request, walks, limits }) => {
  let auto;
  try {
    auto = compileConstraints(request, vocab, maxLen, limits);
  } catch (err) {
    return { error: err.message, field: err.field ?? null };
  }
  if (auto === null) return { none: true };
  return {
    masks: walks.map((walk) => {
      const runner = new Constraint(auto, 1);
      return walk.map((pick) => {
        const mask = Array.from(runner.allowed());
        runner.advance([pick], [pick !== 0]);
        return mask;
      });
    }),
  };
});
console.log(JSON.stringify(out));
"""


def random_request(rng: random.Random, letters: str) -> dict:
    """A random mix of prefix, min_len, max_len, ends_with, contains and exclude over `letters` (and, now and then,
    a character outside them)."""

    def text(most: int) -> str:
        pool = letters + ("Z" if rng.random() < 0.05 else "")
        return "".join(rng.choice(pool) for _ in range(rng.randint(0, most)))

    max_len = rng.randint(1, 9)
    request: dict = {"max_len": max_len, "prefix": text(2)[:max_len]}
    if rng.random() < 0.5:
        request["min_len"] = rng.randint(1, max_len)
    for field in ("ends_with", "contains"):
        if rng.random() < 0.6:
            request[field] = text(3)
    if rng.random() < 0.5:
        request["exclude"] = [text(4) or letters[0] for _ in range(rng.randint(1, 25))]
    return request


def python_walks(options: SamplingOptions, vocab: Vocab, rng: random.Random) -> tuple[list, list]:
    """Random names drawn through Python's automaton (each pick among the allowed characters, the last a boundary
    or a dead end): the picks and the mask before each."""
    auto = compile_constraints(options, vocab, options.max_len)
    assert auto is not None
    walks, masks = [], []
    for _ in range(WALKS):
        runner = auto.runner()
        runner.start(1)
        picks: list[int] = []
        steps: list[list[int]] = []
        for _ in range(len(options.prefix), options.max_len):
            mask = runner.allowed()[0]
            steps.append(mask.astype(int).tolist())
            choices = np.flatnonzero(mask).tolist()
            pick = rng.choice(choices) if choices else 0
            picks.append(pick)
            runner.advance(np.array([pick]))
            if pick == 0:
                break
        walks.append(picks)
        masks.append(steps)
    return walks, masks


def python_case(request: dict, vocab: Vocab, rng: random.Random) -> tuple[dict, dict]:
    """(the node case, what Python answers: an error and its field, no automaton, or the masks along its walks)."""
    options = SamplingOptions(**request)
    js_request = {
        "min_len": options.min_len,
        "ends_with": options.ends_with,
        "contains": options.contains,
        "exclude": list(options.exclude),
        "prefix": options.prefix,
        "prefixIds": [vocab.index.get(ch, 0) for ch in options.prefix],
    }
    case = {"vocab": vocab.chars, "maxLen": options.max_len, "request": js_request, "walks": [], "limits": LIMITS}
    try:
        auto = compile_constraints(options, vocab, options.max_len)
    except SamplingError as err:
        return case, {"error": str(err), "field": err.field}
    if auto is None:
        return case, {"none": True}
    walks, masks = python_walks(options, vocab, rng)
    return {**case, "walks": walks}, {"masks": masks}


def test_masks_and_refusals_equal_pythons(tmp_path) -> None:
    rng = random.Random(21)
    cases, want = [], []
    for vocab in (Vocab("abc"), Vocab("aeiklmnrsy"), Vocab("ab")):
        for _ in range(120):
            request = random_request(rng, vocab.chars)
            if "Z" in request["prefix"]:
                request["prefix"] = request["prefix"].replace("Z", vocab.chars[0])
            case, answer = python_case(request, vocab, rng)
            cases.append(case)
            want.append(answer)
    kinds = {next(iter(answer)) for answer in want}
    assert kinds == {"error", "none", "masks"}, kinds  # the random set holds refusals, no-ops and automata
    assert sum("outside the model's vocabulary" in answer.get("error", "") for answer in want) > 0
    got = run_node(tmp_path, MASKS_SCRIPT, cases)
    for case, mine, theirs in zip(cases, got, want, strict=True):
        assert mine == theirs, case["request"]


def test_too_big_an_automaton_is_refused_as_in_python(tmp_path) -> None:
    vocab = Vocab("abcdefghijklmnopqrstuvwxyz")
    rng = random.Random(3)
    names = ["".join(rng.choice(vocab.chars) for _ in range(5)) for _ in range(300)]
    cases, want = [], []
    for request in (
        {"max_len": 100_000, "exclude": names},  # the exclude trie times the lengths passes AUTOMATON_WORK
        {"max_len": 100_000, "contains": "abcdefghij" * 40},  # the KMP automaton alone
        {"max_len": 20_000, "ends_with": "ab" * 30, "contains": "ba" * 30, "exclude": names},  # their product
    ):
        case, answer = python_case(request, vocab, rng)
        assert "too big" in answer.get("error", ""), answer
        cases.append(case)
        want.append(answer)
    assert run_node(tmp_path, MASKS_SCRIPT, cases) == want


EXCLUDE_TEXT = " bo \n\nanna\r\nbo\n\x1c\u3000ka\x85\u2028\n\ufeff\n\t\x0b\n"  # Python's whitespace, and not

OPTIONS_SCRIPT = """
import { readFileSync } from "node:fs";
import { parseOptions } from "./options.js";
const { site, requests } = JSON.parse(readFileSync(0, "utf8"));
const out = requests.map((fields) => {
  try {
    const options = parseOptions({ count: "5", temperature: "1", seed: "1", ...fields }, site);
    return { maxLen: options.maxLen, constraints: options.constraints };
  } catch (err) {
    return { error: err.message };
  }
});
console.log(JSON.stringify(out));
"""


def stand_in_site() -> dict:
    """What parseOptions reads of a site's JSON: a-z, max_len 15, names of at most 40 characters, every bound."""
    bounds = {"count": Bound(int, 1, MAX_COUNT).to_json(), **{k: b.to_json() for k, b in SAMPLING.items()}}
    return {
        "vocab": "abcdefghijklmnopqrstuvwxyz",
        "max_len": 15,
        "longest_name": 40,
        "bounds": bounds,
        "limits": LIMITS,
    }


def test_constraint_fields_are_checked_as_sampling_options_are(tmp_path) -> None:
    """Each bad constraint field gets SamplingOptions' own message (from the same bounds); good ones parse to the
    values SamplingOptions keeps (exclude: stripped lines, blank ones dropped, distinct and sorted)."""
    site = stand_in_site()
    bad = [
        ({"min_len": "0"}, "min_len must be a whole number from 1 to 100,000"),
        ({"min_len": "x"}, "min_len must be a whole number"),
        ({"max_len": "0"}, "max_len must be a whole number from 1 to 100,000"),
        ({"max_len": "41"}, "max_len must be at most 40 for this model, got 41"),
        ({"min_len": "16"}, str(python_error(min_len=16, max_len=15))),
        ({"min_len": "9", "max_len": "8"}, str(python_error(min_len=9, max_len=8))),
        ({"ends_with": "a" * 100_001}, str(python_error(ends_with="a" * 100_001))),
        ({"contains": "b" * 100_001}, str(python_error(contains="b" * 100_001))),
        ({"exclude": "\n".join(["ab"] * 100_001)}, str(python_error(exclude=("ab",) * 100_001))),
        ({"exclude": "x" * (MAX_EXCLUDE_CHARS + 1)}, str(python_error(exclude=("x" * (MAX_EXCLUDE_CHARS + 1),)))),
        ({"prefix": "abc", "max_len": "2"}, str(python_error(prefix="abc", max_len=2))),
        *(({"prefix": prefix}, prefix_error(prefix)) for prefix in ("A", "Zé'x", "b'\"Q", "\U0001f600\uffe0A" * 30)),
        *(({"prefix": p}, prefix_error(p)) for p in ("\u200b", "x\xa0y", "\xad", "\U0001f600\uff01", "\U000e0001")),
    ]
    good = {"min_len": " 3 ", "max_len": "12", "ends_with": "na", "contains": "r", "exclude": EXCLUDE_TEXT}
    got = run_node(tmp_path, OPTIONS_SCRIPT, {"site": site, "requests": [fields for fields, _ in bad] + [good]})
    for (fields, message), answer in zip(bad, got, strict=False):
        assert message in answer.get("error", ""), (str(fields)[:80], answer)
    lines = [line.strip() for line in EXCLUDE_TEXT.split("\n")]  # data.reader's way: split at \n, str.strip
    options = SamplingOptions(min_len=3, max_len=12, ends_with="na", contains="r", exclude=[s for s in lines if s])
    constraints = {"min_len": 3, "ends_with": "na", "contains": "r", "exclude": list(options.exclude)}
    assert got[-1] == {"maxLen": 12, "constraints": constraints}


def prefix_error(prefix: str) -> str:
    """mm-gen's message for a prefix with characters outside a-z (sorted by code point, quoted as Python quotes)."""
    try:
        SamplingOptions(prefix=prefix).prefix_ids(Vocab("abcdefghijklmnopqrstuvwxyz"))
    except SamplingError as err:
        return str(err)
    raise AssertionError(f"no error for {prefix!r}")


def python_error(**values) -> SamplingError:
    """SamplingOptions' error for `values` (max_len 15, the stand-in site's default, unless given)."""
    try:
        SamplingOptions(**{"max_len": 15, **values})
    except SamplingError as err:
        return err
    raise AssertionError(f"no error for {values}")


@pytest.mark.browser
@pytest.mark.parametrize("kind", ["mlp", "gru"])
def test_page_constraints_give_mm_gens_names(browser, model_files, tmp_path, kind) -> None:
    from clirun import run
    from loopback import static_server
    from makemore.runtime.onnx_sampler import OnnxSampler
    from makemore.runtime.web.site import build_site

    model = model_files[kind][1]
    build_site(model, tmp_path / "site")
    sampler = OnnxSampler(model)
    exclude = sampler.sample(30, seed=4, min_len=4, ends_with="a")[:20]  # names it would otherwise draw
    with static_server(tmp_path) as port:
        page, console = open_site(browser, port, "site", height=700)
        fields = {"count": "40", "temperature": "0.9", "seed": "4", "min_len": "4", "max_len": "9"}
        fields |= {"ends_with": "a", "contains": "n", "exclude": "\n".join(exclude)}
        for field, value in fields.items():
            page.fill(f"#{field}", value)
        page.click("#generate")
        page.wait_for_function("document.querySelectorAll('#names li').length === 40", timeout=60_000)
        shown = page.locator("#names li").all_inner_texts()
        excluded = tmp_path / "exclude.txt"
        excluded.write_text("\n".join(exclude) + "\n")
        flags = ["--min-len", 4, "--max-len", 9, "--ends-with", "a", "--contains", "n", "--exclude", excluded]
        result = run("mm-gen", model, "--n", 40, "--seed", 4, "--temperature", 0.9, *flags)
        assert result.returncode == 0 and same_names(shown, result.stdout.splitlines())
        assert all(4 <= len(n) <= 9 and n.endswith("a") and "n" in n and n not in exclude for n in shown)

        for values, options in (
            (
                {"seed": "7", "prefix": "k", "min_len": "6", "top_k": "8"},
                {"seed": 7, "prefix": "k", "min_len": 6, "top_k": 8},
            ),
            ({"seed": "8", "temperature": "0", "ends_with": "y"}, {"seed": 8, "temperature": 0, "ends_with": "y"}),
            (
                {"seed": "9", "top_p": "0.8", "contains": "ar", "max_len": "7"},
                {"seed": 9, "top_p": 0.8, "contains": "ar", "max_len": 7},
            ),
        ):
            names = page.evaluate("fields => window.mmGenerate(fields)", {"count": "200", **values})
            assert same_names(names, sampler.sample(200, **options)), options

        page.fill("#max_len", "3")
        page.fill("#min_len", "")
        page.fill("#contains", "")
        page.fill("#exclude", "")
        page.fill("#ends_with", "aaaa")
        page.click("#generate")
        page.wait_for_selector("#status.error")
        try:
            sampler.sample(1, max_len=3, ends_with="aaaa", seed=4, temperature=0.9)
        except SamplingError as err:
            assert page.inner_text("#status") == f"error: {err}"
        else:
            raise AssertionError("Python sampled an impossible request")
        assert page.locator("#names li").all_inner_texts() == shown  # the names stay
        page.close()
    assert console.errors == []


def test_the_page_reads_the_automatons_bounds_from_the_site_json() -> None:
    from importlib.resources import files

    from makemore.runtime.web.site import site_json

    meta = site_json(site_info("gru", block_size=1, longest_name=77), "0" * 64)  # type: ignore[arg-type]
    assert meta["limits"] == LIMITS and meta["longest_name"] == 77
    static = files("makemore.runtime.web").joinpath("static")
    script = static.joinpath("constraints.js").read_text(encoding="utf-8")
    assert "limits.automaton_cells" in script and str(AUTOMATON_CELLS) not in script and "4194304" not in script
    assert "site.limits.exclude_chars" in static.joinpath("options.js").read_text(encoding="utf-8")


WEIGHTS_SCRIPT = """
import { readFileSync } from "node:fs";
import { draw, nextTokenWeights } from "./sampler.js";
const cases = JSON.parse(readFileSync(0, "utf8"));
const out = cases.map(({ logits, rows, V, options, allowed, uniforms }) => {
  const mask = Uint8Array.from(allowed);
  const weights = nextTokenWeights(Float32Array.from(logits), rows, V, { ...options, allowed: mask });
  return { weights: Array.from(weights), picks: Array.from(draw(weights, rows, V, Float64Array.from(uniforms))) };
});
console.log(JSON.stringify(out));
"""


@pytest.mark.parametrize(
    "options",
    [{}, {"temperature": 0.6}, {"temperature": 0}, {"top_k": 2}, {"top_p": 0.7, "temperature": 1.4}, {"top_k": 3}],
)
def test_masked_weights_and_draws_equal_numpys(tmp_path, options) -> None:
    """The mask acts before temperature, top-k and top-p, in the page as in next_token_weights."""
    from makemore.runtime.sampling import draw, next_token_weights

    rng = np.random.default_rng(len(str(options)))
    rows, V = 60, 9
    logits = (rng.standard_normal((rows, V)) * 3).astype(np.float32)
    allowed = rng.random((rows, V)) < 0.5
    allowed[np.arange(rows), rng.integers(0, V, rows)] = True  # at least one character each
    uniforms = rng.random(rows)
    weights = next_token_weights(logits, allowed=allowed, **options)
    want = {"weights": weights.T.ravel().tolist(), "picks": draw(weights.copy(), uniforms).tolist()}
    names = {"temperature": "temperature", "top_k": "topK", "top_p": "topP"}
    case = {"logits": logits.ravel().tolist(), "rows": rows, "V": V, "uniforms": uniforms.tolist()}
    case |= {"options": {names[k]: v for k, v in options.items()}, "allowed": allowed.ravel().astype(int).tolist()}
    (got,) = run_node(tmp_path, WEIGHTS_SCRIPT, [case])
    assert got["picks"] == want["picks"]
    assert all(allowed[row, pick] for row, pick in enumerate(got["picks"]))
    np.testing.assert_allclose(got["weights"], want["weights"], rtol=2e-7, atol=0)


@pytest.mark.parametrize("text", ["aZ", "a'Z", "\"Z'", "Z\\", "é\tZ\n", "Q" * 80, "\x7f\x1b"])
def test_outside_vocabulary_messages_equal_pythons(tmp_path, text) -> None:
    vocab = Vocab("abc")
    cases, want = [], []
    for field in ("ends_with", "contains"):
        case, answer = python_case({"max_len": max(9, len(text)), field: text}, vocab, random.Random(0))
        assert "outside the model's vocabulary" in answer["error"]
        cases.append(case)
        want.append(answer)
    assert run_node(tmp_path, MASKS_SCRIPT, cases) == want


def test_the_page_makes_names_of_at_most_256_characters() -> None:
    """A site's longest name and default max_len are at most 256 (mm-serve's default --max-len): 10,000 names of
    100,000 characters (a window model's own bound) would hold the tab for an hour and tens of GB."""
    from makemore.runtime.web.site import MAX_COUNT, MAX_NAME_LEN, site_json

    info = site_info("mlp", block_size=3, longest_name=100_000)
    info.max_len = 3000  # its longest training word
    meta = site_json(info, "0" * 64)  # type: ignore[arg-type]
    assert MAX_NAME_LEN == 256 and meta["longest_name"] == meta["max_len"] == 256 and meta["max_count"] == MAX_COUNT
    small = site_json(site_info("gru", block_size=1, longest_name=77), "0" * 64)  # type: ignore[arg-type]
    assert small["longest_name"] == 77  # a model that takes fewer keeps its own bound


BREATHE_SCRIPT = """
import { sampleChunk } from "./sampler.js";
import { ChunkDraws } from "./pcg64.js";
let timerRan = false, seenAt = null, steps = 0;
setTimeout(() => { timerRan = true; }, 0);
const logits = (rows) => Float32Array.from({ length: rows * 3 }, (_, i) => (i % 3 === 0 ? -100 : 0));  // no end
const busy = (ms) => { const end = performance.now() + ms; while (performance.now() < end); };
const decoder = {  // every step takes 20 ms of the tab, as a big model's would
  start: async (prefix, rows) => { busy(20); return logits(rows); },
  step: async (tokens) => {
    busy(20);
    steps++;
    if (timerRan && seenAt === null) seenAt = steps;
    return logits(tokens.length);
  },
  keep: () => {},
};
const draws = new ChunkDraws(1n, 0, 0, 4, 4096);
await sampleChunk(decoder, draws, [], 30, 3, { temperature: 1 });
console.log(JSON.stringify({ steps, seenAt }));
"""


def test_the_pages_sampling_loop_lets_the_tab_answer_while_it_runs(tmp_path) -> None:
    """A timer set before a long request runs during it, within a few steps of 20 ms (the loop yields every 50 ms:
    awaiting the model alone never let the browser draw or take input until the request ended)."""
    got = run_node(tmp_path, BREATHE_SCRIPT, {})
    assert got["steps"] > 10 and got["seenAt"] is not None and got["seenAt"] <= 4, got


REPR_SCRIPT = """
import { readFileSync } from "node:fs";
import { byCodePoint, pyRepr } from "./constraints.js";
const texts = JSON.parse(readFileSync(0, "utf8"));
console.log(JSON.stringify({ reprs: texts.map((t) => pyRepr(t, 60)), order: [...texts].sort(byCodePoint) }));
"""


def test_the_page_quotes_and_orders_text_as_python_does(tmp_path) -> None:
    """pyRepr is Python's repr cut to 60 characters (every character str.isprintable() rejects escaped: a zero-width
    space showed as empty quotes), and byCodePoint is Python's order of strings (JavaScript's sort put an emoji
    before a full-width mark): 3,000 random texts of characters Python's Unicode has assigned (the page's may be
    newer), surrogates and the characters of the review's cases."""
    import unicodedata

    rng = random.Random(7)
    special = list("\u0378\uffff\u200b\xa0\xad\u2028\x85'\"\\ \udcff\U0001f600\uff01\U000e0001")

    def char() -> str:
        while True:
            ch = (
                rng.choice(special)
                if rng.random() < 0.3
                else chr(rng.choice([rng.randrange(0x300), rng.randrange(0x110000)]))
            )
            if unicodedata.category(ch) != "Cn" or ch in special:
                return ch

    texts = ["".join(char() for _ in range(rng.randrange(0, 14))) for _ in range(3000)]
    got = run_node(tmp_path, REPR_SCRIPT, texts)
    assert got["reprs"] == [f"{text!r:.60}" for text in texts]
    assert got["order"] == sorted(texts)


TWO_FAULTS = [
    {"seed": "-1", "max_len": "1000"},
    {"seed": str(2**64), "prefix": "Q"},
    {"prefix": "Q", "max_len": "1000"},
    {"min_len": "0", "label": "x" * 100},
    {"max_len": "1000", "min_len": "2000"},
    {"prefix": "abc", "max_len": "2", "min_len": "0"},
    {"ends_with": "a" * 100_001, "seed": "-5"},
    {"exclude": "ab\n" * 100_001, "label": "y" * 70},
    {"top_k": "0", "prefix": "Q"},
    {"prefix": "Qabc", "min_len": "9", "max_len": "3"},
]


def python_message(fields: dict) -> str:
    """mm-gen's message for the page's fields (SamplingOptions of them, then for_model against a 40-character model
    of a-z: its max_len 15)."""
    values = {key: value for key, value in fields.items() if key in SAMPLING}
    typed = {k: int(v) for k, v in values.items() if k in ("seed", "max_len", "min_len", "top_k")}
    if "exclude" in values:
        typed["exclude"] = [line for line in values["exclude"].split("\n") if line]
    options = {**values, **typed}
    try:
        SamplingOptions(**options).for_model(
            ModelInfo("mlp", Vocab("abcdefghijklmnopqrstuvwxyz"), 3, config={"max_len": 15}), ceiling=40
        )
    except SamplingError as err:
        return str(err)
    raise AssertionError(f"no error for {fields}")


def test_a_request_with_two_mistakes_gets_mm_gens_message_on_the_page(tmp_path) -> None:
    """The page checks the fields in mm-gen's order (SamplingOptions' fields, then for_model): with two mistakes it
    named the other one (a seed of -1 and a max_len past the model's: the page said max_len, mm-gen the seed)."""
    site = stand_in_site()
    got = run_node(tmp_path, OPTIONS_SCRIPT, {"site": site, "requests": TWO_FAULTS})
    for fields, answer in zip(TWO_FAULTS, got, strict=True):  # the field each names (the page words a number's
        want = python_message(fields)  # range its own way: "a whole number from 1 to 100,000", "in [1, 100,000]")
        assert field_named(answer.get("error", "")) == field_named(want), (str(fields)[:80], answer, want)


def field_named(message: str) -> str:
    """The option a message is about: its first word, past "the length of" or "the number of" (top-k is top_k)."""
    words = message.removeprefix("the length of ").removeprefix("the number of ").split()
    return words[0].replace("-", "_") if words else ""
