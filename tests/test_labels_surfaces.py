"""Labels on the server and in the browser page: /v1/model lists a conditional model's labels, /v1/generate and
/v1/score take a label (as the Python sampler does, 422 otherwise); the page's label draws equal chunk_labels bit for
bit (under node), its label messages equal Python's, and in Chromium its names equal mm-gen's with and without
--label, with constraints, for a window (mlp) and a step (gru) model."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pytest
from clirun import run
from hypothesis import given, settings
from hypothesis import strategies as st
from labelled import LABELS, LabelledModels, write_labelled
from makemore.data.bounds import SAMPLING
from makemore.runtime.chunks import CHUNK_SIZE, ChunkSpan, chunk_labels
from makemore.runtime.options import SamplingError, SamplingOptions, label_index
from nodejs import run_node
from webfiles import Console, open_site, same_names

QUICK_STEPS = {"mlp": 150, "gru": 100}  # tiny models: the tests compare names, not their quality


@pytest.fixture(scope="module")
def labelled_path(names_path, tmp_path_factory) -> Path:
    """2,000 bundled names, each labelled by its last letter."""
    return write_labelled(names_path, tmp_path_factory.mktemp("labelled"), every=15, count=2000)


@pytest.fixture(scope="module")
def labelled(labelled_path, tmp_path_factory) -> Mapping[str, Path]:
    """kind -> the ONNX file of a conditional model trained for a few steps (on first use)."""
    models = LabelledModels(tmp_path_factory.mktemp("labelled-models"), labelled_path, QUICK_STEPS, threads=1)
    return LazyOnnx(models)


class LazyOnnx(Mapping):
    """kind -> the ONNX file of `models[kind]`, each trained when first asked for."""

    def __init__(self, models: LabelledModels) -> None:
        self.models = models

    def __getitem__(self, kind: str) -> Path:
        return self.models[kind][1]

    def __iter__(self) -> Iterator[str]:
        return iter(self.models)

    def __len__(self) -> int:
        return len(self.models)


# ---- the page's label draws and label field, under node -----------------------------------------------------------

LABELS_SCRIPT = """
import { readFileSync } from "node:fs";
import { chunkLabels } from "./pcg64.js";
const cases = JSON.parse(readFileSync(0, "utf8"));
const out = cases.map(([seed, index, lo, hi, counts]) =>
  Array.from(chunkLabels(BigInt(seed), BigInt(index), lo, hi, counts), Number));
console.log(JSON.stringify(out));
"""


def label_cases() -> list[tuple[int, int, int, int, tuple[int, ...]]]:
    """(seed, chunk index, lo, hi, counts): random ones, and the edges (labels of count 0, first and last, one label,
    counts beyond 2**53 where float64 rounds, a piece deep in the chunk, seeds and indices past 32 bits)."""
    rng = np.random.default_rng(21)
    cases = []
    for _ in range(60):
        counts = tuple(int(c) for c in rng.integers(0, 40, int(rng.integers(1, 12))))
        counts = counts if any(counts) else (*counts[:-1], 1)
        lo = int(rng.integers(0, CHUNK_SIZE))
        hi = int(rng.integers(lo + 1, min(CHUNK_SIZE, lo + 300) + 1))
        seed = int(rng.integers(0, 2**63)) * 2 + int(rng.integers(0, 2))
        cases.append((seed, int(rng.integers(0, 9)), lo, hi, counts))
    cases += [
        (0, 0, 0, 500, (0, 5, 0)),
        (1, 3, 0, 500, (7, 0, 0, 0)),
        (2, 1, 0, 500, (0, 0, 0, 3)),
        (3, 0, 0, 200, (1,)),
        (4, 2, 0, 500, (2**63 - 1, 2**63 - 1, 1, 3 * 2**60 + 5)),
        (5, 0, 0, 500, (1, 2**62)),
        (2**64 - 1, 2**32 + 5, CHUNK_SIZE - 7, CHUNK_SIZE, (3, 1, 4, 1, 5)),
        (2**32, 2**32 - 1, 1000, 1300, tuple(range(0, 300))),
    ]
    return cases


def test_page_label_draws_equal_chunk_labels(tmp_path) -> None:
    cases = label_cases()
    payload = [[str(seed), str(index), lo, hi, list(counts)] for seed, index, lo, hi, counts in cases]
    got = run_node(tmp_path, LABELS_SCRIPT, payload)
    want = [chunk_labels(seed, ChunkSpan(index, lo, hi), counts).tolist() for seed, index, lo, hi, counts in cases]
    assert got == want
    assert all(counts[label] > 0 for (*_, counts), labels in zip(cases, got, strict=True) for label in labels)


@st.composite
def label_case(draw) -> tuple[int, int, int, int, tuple[int, ...]]:
    """(seed, chunk index, lo, hi, counts): any seed and index, a piece anywhere in the chunk, counts not all 0."""
    counts = draw(st.lists(st.integers(0, 2**63 - 1) | st.integers(0, 20), min_size=1, max_size=20).filter(any))
    lo = draw(st.integers(0, CHUNK_SIZE - 1))
    hi = draw(st.integers(lo + 1, min(CHUNK_SIZE, lo + 64)))
    return draw(st.integers(0, 2**64 - 1)), draw(st.integers(0, 2**40)), lo, hi, tuple(counts)


@settings(max_examples=8, deadline=None)
@given(cases=st.lists(label_case(), min_size=25, max_size=25))
def test_page_label_draws_equal_chunk_labels_for_every_request(tmp_path_factory, cases) -> None:
    """A property over seeds, chunks, pieces and counts (one node run per example: 25 cases at once)."""
    payload = [[str(seed), str(index), lo, hi, list(counts)] for seed, index, lo, hi, counts in cases]
    got = run_node(tmp_path_factory.mktemp("labels"), LABELS_SCRIPT, payload)
    assert got == [
        chunk_labels(seed, ChunkSpan(index, lo, hi), counts).tolist() for seed, index, lo, hi, counts in cases
    ]


PARSE_SCRIPT = """
import { readFileSync } from "node:fs";
import { parseLabel } from "./options.js";
import { rowLabels } from "./sampler.js";
const { cases, rows } = JSON.parse(readFileSync(0, "utf8"));
const out = cases.map(({ value, site }) => {
  try {
    const label = parseLabel(value, site);
    const drawn = rowLabels(site, { label, seed: 9n }, 1, rows);
    return { label, rows: drawn === null ? null : Array.from(drawn, Number) };
  } catch (err) {
    return { error: err.message };
  }
});
console.log(JSON.stringify(out));
"""


class StubInfo:
    """What label_index reads of a model: its labels."""

    def __init__(self, labels: tuple[str, ...]) -> None:
        self.labels, self.labelled = labels, bool(labels)


def python_label(value: str, labels: tuple[str, ...]) -> dict:
    """What the page should make of its label field: Python's index (and each row's label), or its message."""
    if value == "":
        counts = tuple(range(1, len(labels) + 1))
        return {"label": None, "rows": chunk_labels(9, ChunkSpan(1, 0, 40), counts).tolist() if labels else None}
    try:
        index = label_index(SamplingOptions(label=value).label, StubInfo(labels))  # type: ignore[arg-type]
    except SamplingError as err:
        return {"error": str(err)}
    return {"label": index, "rows": [index] * 40}


def test_the_label_field_reads_as_python_does(tmp_path) -> None:
    many = tuple(f"group {i}" for i in range(14))
    label_sets = [LABELS, many, ("x",), ()]
    values = ["", "a-end", "other", "A-END", "a-end ", "group 3", "group 13", "gro'up", 'it\'s "x"', "x", "é\n"]
    values += ["L" * 64, "L" * 65]
    cases, want = [], []
    for labels in label_sets:
        site = {"bounds": {"label": SAMPLING["label"].to_json()}, "labels": None}
        if labels:
            site["labels"] = {"input": "label", "names": list(labels), "counts": list(range(1, len(labels) + 1))}
        for value in values:
            cases.append({"value": value, "site": site})
            want.append(python_label(value, labels))
    got = run_node(tmp_path, PARSE_SCRIPT, {"cases": cases, "rows": 40})
    assert got == want
    assert any("error" in case for case in want) and any(case.get("label") for case in want)


def test_site_json_carries_the_labels_and_an_unlabelled_one_none() -> None:
    from dataclasses import replace

    from makemore.contract import ModelInfo
    from makemore.data import Vocab
    from makemore.runtime.web.site import site_json

    info = ModelInfo(kind="mlp", vocab=Vocab.from_words(["anna", "bob"]), block_size=3)
    plain = site_json(info, "0" * 64)
    assert plain["labels"] is None and plain["inputs"] == ["context"]
    conditional = site_json(replace(info, labels=LABELS, label_counts=(5, 0, 7)), "0" * 64)
    assert conditional["labels"] == {"input": "label", "names": list(LABELS), "counts": [5, 0, 7]}
    assert conditional["inputs"] == ["context", "label"]
    assert conditional["bounds"]["label"] == SAMPLING["label"].to_json()
    assert json.loads(json.dumps(conditional)) == conditional  # plain JSON


# ---- the server ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def labelled_client(labelled):
    from makemore.runtime.onnx_sampler import OnnxSampler
    from makemore.runtime.serve.app import Limits, create_app
    from starlette.testclient import TestClient

    sampler = OnnxSampler(labelled["mlp"])
    app = create_app(sampler, frozenset(), Limits(max_n=500, max_body=20_000, max_len=40), name="labelled.onnx")
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, sampler


@pytest.mark.slow
def test_model_lists_the_labels_with_their_training_counts(labelled_client) -> None:
    client, sampler = labelled_client
    labels = client.get("/v1/model").json()["labels"]
    assert [label["name"] for label in labels] == list(sampler.info.labels) == list(LABELS)
    assert [label["count"] for label in labels] == list(sampler.info.label_counts)
    total = sum(sampler.info.label_counts)
    assert [label["frequency"] for label in labels] == [count / total for count in sampler.info.label_counts]
    assert sum(label["count"] for label in labels) == 1600  # the train split: 80% of 2,000


@pytest.mark.slow
@pytest.mark.parametrize(
    "body",
    [
        {"n": 200, "seed": 3, "label": "a-end"},
        {"n": 200, "seed": 4, "label": "other", "temperature": 0.8, "top_k": 9},
        {"n": 150, "seed": 5, "label": "n-end", "min_len": 5, "contains": "e"},
        {"n": 200, "seed": 6},  # each name's label drawn from the training frequencies
        {"n": 120, "seed": 7, "ends_with": "a", "prefix": "m"},
    ],
    ids=lambda body: "-".join(f"{k}={v}" for k, v in body.items()),
)
def test_generate_with_and_without_a_label_gives_the_samplers_names(labelled_client, body) -> None:
    client, sampler = labelled_client
    response = client.post("/v1/generate", json=body)
    assert response.status_code == 200, response.text
    options = {key: value for key, value in body.items() if key != "n"}
    assert response.json()["names"] == sampler.sample(body["n"], **options)


@pytest.mark.slow
def test_generate_a_label_changes_the_names(labelled_client) -> None:
    client, _ = labelled_client
    names = {
        label: client.post("/v1/generate", json={"n": 300, "seed": 1, "label": label}).json()["names"]
        for label in LABELS
    }
    assert names["a-end"] != names["n-end"] != names["other"] != names["a-end"]


@pytest.mark.slow
def test_beam_with_a_label_gives_the_samplers_beam(labelled_client) -> None:
    client, sampler = labelled_client
    response = client.post("/v1/generate", json={"n": 5, "beam": 8, "label": "n-end"})
    assert response.status_code == 200, response.text
    found = sampler.beam(5, width=8, label="n-end")
    assert response.json()["names"] == [name for name, _ in found]
    assert response.json()["log_probs"] == pytest.approx([lp for _, lp in found], abs=0)


SCORED = ["anna", "ben", "olivia", "zzq", "marion", "a"]


@pytest.mark.slow
@pytest.mark.parametrize("label", [None, *LABELS])
def test_score_with_and_without_a_label_is_the_samplers_score(labelled_client, label) -> None:
    client, sampler = labelled_client
    body = {"names": SCORED} if label is None else {"names": SCORED, "label": label}
    response = client.post("/v1/score", json=body)
    assert response.status_code == 200, response.text
    scores = response.json()["scores"]
    assert [s["name"] for s in scores] == SCORED
    assert [s["nll"] for s in scores] == sampler.score(SCORED, label)


@pytest.mark.slow
def test_score_a_null_label_is_the_mixture(labelled_client) -> None:
    client, sampler = labelled_client
    nulls = client.post("/v1/score", json={"names": SCORED, "label": None}).json()["scores"]
    by_label = {label: sampler.score(SCORED, label) for label in LABELS}
    mixture = [s["nll"] for s in nulls]
    assert mixture == sampler.score(SCORED)
    assert all(mixture != scores for scores in by_label.values())


LABEL_REFUSALS = [
    ("/v1/generate", {"n": 3, "label": "A-END"}, "unknown label 'A-END'"),
    ("/v1/generate", {"n": 3, "label": ""}, "the length of label must be in [1, 64]"),
    ("/v1/generate", {"n": 3, "label": "x" * 65}, "the length of label must be in [1, 64]"),
    ("/v1/generate", {"n": 3, "label": 1}, "label must be a string or null"),
    ("/v1/generate", {"n": 3, "beam": 4}, "give a label for beam search"),
    ("/v1/generate", {"n": 3, "beam": 4, "label": "nope"}, "unknown label 'nope'"),
    ("/v1/generate", {"n": 3, "novel": True, "label": "nope"}, "unknown label 'nope'"),
    ("/v1/score", {"names": ["anna"], "label": "nope"}, "unknown label 'nope'"),
    ("/v1/score", {"names": ["anna"], "label": ""}, "the length of label must be in [1, 64]"),
    ("/v1/score", {"names": ["anna"], "label": "x" * 65}, "the length of label must be in [1, 64]"),
    ("/v1/score", {"names": ["anna"], "label": ["a-end"]}, "label must be a string or null"),
    ("/v1/score", {"names": ["anna"], "label": True}, "label must be a string or null"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("path", "body", "message"), LABEL_REFUSALS)
def test_a_bad_label_is_a_422_naming_the_field(labelled_client, path, body, message) -> None:
    client, _ = labelled_client
    response = client.post(path, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "label" and message in response.json()["error"], response.json()


@pytest.fixture(scope="module")
def plain_client(model_files):
    from makemore.runtime.onnx_sampler import OnnxSampler
    from makemore.runtime.serve.app import create_app
    from starlette.testclient import TestClient

    with TestClient(create_app(OnnxSampler(model_files["mlp"][1])), raise_server_exceptions=False) as client:
        yield client


@pytest.mark.slow
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/generate", {"n": 3, "label": "a-end"}),
        ("/v1/generate", {"n": 3, "beam": 2, "label": "a-end"}),
        ("/v1/score", {"names": ["anna"], "label": "a-end"}),
    ],
)
def test_a_label_for_an_unlabelled_model_is_a_422(plain_client, path, body) -> None:
    response = plain_client.post(path, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "label" and "this model has no labels" in response.json()["error"]


@pytest.mark.slow
def test_an_unlabelled_model_lists_no_labels_and_scores_without_one(plain_client) -> None:
    assert plain_client.get("/v1/model").json()["labels"] == []
    plain = plain_client.post("/v1/score", json={"names": SCORED}).json()["scores"]
    null = plain_client.post("/v1/score", json={"names": SCORED, "label": None}).json()["scores"]
    assert plain == null and len(plain) == len(SCORED)


@pytest.mark.slow
def test_mm_serve_web_serves_a_conditional_models_page(labelled) -> None:
    from makemore.runtime.onnx_sampler import OnnxSampler
    from makemore.runtime.serve.app import create_app
    from makemore.runtime.serve.in_browser import browser_files
    from starlette.testclient import TestClient

    sampler = OnnxSampler(labelled["gru"])
    web = browser_files(str(labelled["gru"]), sampler.info, None)
    with TestClient(create_app(sampler, web=web), raise_server_exceptions=False) as client:
        site = client.get("/web/makemore-site.json").json()
        page = client.get("/web/").text
    assert site["labels"] == {"input": "label", "names": list(LABELS), "counts": list(sampler.info.label_counts)}
    assert site["inputs"] == ["tokens", "label"] and site["contract"] == "step"
    assert '<select id="label">' in page


# ---- the page in Chromium -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def label_sites(labelled, tmp_path_factory):
    """The port of a static server of the labelled mlp's and gru's sites, built by mm-web's code."""
    from loopback import static_server
    from makemore.runtime.web.site import build_site

    root = tmp_path_factory.mktemp("label-sites")
    for kind in QUICK_STEPS:
        build_site(labelled[kind], root / kind)
    with static_server(root) as port:
        yield port


def generate_on_page(page, fields: dict[str, str], label: str, count: int) -> list[str]:
    """Fill the form, choose `label` ("" for any), press Generate and read the names shown."""
    for field, value in fields.items():
        page.fill(f"#{field}", value)
    page.select_option("#label", label)
    page.evaluate("document.getElementById('names').replaceChildren()")
    page.click("#generate")
    page.wait_for_function(f"document.querySelectorAll('#names li').length === {count}", timeout=60_000)
    return page.locator("#names li").all_inner_texts()


def mm_gen(model: Path, count: int, fields: dict[str, str], label: str) -> list[str]:
    from clirun import run

    flags = [f"--{key.replace('_', '-')}" for key in fields]
    args = [item for flag, value in zip(flags, fields.values(), strict=True) for item in (flag, value)]
    result = run("mm-gen", model, "--n", count, *args, *(["--label", label] if label else []))
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


HOOK_REQUESTS = [  # the page's fields -> SamplingOptions
    ({"seed": "0", "label": "a-end"}, {"seed": 0, "label": "a-end"}),
    ({"seed": "0"}, {"seed": 0}),
    (
        {"seed": "18446744073709551615", "top_k": "5", "label": "other"},
        {"seed": 2**64 - 1, "top_k": 5, "label": "other"},
    ),
    ({"seed": "7", "temperature": "0", "label": "n-end"}, {"seed": 7, "temperature": 0, "label": "n-end"}),
    (
        {"seed": "8", "prefix": "ma", "contains": "i", "max_len": "9"},
        {"seed": 8, "prefix": "ma", "contains": "i", "max_len": 9},
    ),
]


@pytest.mark.browser
@pytest.mark.parametrize("kind", list(QUICK_STEPS))
def test_page_labels_give_mm_gens_names(browser, label_sites, labelled, kind) -> None:
    from makemore.runtime.onnx_sampler import OnnxSampler

    model, sampler = labelled[kind], OnnxSampler(labelled[kind])
    page, console = open_site(browser, label_sites, kind, height=700)
    assert page.is_visible("#label") and "3 labels" in page.inner_text("#model")
    values = page.eval_on_selector_all("#label option", "options => options.map((o) => o.value)")
    assert values == ["", *LABELS] and page.input_value("#label") == ""

    fields = {"count": "60", "seed": "12", "temperature": "0.9", "min_len": "4", "ends_with": "a"}
    shown = generate_on_page(page, fields, "n-end", 60)
    assert page.inner_text("#status") == "60 names (seed 12, label n-end)"
    assert shown == mm_gen(model, 60, {k: v for k, v in fields.items() if k != "count"}, "n-end")
    assert all(len(name) >= 4 and name.endswith("a") for name in shown)

    fields = {"count": "60", "seed": "13", "temperature": "1.1", "min_len": "", "ends_with": "", "contains": "e"}
    shown = generate_on_page(page, fields, "", 60)
    assert page.inner_text("#status") == "60 names (seed 13)"
    assert shown == mm_gen(model, 60, {"seed": "13", "temperature": "1.1", "contains": "e"}, "")
    assert all("e" in name for name in shown)

    for values, options in HOOK_REQUESTS:
        names = page.evaluate("fields => window.mmGenerate(fields)", {"count": "300", **values})
        assert same_names(names, sampler.sample(300, **options)), options
    if kind == "mlp":  # two chunks: the second chunk's labels come from its own stream
        names = page.evaluate("() => window.mmGenerate({count: '5000', seed: '11', top_k: '20'})")
        assert names == mm_gen(model, 5000, {"seed": "11", "top_k": "20"}, "")

    rows = [[0] * 7, [1, 2, 3, 4, 5, 6, 7], [0, 0, 9, 1, 14, 14, 1]]
    labels = [0, 1, 2]
    if sampler.info.state is None:  # contexts of block_size
        rows = [row[-sampler.block_size :] for row in rows]
    got = np.array(page.evaluate("([rows, labels]) => window.mmLogits(rows, labels)", [rows, labels]))
    if sampler.info.state is None:
        want = sampler.logits(np.array(rows, dtype=np.int64), np.array(labels, dtype=np.int64))
    else:
        from makemore.contract import empty_state

        tokens = np.array(rows, dtype=np.int64)
        want = sampler.forward.step_fn(tokens, empty_state(sampler.info, 3), np.array(labels, dtype=np.int64))[0]
    assert got.shape == want.shape and np.abs(got - want).max() <= 1e-5
    page.close()
    assert console.errors == []


@pytest.mark.browser
def test_mm_serve_web_switches_to_the_page_with_labels(browser, labelled) -> None:
    """mm-serve --web with a conditional model: its own page offers the labels (names as the API's), and /web/
    samples the same names in the browser."""
    from loopback import running_server
    from makemore.runtime.onnx_sampler import OnnxSampler

    sampler = OnnxSampler(labelled["mlp"])
    with running_server(labelled["mlp"], "--web") as port:
        page = browser.new_page(viewport={"width": 900, "height": 620})
        console = Console(page)
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("#label-field:not([hidden])")
        values = page.eval_on_selector_all("#label option", "options => options.map((o) => o.value)")
        assert values == ["", *LABELS]
        page.fill("#count", "25")
        page.fill("#seed", "6")
        page.select_option("#label", "a-end")
        page.click("#generate")
        page.wait_for_function("document.querySelectorAll('#names li').length === 25", timeout=20_000)
        assert same_names(page.locator("#names li").all_inner_texts(), sampler.sample(25, seed=6, label="a-end"))
        page.select_option("#label", "")
        page.evaluate("document.getElementById('names').replaceChildren()")
        page.click("#generate")
        page.wait_for_function("document.querySelectorAll('#names li').length === 25", timeout=20_000)
        assert same_names(page.locator("#names li").all_inner_texts(), sampler.sample(25, seed=6))

        page.click("#in-browser")
        page.wait_for_selector("body[data-state='ready']", timeout=60_000)
        names = page.evaluate("() => window.mmGenerate({count: '80', seed: '9', label: 'other', ends_with: 'e'})")
        assert same_names(names, sampler.sample(80, seed=9, label="other", ends_with="e"))
        page.close()
    assert console.errors == []


def test_novel_drops_a_conditional_models_training_items(labelled, labelled_path, tmp_path) -> None:
    """--novel-vs and the server's `novel` read a conditional model's training file (label<TAB>item lines) as its
    items: no name returned is one of them, and a file of plain names works as well."""
    from makemore.data import read_lines
    from makemore.runtime.onnx_sampler import OnnxSampler
    from makemore.runtime.serve.app import create_app
    from starlette.testclient import TestClient

    items = {line.split("\t")[1] for line in read_lines(labelled_path)}
    sampler = OnnxSampler(labelled["mlp"])
    plain = sampler.sample(3000, seed=1)
    assert set(plain) & items  # the model makes training items: "novel" has work to do
    result = run("mm-gen", labelled["mlp"], "--n", 3000, "--seed", 1, "--novel-vs", labelled_path)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split()) == 3000 and not set(result.stdout.split()) & items
    names_only = tmp_path / "items.txt"
    names_only.write_text("".join(f"{item}\n" for item in sorted(items)), encoding="utf-8")
    same = run("mm-gen", labelled["mlp"], "--n", 3000, "--seed", 1, "--novel-vs", names_only)
    assert same.stdout == result.stdout
    spaced = tmp_path / "spaced.tsv"  # spaces around the tab: mm-train --labelled strips the label and the item
    spaced.write_text("".join(line.replace("\t", " \t ") + "\n" for line in read_lines(labelled_path)), "utf-8")
    assert run("mm-gen", labelled["mlp"], "--n", 3000, "--seed", 1, "--novel-vs", spaced).stdout == result.stdout
    with TestClient(create_app(sampler, frozenset(read_lines(labelled_path)))) as client:
        answer = client.post("/v1/generate", json={"n": 3000, "seed": 1, "novel": True})
    assert answer.status_code == 200 and answer.json()["names"] == result.stdout.split()


@pytest.mark.parametrize("label", [None, [-1], [3, 3], [1.0], "a", [[0]], [10**6]], ids=str)
def test_a_window_models_logits_refuse_a_label_that_is_not_one_index_per_row(labelled, label) -> None:
    """A conditional model's logits take one label index per row, each one of its labels: anything else is one
    SamplingError naming `label` on onnxruntime and torch alike (a -1 was the last label on onnxruntime, [3, 3]
    broadcast against one row, a float was cut to an int)."""
    from makemore.runtime.onnx_sampler import OnnxSampler
    from makemore.runtime.options import SamplingError
    from makemore.train.sampler import TorchSampler

    pt, onnx_path = labelled.models["mlp"]
    for sampler in (OnnxSampler(onnx_path), TorchSampler(pt)):
        context = np.zeros((1, sampler.block_size), dtype=np.int64)
        with pytest.raises(SamplingError) as err:
            sampler.logits(context, None if label is None else np.array(label))
        assert err.value.field == "label"
        assert sampler.logits(context, np.array([len(sampler.info.labels) - 1])).shape == (1, sampler.vocab.size)


@pytest.mark.parametrize(
    "request_",
    [
        {"prefix": "A", "label": "nope"},
        {"min_len": 35, "max_len": 30, "label": "nope"},
        {"prefix": "A", "min_len": 35, "max_len": 30},
        {"prefix": "A", "label": "nope", "beam": 3},
        {"label": "nope", "beam": 3, "ends_with": "zz", "max_len": 1},
        {"prefix": "A", "max_len": 5000},  # past the server's max_len: the prefix's error first, as elsewhere
        {"label": "a-end", "beam": 0},  # the server worded the beam's range its own way
        {"label": "a-end", "beam": 257},
    ],
    ids=lambda r: "+".join(r),
)
def test_a_request_with_two_faults_gets_the_same_first_error_everywhere(labelled_client, labelled, request_) -> None:
    """The CLI, the API and the server check a request in one order (its own fields, then what the model takes:
    prefix, max_len, label, SamplingOptions.for_model), so a request with two faults gets the same message on each
    (the CLI checked the label first)."""
    client, sampler = labelled_client
    width = request_.get("beam")
    fields = {k: v for k, v in request_.items() if k != "beam"}
    with pytest.raises(SamplingError) as err:
        sampler.beam(3, width=width, **fields) if "beam" in request_ else sampler.sample(3, **fields)
    answer = client.post("/v1/generate", json={"n": 3, **request_})
    assert answer.status_code == 422 and answer.json()["error"] == str(err.value)
    flags = [item for key, value in request_.items() for item in (f"--{key.replace('_', '-')}", str(value))]
    result = run("mm-gen", labelled["mlp"], "--n", 3, *flags)
    assert result.returncode == 2 and result.stderr == f"error: {err.value}\n" and result.stdout == ""
