"""Labelled data (label<TAB>item) and conditional models: the reader, every kind, the contract, the runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from clirun import assert_usage_error, run
from conftest import QUICK_OVERRIDES, rewrite_metadata
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from labelled import LABELS, LabelledModels, write_labelled
from makemore.contract import ModelFileError, ModelInfo
from makemore.data import DatasetError, Vocab, split_words
from makemore.data.corpus import read_labelled_corpus, split_corpus
from makemore.data.labels import label_problem, read_labelled, split_labelled
from makemore.runtime.chunks import CHUNK_SIZE, ChunkSpan, chunk_labels
from makemore.runtime.onnx_sampler import OnnxSampler
from makemore.runtime.options import SamplingError, SamplingOptions
from makemore.train.config_types import Config
from makemore.train.kinds import MODEL_KINDS, build_model
from makemore.train.memory import param_count
from makemore.train.sampler import TorchSampler
from test_constraints import constraints, satisfies


@pytest.fixture(scope="module")
def labelled_path(names_path, tmp_path_factory) -> Path:
    """3,000 bundled names, each labelled by its last letter."""
    return write_labelled(names_path, tmp_path_factory.mktemp("labelled"), every=10, count=3000)


@pytest.fixture(scope="module")
def labelled_models(labelled_path, tmp_path_factory) -> LabelledModels:
    return LabelledModels(tmp_path_factory.mktemp("labelled-models"), labelled_path)


# ---- the reader ---------------------------------------------------------------------------------------------------

label_text = st.text(st.characters(categories=("L", "N")), min_size=1, max_size=8)
item_text = st.text(st.characters(categories=("L",)), min_size=1, max_size=8)


@settings(max_examples=60, deadline=None)
@given(pairs=st.lists(st.tuples(label_text, item_text), min_size=3, max_size=30, unique_by=lambda p: p[1]))
def test_a_labelled_file_reads_back_every_pair_in_file_order(tmp_path_factory, pairs) -> None:
    path = tmp_path_factory.mktemp("read") / "data.tsv"
    path.write_text("\n".join(f"{label}\t {item} " for label, item in pairs) + "\n\n", encoding="utf-8")
    words = read_labelled(path)
    assert list(zip(words.labels, words.items, strict=True)) == list(pairs)


FAULTS = {
    "no tab": ("female anna", "has no tab"),
    "an empty label": ("\tanna", "has an empty label"),
    "an empty item": ("female\t  ", "has an empty item"),
    "a tab inside the item": ("female\tan\tna", "has a tab inside its item"),
    "two tabs at the end": ("female\tanna\t", "has a tab inside its item"),
}


@settings(max_examples=40, deadline=None)
@given(
    fault=st.sampled_from(sorted(FAULTS)),
    before=st.integers(0, 20),
    pairs=st.lists(st.tuples(label_text, item_text), min_size=25, max_size=25),
)
def test_every_bad_line_is_one_error_naming_it(tmp_path_factory, fault, before, pairs) -> None:
    line, words = FAULTS[fault]
    lines = [f"{label}\t{item}" for label, item in pairs]
    lines.insert(before, line)
    path = tmp_path_factory.mktemp("bad") / "data.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError) as caught:
        read_labelled(path)
    message = str(caught.value)
    assert f"line {before + 1} " in message and words in message and "\n" not in message


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_mm_train_refuses_bad_labelled_data_in_one_line_and_writes_nothing(tmp_path, fault) -> None:
    data = tmp_path / "data.tsv"
    data.write_text("female\tanna\nmale\tbob\n" + FAULTS[fault][0] + "\nmale\tcarl\n", encoding="utf-8")
    out = tmp_path / "model.pt"
    result = run("mm-train", "bigram", "--data", data, "--labelled", "--out", out, "--samples", 0)
    assert_usage_error(result)
    assert "line 3" in result.stderr and not out.exists()
    assert data.read_text(encoding="utf-8").count("\n") == 4  # the input untouched


def test_labels_must_be_short_printable_text() -> None:
    assert label_problem("female") is None
    for bad in ("", "x" * 65, "a\x00b", " pad", 3):
        assert label_problem(bad) is not None


@settings(max_examples=30, deadline=None)
@given(
    pairs=st.lists(st.tuples(st.sampled_from(LABELS), item_text), min_size=3, max_size=60, unique_by=lambda p: p[1]),
    seed=st.integers(0, 2**64 - 1),
)
def test_labels_follow_their_items_through_the_split(tmp_path_factory, pairs, seed) -> None:
    """The split of labelled data is the plain split of its items (same split_seed rule); each keeps its label."""
    path = tmp_path_factory.mktemp("split") / "data.tsv"
    path.write_text("".join(f"{label}\t{item}\n" for label, item in pairs), encoding="utf-8")
    corpus = read_labelled_corpus(path)
    split = split_corpus(corpus.tokens, seed)
    plain = split_words([item for _, item in pairs], seed)
    label_of_item = {item: label for label, item in pairs}
    for name in ("train", "val", "test"):
        tokens = split[name]
        items = [
            corpus.vocab.decode(tokens.ids[a:b]) for a, b in zip(tokens.offsets[:-1], tokens.offsets[1:], strict=True)
        ]
        assert items == plain[name]
        assert [corpus.labels[i] for i in tokens.labels] == [label_of_item[item] for item in items]
    assert split_labelled(read_labelled(path), seed) == {
        name: [(label_of_item[item], item) for item in plain[name]] for name in ("train", "val", "test")
    }


# ---- the models ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_an_unlabelled_model_has_no_label_parts_and_a_labelled_one_adds_only_them(kind) -> None:
    config = build_config(kind)
    torch.manual_seed(0)
    plain = build_model(kind, 27, config)
    torch.manual_seed(0)
    labelled = build_model(kind, 27, config.replace(n_labels=3))
    plain_state, labelled_state = plain.state_dict(), labelled.state_dict()
    assert not any("label" in name for name in plain_state)
    extra = set(labelled_state) - set(plain_state)
    assert extra and all("label" in name for name in extra)
    for name, tensor in plain_state.items():  # the same initial weights: the label parts are made last
        torch.testing.assert_close(labelled_state[name], tensor)
    assert sum(t.numel() for t in plain_state.values()) == param_count(kind, 27, config)
    assert sum(t.numel() for t in labelled_state.values()) == param_count(kind, 27, config.replace(n_labels=3))


def build_config(kind: str) -> Config:
    from makemore.train.config import make_config

    config = make_config(kind, **QUICK_OVERRIDES[kind])
    return config.replace(block_size=config.block_size or 8)


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_the_label_is_seen_at_every_position(kind) -> None:
    """Changing only the label changes the logits of every position (sequence kinds) or window."""
    torch.manual_seed(0)
    model = build_model(kind, 27, build_config(kind).replace(n_labels=2)).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "label" in name:
                param.normal_()
        x = torch.randint(1, 27, (4, model.block_size if not getattr(model, "is_sequence", False) else 6))
        first, second = model(x, torch.zeros(4, dtype=torch.int64)), model(x, torch.ones(4, dtype=torch.int64))
    differs = (first - second).abs().amax(dim=-1)
    assert (differs > 1e-6).all()


@pytest.mark.slow
@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_every_kind_trains_labelled_and_exports(labelled_models, kind) -> None:
    pt, onnx_path = labelled_models[kind]
    checkpoint = torch.load(pt, weights_only=True)
    assert checkpoint["labels"]["names"] == list(LABELS)
    assert checkpoint["config"]["n_labels"] == len(LABELS)  # the stored (plain) config
    assert sum(checkpoint["labels"]["counts"]) == 2400  # the train split's words (80% of 3,000)
    by_label = checkpoint["metrics"]["val_loss_by_label"]
    assert set(by_label) == set(LABELS) and all(0 < loss < np.log(27) for loss in by_label.values())
    sampler = OnnxSampler(onnx_path)
    assert sampler.info.labels == LABELS and sampler.info.label_counts == tuple(checkpoint["labels"]["counts"])
    assert len(set(sampler.sample(50, seed=1, label="a-end"))) > 1


# ---- parity, int8 -------------------------------------------------------------------------------------------------

PARITY_CASES = [{"seed": 0}, {"seed": 1, "label": "a-end"}, {"seed": 2, "label": "n-end", "top_k": 5}]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["mlp", "gru"])  # the window contract and the step contract
@pytest.mark.parametrize("options", PARITY_CASES, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_torch_and_onnxruntime_give_the_same_names(labelled_models, kind, options) -> None:
    pt, onnx_path = labelled_models[kind]
    expected, actual = TorchSampler(pt).sample(1000, **options), OnnxSampler(onnx_path).sample(1000, **options)
    differ = sum(a != b for a, b in zip(actual, expected, strict=True))
    assert differ <= 1 and len(set(actual)) > 1


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["mlp", "gru"])
def test_torch_and_onnxruntime_give_the_same_scores(labelled_models, kind) -> None:
    pt, onnx_path = labelled_models[kind]
    names = ["anna", "ben", "olivia"]
    for label in (None, *LABELS):
        np.testing.assert_allclose(
            OnnxSampler(onnx_path).score(names, label), TorchSampler(pt).score(names, label), rtol=1e-5
        )


@pytest.mark.slow
def test_a_mixture_score_is_bounded_by_labels_times_characters(labelled_models, monkeypatch) -> None:
    """Without a label, a conditional model scores under each label in turn: past MIXTURE_WORK label x character
    steps the request is one error naming `label` (the server's 422), before any pass; with a label it runs."""
    from makemore.runtime import scoring
    from makemore.runtime.options import SamplingError
    from makemore.runtime.serve.app import create_app
    from starlette.testclient import TestClient

    sampler = OnnxSampler(labelled_models["mlp"][1])
    names = ["anna", "bob", "emma"]  # 3 labels x 14 predicted characters: 42 steps
    monkeypatch.setattr(scoring, "MIXTURE_WORK", 42)
    assert len(sampler.score(names)) == 3
    monkeypatch.setattr(scoring, "MIXTURE_WORK", 41)
    with pytest.raises(SamplingError, match="mixture of 3 labels is more work") as refused:
        sampler.score(names)
    assert refused.value.field == "label"
    assert len(sampler.score(names, "a-end")) == 3
    with TestClient(create_app(sampler)) as client:
        answer = client.post("/v1/score", json={"names": names})
    assert answer.status_code == 422 and answer.json()["field"] == "label"


@pytest.mark.slow
def test_a_label_shifts_the_names_its_way(labelled_models) -> None:
    """Names sampled under a-end end in a far more often than under n-end (the label is learned)."""
    sampler = OnnxSampler(labelled_models["mlp"][1])
    a_end = np.mean([n.endswith("a") for n in sampler.sample(1000, seed=3, label="a-end")])
    n_end = np.mean([n.endswith("a") for n in sampler.sample(1000, seed=3, label="n-end")])
    assert a_end > n_end + 0.3


@pytest.mark.slow
@pytest.mark.parametrize(  # a labelled bigram's table is flattened before it is read (and its shape read at opset 7)
    ("kind", "opset"), [("mlp", None), ("bigram", None), ("bigram", 7)]
)
def test_an_int8_labelled_file_keeps_its_labels_and_its_loss(
    labelled_models, labelled_path, tmp_path, kind, opset
) -> None:
    import onnx
    from makemore.export.int8 import scale_axes
    from makemore.export.onnx_export import export_checkpoint

    pt, float_path = labelled_models[kind]
    report = export_checkpoint(pt, tmp_path / "int8.onnx", quantize="int8", **({"opset": opset} if opset else {}))
    assert report.size_bytes < report.float_size_bytes and not scale_axes(onnx.load(str(report.path)))
    int8, plain = OnnxSampler(report.path), OnnxSampler(float_path)
    assert int8.info.labels == plain.info.labels and int8.info.label_counts == plain.info.label_counts
    assert report.mean_kl is not None and report.mean_kl < 0.01
    val = split_labelled(read_labelled(labelled_path))["val"]
    for label in LABELS:  # test_quantize's bound on the val loss, label by label
        items = [item for name, item in val if name == label]
        assert abs(int8.nll(items, label) - plain.nll(items, label)) <= 0.01
    assert len(set(int8.sample(200, seed=5))) > 1


# ---- labels at run time -------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_unknown_label_and_label_for_an_unlabelled_model_are_one_error_line(labelled_models, model_files) -> None:
    assert_usage_error(run("mm-gen", labelled_models["mlp"][1], "--label", "nope", "--seed", 1))
    assert_usage_error(run("mm-gen", model_files["mlp"][1], "--label", "a-end", "--seed", 1))
    assert_usage_error(run("mm-eval", labelled_models["gru"][1], "--score", "anna", "--label", "x\ny"))
    for path, label in ((labelled_models["gru"][1], "nope"), (model_files["gru"][1], "a-end")):
        with pytest.raises(SamplingError) as caught:
            OnnxSampler(path).sample(3, label=label)
        assert caught.value.field == "label" and "label" in str(caught.value)


def test_a_label_option_is_checked_like_every_option() -> None:
    for bad in ("", "x" * 65, 3):
        with pytest.raises(SamplingError) as caught:
            SamplingOptions(label=bad)
        assert caught.value.field == "label"


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 2**64 - 1),
    index=st.integers(0, 5),
    cuts=st.lists(st.integers(1, CHUNK_SIZE - 1), max_size=4),
    counts=st.lists(st.integers(0, 50), min_size=1, max_size=6).filter(any),
)
def test_label_draws_depend_on_the_seed_and_the_row_alone(seed, index, cuts, counts) -> None:
    """A chunk's labels are the same however it is cut into pieces, never a label of count 0, and the same
    again for the same seed."""
    whole = chunk_labels(seed, ChunkSpan(index, 0, CHUNK_SIZE), tuple(counts))
    edges = [0, *sorted(set(cuts)), CHUNK_SIZE]
    pieces = [
        chunk_labels(seed, ChunkSpan(index, lo, hi), tuple(counts))
        for lo, hi in zip(edges[:-1], edges[1:], strict=True)
    ]
    np.testing.assert_array_equal(np.concatenate(pieces), whole)
    np.testing.assert_array_equal(chunk_labels(seed, ChunkSpan(index, 0, CHUNK_SIZE), tuple(counts)), whole)
    assert all(counts[label] > 0 for label in np.unique(whole))


def test_label_draws_follow_the_training_frequencies() -> None:
    counts = (1, 0, 3)
    drawn = np.concatenate([chunk_labels(7, ChunkSpan(k, 0, CHUNK_SIZE), counts) for k in range(4)])
    shares = np.bincount(drawn, minlength=3) / len(drawn)
    np.testing.assert_allclose(shares, [0.25, 0.0, 0.75], atol=0.02)
    other_seed = np.concatenate([chunk_labels(8, ChunkSpan(k, 0, CHUNK_SIZE), counts) for k in range(4)])
    assert (drawn != other_seed).any()


@pytest.mark.slow
def test_names_without_a_label_are_deterministic_and_mix_the_labels(labelled_models) -> None:
    sampler = OnnxSampler(labelled_models["mlp"][1])
    first = sampler.sample(2000, seed=11)
    assert first == sampler.sample(2000, seed=11) == [n for c in sampler.sample_chunks(2000, seed=11) for n in c]
    assert first != sampler.sample(2000, seed=12)
    share = {label: np.mean([n.endswith("a") for n in sampler.sample(2000, seed=11, label=label)]) for label in LABELS}
    mixed = np.mean([n.endswith("a") for n in first])
    assert min(share.values()) < mixed < max(share.values())


@pytest.mark.slow
def test_zero_label_parts_leave_the_names_of_the_unlabelled_model(model_files, tmp_path) -> None:
    """A conditional model whose label parts are zero samples exactly the unlabelled model's names, seed for seed:
    drawing each name's label takes nothing from the characters' random stream."""
    from makemore.train.checkpoint import load_checkpoint, load_model, model_info

    checkpoint = load_checkpoint(model_files["mlp"][0])
    plain = TorchSampler.from_model(load_model(checkpoint), model_info(checkpoint))
    labelled_checkpoint = {
        **checkpoint,
        "config": checkpoint["config"].replace(n_labels=2),
        "labels": {"names": ["x", "y"], "counts": [1, 1]},
        "state_dict": {**checkpoint["state_dict"], "label_embedding.weight": torch.zeros(2, 16)},
    }
    labelled = TorchSampler.from_model(load_model(labelled_checkpoint), model_info(labelled_checkpoint))
    for seed in (0, 1, 2):
        assert labelled.sample(300, seed=seed) == plain.sample(300, seed=seed)


# ---- files --------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_mm_eval_gives_each_labels_val_loss_as_training_did(labelled_models, labelled_path) -> None:
    pt, onnx_path = labelled_models["transformer"]
    metrics = torch.load(pt, weights_only=True)["metrics"]
    result = run("mm-eval", onnx_path, "--data", labelled_path, "--split", "val")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert float(lines[0]) == pytest.approx(metrics["val_loss"], abs=1e-4)
    per_label = {label: float(loss) for loss, label in (line.split("\t") for line in lines[1:])}
    assert per_label == pytest.approx(metrics["val_loss_by_label"], abs=1e-4)
    one = run("mm-eval", onnx_path, "--data", labelled_path, "--label", "n-end")
    assert float(one.stdout) == pytest.approx(metrics["val_loss_by_label"]["n-end"], abs=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize(
    "change",
    [
        lambda props: props.update({"makemore.labels": '{"names": ["a", "a", "b"], "counts": [1, 1, 1]}'}),
        lambda props: props.update({"makemore.labels": '{"names": ["a", "b", "c"], "counts": [1, 1]}'}),
        lambda props: props.update({"makemore.labels": '{"names": ["a", "b", "c"], "counts": [0, 0, 0]}'}),
        lambda props: props.update({"makemore.labels": '{"names": ["a", "b"], "counts": [1, 1]}'}),
        lambda props: props.update({"makemore.labels": '["a", "b", "c"]'}),
        lambda props: props.pop("makemore.labels"),
    ],
    ids=["repeated", "counts-short", "all-zero", "n-labels-differs", "not-an-object", "missing"],
)
def test_bad_labels_metadata_is_refused_at_load(labelled_models, tmp_path, change) -> None:
    target = rewrite_metadata(labelled_models["mlp"][1], tmp_path / "bad.onnx", change)
    with pytest.raises(ModelFileError) as caught:
        OnnxSampler(target)
    assert "\n" not in str(caught.value)
    assert_usage_error(run("mm-gen", target, "--n", 3))


def test_labels_round_trip_through_the_metadata() -> None:
    info = ModelInfo("mlp", Vocab("abc"), 3, config={"n_labels": 2}, labels=("x", "y z"), label_counts=(3, 0)).checked()
    assert ModelInfo.from_metadata(info.to_metadata()) == info
    plain = ModelInfo("mlp", Vocab("abc"), 3).checked()
    assert "makemore.labels" not in plain.to_metadata() and ModelInfo.from_metadata(plain.to_metadata()) == plain


@pytest.mark.slow  # trains (a few steps)
def test_resume_keeps_the_labels(tmp_path) -> None:
    """A conditional checkpoint resumes on labelled data with its labels, and on nothing else (one error line)."""
    data, other, plain = tmp_path / "data.tsv", tmp_path / "other.tsv", tmp_path / "plain.txt"
    pairs = [("f", "anna"), ("m", "bob"), ("f", "emma"), ("m", "carl"), ("f", "ida")]
    data.write_text("".join(f"{label}\t{item}\n" for label, item in pairs), encoding="utf-8")
    other.write_text("".join(f"x{label}\t{item}\n" for label, item in pairs), encoding="utf-8")
    plain.write_text("".join(f"{item}\n" for _, item in pairs), encoding="utf-8")
    first, second = tmp_path / "a.pt", tmp_path / "b.pt"
    common = ("--steps", 5, "--samples", 0, "-q")
    assert run("mm-train", "bigram-nn", "--data", data, "--labelled", "--out", first, *common).returncode == 0
    resumed = run("mm-train", "bigram-nn", "--data", data, "--labelled", "--resume", first, "--out", second, *common)
    assert resumed.returncode == 0, resumed.stderr
    assert torch.load(second, weights_only=True)["labels"]["names"] == ["f", "m"]
    for args, message in (
        (("--data", other, "--labelled"), "with other labels"),
        (("--data", plain), "a conditional model: give --labelled"),
    ):
        result = run("mm-train", "bigram-nn", *args, "--resume", first, "--out", tmp_path / "c.pt", *common)
        assert_usage_error(result)
        assert message in result.stderr and not (tmp_path / "c.pt").exists()
    unlabelled = tmp_path / "plain.pt"
    assert run("mm-train", "bigram-nn", "--data", plain, "--out", unlabelled, *common).returncode == 0
    args = ("--data", data, "--labelled", "--resume", unlabelled, "--out", second)
    result = run("mm-train", "bigram-nn", *args, *common)
    assert_usage_error(result)
    assert "trained on unlabelled data: leave --labelled out" in result.stderr


def more_labels(props: dict) -> None:
    """Metadata declaring 70 labels (config n_labels too) for a graph whose label table has 3 rows."""
    import json

    config = json.loads(props["makemore.config"])
    props["makemore.config"] = json.dumps({**config, "n_labels": 70})
    names = [f"l{i}" for i in range(70)]
    props["makemore.labels"] = json.dumps({"names": names, "counts": [1] * 70})


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["mlp", "gru"])
def test_metadata_declaring_more_labels_than_the_graph_holds_is_refused_at_load(labelled_models, tmp_path, kind):
    target = rewrite_metadata(labelled_models[kind][1], tmp_path / "more.onnx", more_labels)
    with pytest.raises(ModelFileError) as caught:
        OnnxSampler(target)
    assert "probe" in str(caught.value) and "\n" not in str(caught.value)


# ---- labels with constraints and beam search ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def labelled_samplers(labelled_models) -> dict[str, tuple[TorchSampler, OnnxSampler]]:
    return {kind: (TorchSampler(labelled_models[kind][0]), OnnxSampler(labelled_models[kind][1])) for kind in KINDS2}


KINDS2 = ("mlp", "gru")  # a window and a step kind


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request=constraints(), label=st.sampled_from([None, *LABELS, "no-such-label"]), seed=st.integers(0, 2**32))
@pytest.mark.parametrize("kind", KINDS2)
def test_labels_and_random_constraints_are_met_or_refused(labelled_samplers, kind, request, label, seed) -> None:
    """For any label (or none, or an unknown one) and any constraints: every name satisfies the request, or it is
    refused with one SamplingError naming the field."""
    sampler = labelled_samplers[kind][1]
    try:
        names = sampler.sample(40, seed=seed, label=label, **request)
    except SamplingError as err:
        assert err.field in {"label", "prefix", "min_len", "ends_with", "contains", "match", "exclude"}, err
        assert err.field != "label" or label == "no-such-label"
        return
    assert label != "no-such-label"
    max_len = request.get("max_len", sampler.info.max_len)
    assert len(names) == 40 and all(satisfies(name, request, max_len) for name in names), names


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS2)
def test_a_labelled_constrained_request_gives_the_same_names_in_torch_and_onnxruntime(labelled_samplers, kind) -> None:
    torch_sampler, onnx_sampler = labelled_samplers[kind]
    for label in (None, "a-end"):
        request = {"seed": 3, "label": label, "min_len": 4, "contains": "r", "exclude": ["maria"]}
        expected, actual = torch_sampler.sample(300, **request), onnx_sampler.sample(300, **request)
        assert sum(a != b for a, b in zip(actual, expected, strict=True)) <= 1
        assert all(len(name) >= 4 and "r" in name and name != "maria" for name in actual)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS2)
def test_beam_search_under_a_label_scores_as_the_label_scores(labelled_samplers, kind) -> None:
    """The likeliest names under a label: log-probabilities are the label's own likelihoods, the first at least as
    likely as the greedy name under that label; a labelled model's beam needs a label."""
    sampler = labelled_samplers[kind][1]
    found = sampler.beam(5, width=8, label="a-end", ends_with="a")
    greedy = sampler.sample(1, temperature=0, label="a-end", ends_with="a")[0]
    names = [name for name, _ in found]
    assert len(set(names)) == 5 and all(name.endswith("a") for name in names)
    nll = dict(zip(names, sampler.score(names, label="a-end"), strict=True))
    for name, log_prob in found:
        assert abs(log_prob + nll[name] * (len(name) + 1)) < 1e-3
    greedy_log_prob = -sampler.score([greedy], label="a-end")[0] * (len(greedy) + 1)
    assert found[0][1] >= greedy_log_prob - 1e-6
    with pytest.raises(SamplingError, match="give a label"):
        sampler.beam(5)


# ---- the label's worth, and labels in many scripts ----------------------------------------------------------------


@pytest.mark.slow
def test_the_conditional_model_beats_the_plain_one_on_every_labels_val_words(labelled_models, labelled_path, tmp_path):
    """The same kind, config and split trained on the items alone: each label's val loss is lower with the label."""
    from makemore.data.labels import split_labelled
    from makemore.train.run import TrainRequest, run_training

    items = tmp_path / "items.txt"
    pairs = [line.split("\t") for line in labelled_path.read_text(encoding="utf-8").splitlines()]
    items.write_text("".join(f"{item}\n" for _, item in pairs), encoding="utf-8")
    plain_pt = tmp_path / "plain.pt"
    request = TrainRequest(
        kind="mlp", data=items, out=plain_pt, samples=0, quiet=True, overrides=QUICK_OVERRIDES["mlp"]
    )
    assert run_training(request)
    plain = TorchSampler(plain_pt)
    conditional = torch.load(labelled_models["mlp"][0], weights_only=True)["metrics"]["val_loss_by_label"]
    val = split_labelled(read_labelled(labelled_path), 42, (0.8, 0.1, 0.1))["val"]
    by_label: dict[str, list[str]] = {}
    for label, item in val:
        by_label.setdefault(label, []).append(item)
    assert set(by_label) == set(LABELS)
    for label, words in by_label.items():
        assert conditional[label] < plain.nll(words), (label, conditional[label], plain.nll(words))


SCRIPTS = {  # a held-out-like corpus: labels and items in many scripts
    "русский": ["анна", "борис", "вера", "галина", "дмитрий", "елена", "жанна", "зоя"],
    "ελληνικά": ["αθηνά", "βασίλης", "γιώργος", "δήμητρα", "ελένη", "ζωή", "ηλίας", "θεοδώρα"],
    "日本語": ["さくら", "はると", "ゆい", "そうた", "ひなた", "あおい", "りく", "めい"],
    "العربية": ["فاطمة", "محمد", "ليلى", "عمر", "نور", "يوسف", "سارة", "علي"],
    "हिन्दी": ["अनिता", "राहुल", "प्रिया", "विजय", "सुनीता", "अमित", "नेहा", "रवि"],
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["mlp", "gru"])
def test_labels_and_items_in_many_scripts_train_export_and_sample_under_each_label(tmp_path, kind) -> None:
    data = tmp_path / "scripts.tsv"
    data.write_text("".join(f"{label}\t{name}\n" for label, names in SCRIPTS.items() for name in names * 4), "utf-8")
    pt, onnx_path = tmp_path / "m.pt", tmp_path / "m.onnx"
    trained = run("mm-train", kind, "--data", data, "--labelled", "--steps", 400, "--out", pt, "-q", "--samples", 0)
    assert trained.returncode == 0, trained.stderr
    assert run("mm-export", pt, onnx_path).returncode == 0
    sampler = OnnxSampler(onnx_path)
    assert set(sampler.info.labels) == set(SCRIPTS)
    for label, names in SCRIPTS.items():
        script = set("".join(names))
        drawn = sampler.sample(30, seed=1, label=label)
        assert sum(set(name) <= script for name in drawn) >= 20, (label, drawn)  # the label picks the script
        result = run("mm-gen", onnx_path, "--n", 5, "--seed", 1, "--label", label)
        assert result.returncode == 0 and result.stdout.split() == drawn[:5]
