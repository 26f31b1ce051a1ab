"""Property-based tests of the runtime's promises: for every mm-gen argument list and every mutation of a
model file's metadata, either valid names (exit 0) or one `error:` line with exit 2; never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inprocess import is_usage_error, run_main
from makemore.contract import ModelFileError
from makemore.contract.metadata import summary_json
from makemore.runtime.cli import gen_main
from makemore.runtime.onnx_sampler import OnnxSampler
from makemore.runtime.serve.app import model_metadata

PROPERTY_SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ANY_TEXT = st.text(st.characters(codec="utf-8"), max_size=12)


@pytest.fixture(scope="module")
def mlp_onnx(model_files) -> Path:
    return model_files["mlp"][1]


def numbers(ints: st.SearchStrategy) -> st.SearchStrategy:
    """A flag's value as typed: mostly numbers around the edges, sometimes text."""
    return st.one_of(ints, st.sampled_from(["nan", "inf", "-inf", "1e400", "x", "", "0x10", "1.5"]))


GEN_FLAGS = {
    "--n": numbers(st.integers(-3, 40)),  # a valid huge n streams for as long as it takes: not a test case
    "--seed": numbers(st.integers(-2, 5) | st.sampled_from([2**64 - 1, 2**64, 2**70])),
    "--temperature": numbers(st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0, 1e-300, 1e300])),
    "--top-k": numbers(st.integers(-2, 30) | st.just(10**20)),
    "--top-p": numbers(st.floats(-1, 2) | st.sampled_from([0, 1, 1e-12])),
    "--prefix": st.text(st.sampled_from("abcxyzA!é\n\t "), max_size=6),
    "--max-len": numbers(st.integers(-1, 40) | st.sampled_from([100_001, 10**12])),
    "--workers": numbers(st.integers(-1, 4) | st.just(10**6)),
    "--shard": st.sampled_from(["1/1", "1/2", "2/2", "3/3", "0/1", "2/1", "1/0", "a/b", "1", "1/2/3", ""])
    | st.text(st.sampled_from("0123/ "), max_size=5),
}


@st.composite
def gen_args(draw) -> list[str]:
    chosen = draw(st.lists(st.sampled_from(sorted(GEN_FLAGS)), unique=True, max_size=5))
    args: list[str] = []
    for flag in chosen:
        args += [flag, str(draw(GEN_FLAGS[flag]))]
    if draw(st.booleans()):
        args.append("--json")
    return args


def names_of(stdout: str, as_json: bool) -> list[str]:
    return json.loads(stdout) if as_json else stdout.splitlines()


def option(args: list[str], flag: str, default: str) -> str:
    return args[args.index(flag) + 1] if flag in args else default


@PROPERTY_SETTINGS
@given(args=gen_args())
def test_mm_gen_gives_valid_names_or_one_error_line(mlp_onnx, args) -> None:
    outcome = run_main(gen_main, mlp_onnx, *args)
    if outcome.status != 0:
        assert is_usage_error(outcome), (args, outcome)
        return
    names = names_of(outcome.stdout, "--json" in args)
    n = int(option(args, "--n", "20"))
    if "--shard" in args:  # one chunk: the last shard has every name, the others none
        shard, shards = map(int, option(args, "--shard", "").split("/"))
        n = n if shard == shards else 0
    assert len(names) == n, args
    prefix = option(args, "--prefix", "")
    max_len = int(option(args, "--max-len", "15"))
    for name in names:
        assert name and set(name) <= set("abcdefghijklmnopqrstuvwxyz"), (args, name)
        assert name.startswith(prefix) and len(name) <= max_len, (args, name)


# --- metadata mutations -------------------------------------------------------------------------

VALUE_MUTATIONS = st.one_of(
    ANY_TEXT,
    st.sampled_from(
        [
            "",
            "abc",
            "abcdefghijklmnopqrstuvwxyz\n",
            "aabcdefghijklmnopqrstuvwxy",
            "abcdefghijklmnopqrstuvwxyzé",
            "abcdefghijklmnopqrstuvwxy",
            "一二三四五六七八九十百千万亿兆京垓秭穰沟涧正载极恒河沙阿",
            "4",
            "3",
            "-4",
            "4.0",
            "99999999999999999999999",
            "[]",
            "null",
            "{}",
            '{"max_len": "15"}',
            '{"max_len": -1}',
            '{"max_len": 1e9}',
            '{"max_len": true}',
            '{"split_seed": -1}',
            '{"split_fractions": [1, 0, 0]}',
            '{"split_fractions": "x"}',
            '{"val_loss": NaN}',
            '{"val_loss": Infinity}',
            '{"history": [1]}',
            '{"history": {"val_loss": ["x"]}}',
            '{"optimizer": "adam\\ud800"}',  # lone surrogates (JSON escapes): text that never encodes again
            '{"\\udfff": 1}',
            '{"history": {"x": [1], "\\ud800": [2]}}',
            '{"n": [{"a": "\\udc80"}]}',
            '{"block_size": 8}',
            '{"quantize": "int4"}',
            "2",
            "step",
            "window",
            "0" * 64,
            "zz",
        ]
    ),
)
METADATA_KEYS = ["format_version", "contract", "kind", "vocab", "block_size", "config", "metrics", "data_sha256"]


@pytest.fixture(scope="module")
def mlp_proto(mlp_onnx) -> onnx.ModelProto:
    return onnx.load(str(mlp_onnx))


@PROPERTY_SETTINGS
@given(
    mutations=st.lists(
        st.tuples(st.sampled_from(METADATA_KEYS), VALUE_MUTATIONS | st.none()), min_size=1, max_size=3, unique_by=str
    )
)
def test_metadata_mutations_load_cleanly_or_refuse_in_one_line(mlp_proto, tmp_path_factory, mutations) -> None:
    proto = onnx.ModelProto()
    proto.CopyFrom(mlp_proto)
    props = {p.key: p.value for p in proto.metadata_props}
    for key, value in mutations:
        if value is None:
            props.pop("makemore." + key, None)
        else:
            props["makemore." + key] = value
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, props)
    path = tmp_path_factory.mktemp("mutated") / "model.onnx"
    path.write_bytes(proto.SerializeToString())
    try:
        sampler = OnnxSampler(path)
    except ModelFileError as err:
        assert str(err) and "\n" not in str(err)
        outcome = run_main(gen_main, path, "--n", 5, "--seed", 0)
        assert is_usage_error(outcome), outcome
        return
    json.dumps(summary_json(model_metadata(sampler.info, "model.onnx")), ensure_ascii=False).encode("utf-8")
    names = sampler.sample(5, seed=0)
    assert len(names) == 5 and all(name and set(name) <= set(sampler.vocab.chars) for name in names)
    outcome = run_main(gen_main, path, "--n", 5, "--seed", 0)
    assert outcome.status == 0 and outcome.stdout.splitlines() == names, outcome


@pytest.mark.parametrize("key", ["config", "metrics"])
@pytest.mark.parametrize("where", ["a value", "a key", "a nested value"])
def test_a_lone_surrogate_in_metadata_json_is_refused_in_one_line(mlp_proto, tmp_path, key, where) -> None:
    """A JSON escape can put a lone surrogate in any string of the metadata; a file holding one is refused (it
    could be printed nowhere: mm-serve's /v1/model answered 500)."""
    proto = onnx.ModelProto()
    proto.CopyFrom(mlp_proto)
    props = {p.key: p.value for p in proto.metadata_props}
    value = json.loads(props["makemore." + key])
    bad = "x\ud800"
    if where == "a value":
        value["extra"] = bad
    elif where == "a key":
        value[bad] = 1
    else:
        value["extra"] = {"list": [1, {"deep": bad}]}
    props["makemore." + key] = json.dumps(value)  # ensure_ascii: the surrogate as a \ud800 escape
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, props)
    path = tmp_path / "model.onnx"
    path.write_bytes(proto.SerializeToString())
    with pytest.raises(ModelFileError, match=f"{key} holds a lone surrogate"):
        OnnxSampler(path)
    assert is_usage_error(run_main(gen_main, path, "--n", 5))


# --- mm-web ---------------------------------------------------------------------------------------

WEB_OUTS = ["new", "empty", "earlier site", "file", "other folder", "/dev/null", "/", "no parent", "model's folder"]
WEB_MODELS = ["mlp", "missing", "text", "truncated", "inside the earlier site"]


def web_case(folder: Path, mlp_onnx: Path) -> dict[str, Path]:
    """A folder with every kind of model and output path that mm-web's property test picks from."""
    from makemore.runtime.web.site import build_site
    from webfiles import fake_ort_dist

    fake_ort_dist(folder / "dist")
    fake_ort_dist(folder / "models")  # the model's folder: not empty, not a site
    (folder / "models" / "mlp.onnx").write_bytes(mlp_onnx.read_bytes())
    (folder / "models" / "text.onnx").write_text("not a model\n")
    (folder / "models" / "truncated.onnx").write_bytes(mlp_onnx.read_bytes()[:500])
    (folder / "empty").mkdir()
    (folder / "file").write_text("notes\n")
    (folder / "other").mkdir()
    (folder / "other" / "cat.jpg").write_bytes(b"\xff\xd8")
    build_site(mlp_onnx, folder / "earlier", folder / "dist")
    return {
        "mlp": folder / "models" / "mlp.onnx",
        "missing": folder / "models" / "missing.onnx",
        "text": folder / "models" / "text.onnx",
        "truncated": folder / "models" / "truncated.onnx",
        "inside the earlier site": folder / "earlier" / "model.onnx",
        "new": folder / "site",
        "empty": folder / "empty",
        "earlier site": folder / "earlier",
        "file": folder / "file",
        "other folder": folder / "other",
        "/dev/null": Path("/dev/null"),
        "/": Path("/"),
        "no parent": folder / "missing" / "site",
        "model's folder": folder / "models",
        "good dist": folder / "dist",
        "bad dist": folder / "other",
    }


@PROPERTY_SETTINGS
@given(
    model=st.sampled_from(WEB_MODELS),
    out=st.sampled_from(WEB_OUTS),
    dist=st.sampled_from(["good dist", "bad dist"]),
    extra=st.lists(st.sampled_from(["--bogus", "x", "--ort-dist"]), max_size=2),  # never -o: it would name the output
)
def test_mm_web_writes_a_whole_site_or_nothing(mlp_onnx, tmp_path_factory, model, out, dist, extra) -> None:
    from makemore.runtime.web.cli import main as web_main
    from makemore.runtime.web.folder import MARKER
    from makemore.runtime.web.site import ORT_FILES, PAGE_FILES
    from webfiles import snapshot

    folder = tmp_path_factory.mktemp("web")
    paths = web_case(folder, mlp_onnx)
    before = snapshot(folder)
    outcome = run_main(web_main, paths[model], "-o", paths[out], "--ort-dist", paths[dist], *extra)
    if outcome.status != 0:
        assert is_usage_error(outcome), (model, out, dist, extra, outcome)
        assert snapshot(folder) == before
        return
    site = paths[out]
    assert sorted(p.name for p in site.iterdir()) == sorted([*PAGE_FILES, *ORT_FILES, "model.onnx", MARKER])
    assert (site / "model.onnx").read_bytes() == paths[model].read_bytes()
    after = {key: value for key, value in snapshot(folder).items() if not (folder / key).is_relative_to(site)}
    assert after == {key: value for key, value in before.items() if not (folder / key).is_relative_to(site)}
