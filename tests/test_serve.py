"""mm-serve's API through Starlette's test client: every endpoint, every refusal, parity with OnnxSampler."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import pytest
from clirun import assert_usage_error, run
from loopback import free_port, get, running_server
from makemore.data import read_lines
from makemore.runtime.novelty import novel_names
from makemore.runtime.onnx_sampler import OnnxSampler
from makemore.runtime.options import SamplingOptions
from makemore.runtime.sampling import WindowForward
from makemore.runtime.serve.app import Limits, create_app
from starlette.testclient import TestClient

MAX_N = 50


@pytest.fixture(scope="module")
def sampler(model_files) -> OnnxSampler:
    return OnnxSampler(model_files["mlp"][1])


@pytest.fixture(scope="module")
def known(names_path) -> frozenset[str]:
    return frozenset(read_lines(names_path))


@pytest.fixture(scope="module")
def client(sampler, known) -> TestClient:
    app = create_app(sampler, known, Limits(max_n=MAX_N, max_body=2000, max_len=40), name="mlp.onnx")
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def test_generate_matches_onnx_sampler(client, sampler):
    body = {"n": 12, "seed": 7, "temperature": 0.8, "top_k": 10, "top_p": 0.95, "prefix": "ma", "max_len": 12}
    response = client.post("/v1/generate", json=body)
    assert response.status_code == 200
    names = response.json()["names"]
    options = {k: v for k, v in body.items() if k not in ("n", "seed")}
    assert names == sampler.sample(12, seed=7, **options)
    assert all(name.startswith("ma") and len(name) <= 12 for name in names)


def test_generate_matches_mm_gen(client, model_files):
    result = run("mm-gen", model_files["mlp"][1], "--n", 8, "--seed", 42, "--temperature", 0.7, "--prefix", "jo")
    body = {"n": 8, "seed": 42, "temperature": 0.7, "prefix": "jo"}
    assert client.post("/v1/generate", json=body).json()["names"] == result.stdout.split()


def test_generate_is_reproducible_and_seed_matters(client):
    first = client.post("/v1/generate", json={"n": 30, "seed": 1}).json()["names"]
    again = client.post("/v1/generate", json={"n": 30, "seed": 1}).json()["names"]
    other = client.post("/v1/generate", json={"n": 30, "seed": 2}).json()["names"]
    assert first == again
    assert first != other


def test_generate_defaults_and_model_summary(client, sampler):
    payload = client.post("/v1/generate").json()  # no body at all: every field's default
    assert len(payload["names"]) == 20
    assert payload["model"] == {"name": "mlp.onnx", "kind": "mlp", "vocab": sampler.vocab.chars, "block_size": 4}


def test_generate_novel_drops_training_names(client, sampler, known):
    response = client.post("/v1/generate", json={"n": 40, "seed": 3, "novel": True})
    names = response.json()["names"]
    assert len(names) == 40
    assert not set(names) & known
    assert names == novel_names(sampler, 40, known, SamplingOptions(seed=3))
    plain = client.post("/v1/generate", json={"n": 40, "seed": 3}).json()["names"]
    assert set(plain) & known  # the quick model does reproduce training names, so novel had work to do


def test_score_matches_onnx_sampler(client, sampler):
    names = ["emma", "olivia", "xzqj"]
    response = client.post("/v1/score", json={"names": names})
    assert response.status_code == 200
    scores = response.json()["scores"]
    assert [s["name"] for s in scores] == names
    assert [s["nll"] for s in scores] == pytest.approx(sampler.score(names))
    assert scores[0]["nll"] < scores[2]["nll"]


def test_model_metadata(client, sampler):
    meta = client.get("/v1/model").json()
    assert meta["kind"] == "mlp" and meta["block_size"] == 4 and meta["vocab"] == sampler.vocab.chars
    assert meta["max_len"] == sampler.info.max_len
    assert meta["data_sha256"] == sampler.info.data_sha256
    assert meta["metrics"] == {k: v for k, v in sampler.info.metrics.items() if k != "history"}
    assert {"train_loss", "val_loss", "test_loss"} <= set(meta["metrics"])
    assert meta["config"]["n_hidden"] == 64


def test_healthz_and_page(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for element in ('id="count"', 'id="temperature"', 'id="prefix"', 'id="generate"', 'id="copy"', 'id="names"'):
        assert element in page.text
    assert "http://" not in page.text and "https://" not in page.text  # nothing from a CDN


@pytest.mark.parametrize(
    "body, field",
    [
        ({"n": 5, "colour": "red"}, "colour"),
        ({"n": "5"}, "n"),
        ({"n": 5.0}, "n"),
        ({"n": True}, "n"),
        ({"n": 0}, "n"),
        ({"n": MAX_N + 1}, "n"),
        ({"seed": -1}, "seed"),
        ({"seed": "x"}, "seed"),
        ({"temperature": "hot"}, "temperature"),
        ({"temperature": None}, "temperature"),
        ({"top_k": 1.5}, "top_k"),
        ({"top_p": [0.9]}, "top_p"),
        ({"prefix": 3}, "prefix"),
        ({"max_len": 41}, "max_len"),
        ({"novel": "yes"}, "novel"),
    ],
)
def test_generate_refuses_bad_fields_naming_them(client, body, field):
    response = client.post("/v1/generate", json=body)
    assert response.status_code == 422
    assert response.json()["field"] == field
    assert field in response.json()["error"]


@pytest.mark.parametrize(
    "body, field",
    [({}, "names"), ({"names": "emma"}, "names"), ({"names": ["emma", 3]}, "names[1]"), ({"names": []}, "names")],
)
def test_score_refuses_bad_fields_naming_them(client, body, field):
    response = client.post("/v1/score", json=body)
    assert response.status_code == 422
    assert response.json()["field"] == field


@pytest.mark.parametrize(
    "body, field, words",
    [
        ({"prefix": "Zo"}, "prefix", ["prefix", "Z"]),
        ({"temperature": -1}, "temperature", ["temperature"]),
        ({"top_p": 1.5}, "top_p", ["top_p"]),
        ({"top_p": 0}, "top_p", ["top_p"]),
        ({"top_k": 0}, "top_k", ["top_k"]),
        ({"seed": 2**64}, "seed", ["seed"]),
        ({"prefix": "abcdef", "max_len": 3}, "prefix", ["prefix", "max_len"]),
        ({"prefix": "a" * 41}, "prefix", ["prefix", "max_len"]),
    ],
)
def test_generate_values_out_of_bounds_are_422_naming_the_field(client, body, field, words):
    response = client.post("/v1/generate", json=body)
    assert response.status_code == 422
    assert response.json()["field"] == field
    assert all(word in response.json()["error"] for word in words)


def test_numbers_that_overflow_to_infinity_are_422(client):
    raw = b'{"temperature": 1e999}'  # valid JSON that Python reads as inf
    response = client.post("/v1/generate", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.json()["field"] == "temperature"


def test_generate_temperature_zero_is_greedy(client, sampler):
    greedy = client.post("/v1/generate", json={"n": 5, "seed": 1, "temperature": 0})
    assert greedy.status_code == 200
    assert greedy.json()["names"] == sampler.sample(5, seed=1, top_k=1)


@pytest.mark.parametrize("names, field", [(["Emma"], "names"), (["emma", ""], "names"), (["e" * 41], "names[0]")])
def test_score_names_the_model_cannot_read_are_422(client, names, field):
    response = client.post("/v1/score", json={"names": names})
    assert response.status_code == 422
    assert response.json()["error"] and response.json()["field"] == field


@pytest.mark.parametrize(
    "raw, status", [(b"{", 400), (b'{"n": NaN}', 400), (b"[1, 2]", 422), (b'"n"', 422), (b"\xff\xfe", 400)]
)
def test_malformed_bodies_are_refused(client, raw, status):
    response = client.post("/v1/generate", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == status
    assert response.json()["error"]


def test_body_size_is_capped(client):
    big = {"names": ["emma"] * 400}  # ~3 KB > the 2,000-byte cap of this app
    response = client.post("/v1/score", json=big)
    assert response.status_code == 413
    assert "2000 bytes" in response.json()["error"]

    def chunks():  # no content-length: the cap holds while streaming
        for _ in range(10):
            yield b" " * 500

    assert client.post("/v1/generate", content=chunks()).status_code == 413


def test_unknown_paths_and_methods_are_json_errors(client):
    assert client.get("/v1/nothing").status_code == 404
    response = client.get("/v1/generate")
    assert response.status_code == 405 and response.json()["error"]


def test_bad_requests_do_not_take_the_server_down(client):
    for body in ({"n": "x"}, {"prefix": "!!"}, {"seed": -5}):
        assert client.post("/v1/generate", json=body).status_code == 422
    assert client.post("/v1/generate", json={"n": 3, "seed": 0}).status_code == 200


def test_healthz_answers_while_a_big_request_runs(sampler):
    """Inference runs in a thread pool: while a generate call is blocked inside the model, /healthz answers."""
    entered, release = threading.Event(), threading.Event()

    class BlockingSampler(OnnxSampler):
        def __init__(self):
            self.info, self.session = sampler.info, sampler.session
            self.forward = WindowForward(self.blocked, self.info)

        def blocked(self, context):
            entered.set()
            assert release.wait(30), "the test did not release the sampler"
            return sampler.logits(context)

    app = create_app(BlockingSampler())
    with TestClient(app) as test_client:
        result = {}
        worker = threading.Thread(target=lambda: result.update(r=test_client.post("/v1/generate", json={"n": 2000})))
        worker.start()
        try:
            assert entered.wait(30)
            assert test_client.get("/healthz").json() == {"status": "ok"}  # answered while generate is in flight
            assert worker.is_alive()
        finally:
            release.set()
            worker.join(30)
    assert result["r"].status_code == 200 and len(result["r"].json()["names"]) == 2000


def test_serve_never_imports_torch():
    code = "import sys, makemore.runtime.serve.app, makemore.runtime.serve.cli; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.onnx", "--port", "{free}"], "model file not found"),  # a free port: 8000 may be in use here
        (["{model}", "--data", "missing.txt", "--port", "{free}"], "missing.txt"),
        (["{model}", "--log-level", "loud"], "log level"),
        (["{model}", "--host", "no-such-host.invalid"], "cannot resolve --host"),
        (["{model}", "--port", "{busy}"], "cannot listen on"),
        (["{model}", "--port", "70000"], "--port"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(model_files, tmp_path, args, message):
    with socket.socket() as busy:  # a port something else listens on
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        values = {"model": model_files["bigram"][1], "busy": busy.getsockname()[1], "free": free_port()}
        result = run("mm-serve", *[a.format(**values) for a in args], cwd=tmp_path, timeout=60)
    assert_usage_error(result)
    assert message in result.stderr


def test_client_that_leaves_mid_body_is_one_log_line(model_files, tmp_path):
    log = tmp_path / "server.log"
    with running_server(model_files["bigram"][1], "--log-level", "info", log=log) as port:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b'POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"names": [')
            time.sleep(0.3)
        time.sleep(0.5)
        assert get(port, "/healthz")[0] == 200
    text = log.read_text()
    assert "Traceback" not in text
    assert len([line for line in text.splitlines() if "disconnected" in line]) == 1, text


def test_a_request_builds_its_sampling_options_once(sampler, monkeypatch) -> None:
    """The server checks a request's options once; the sampler takes that object as it is."""
    from makemore.runtime import options as options_module

    built = []
    original = options_module.SamplingOptions.__post_init__

    def counting(self) -> None:
        built.append(self)
        original(self)

    monkeypatch.setattr(options_module.SamplingOptions, "__post_init__", counting)
    client = TestClient(create_app(sampler))
    assert client.post("/v1/generate", json={"n": 3, "seed": 1, "temperature": 0.5}).status_code == 200
    assert len(built) == 1
