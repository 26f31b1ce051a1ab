"""mm-serve under hostile clients (issue 19, class 8): error bodies always encode, no body is ever a 5xx, the bytes
held for clients are bounded (and handed back), stalled clients are dropped, and --web survives its model moving."""

from __future__ import annotations

import json
import resource
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from clirun import assert_usage_error, run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loopback import (
    HOST,
    cpu_seconds,
    free_port,
    get,
    memory_mb,
    running_server,
    sent_generate,
    wait_until_healthy,
)
from makemore.runtime.onnx_sampler import OnnxSampler
from makemore.runtime.serve.app import Limits, create_app
from starlette.testclient import TestClient
from webfiles import fake_ort_dist

MAX_N, MAX_LEN = 50, 40
FIELDS = ["n", "novel", "seed", "temperature", "top_k", "top_p", "prefix", "max_len", "names"]
SURROGATES = ["\ud800", "\udfff", "a\udc00b", "\udbff\ud800"]  # lone (or reversed, so still lone) halves


@pytest.fixture(scope="module")
def client(model_files) -> Iterator[TestClient]:
    app = create_app(OnnxSampler(model_files["mlp"][1]), frozenset({"emma"}), Limits(max_n=MAX_N, max_len=MAX_LEN))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def post(client: TestClient, path: str, raw: bytes):
    return client.post(path, content=raw, headers={"content-type": "application/json"})


def assert_json_refusal(response, statuses: tuple[int, ...]) -> dict:
    """The answer is one of `statuses`, and its body is UTF-8 JSON with an error message."""
    assert response.status_code in statuses, (response.status_code, response.content[:300])
    payload = json.loads(response.content.decode("utf-8"))  # strict UTF-8: no lone surrogate got through
    assert isinstance(payload["error"], str) and payload["error"]
    return payload


# --- lone surrogates: 422 with a body that encodes ---------------------------------------------------


@pytest.mark.parametrize("bad", SURROGATES)
@pytest.mark.parametrize(
    "path, body, field",
    [
        ("/v1/score", lambda s: {"names": [s]}, "names[0]"),
        ("/v1/score", lambda s: {"names": ["emma", s]}, "names[1]"),
        ("/v1/score", lambda s: {s: 1}, None),
        ("/v1/score", lambda s: {"names": [{s: s}]}, "names[0]"),
        ("/v1/generate", lambda s: {s: {s: [s]}}, None),
        ("/v1/generate", lambda s: {"prefix": s}, "prefix"),
        ("/v1/generate", lambda s: {"prefix": "a" + s * 3}, "prefix"),
        ("/v1/generate", lambda s: {"n": [s]}, "n[0]"),
        ("/v1/generate", lambda s: [1, [s]], None),
        ("/v1/generate", lambda s: {"n": 2, "wat" + s: None}, None),
    ],
)
def test_lone_surrogates_anywhere_are_422_with_an_encodable_body(client, bad, path, body, field):
    raw = json.dumps(body(bad)).encode()  # ensure_ascii: the surrogate travels as a \\uXXXX escape
    payload = assert_json_refusal(post(client, path, raw), (422,))
    if field is not None:
        assert payload["field"] == field
    else:  # the field name is named, escaped so that it encodes (or no field: the body is not an object)
        assert payload["field"] is None if isinstance(body(bad), list) else "\\u" in payload["field"]
    assert "\\u" in payload["error"]  # the offending text, escaped


@pytest.mark.parametrize(
    ("path", "raw", "field"),
    [
        ("/v1/generate", b'{"n": 0, "n": 1}', "n"),
        ("/v1/generate", b'{"n": 2, "seed": 1, "seed": 2}', "seed"),
        ("/v1/score", b'{"names": ["emma"], "names": ["ava"]}', "names"),
        ("/v1/generate", b'{"n": 1, "x": {"a": 1, "a": 2}}', "a"),
    ],
)
def test_a_field_given_twice_is_422_naming_it(client, path, raw, field):
    """Which of two values was meant is not known (json.loads keeps the last): refused, not guessed."""
    payload = assert_json_refusal(post(client, path, raw), (422,))
    assert payload["field"] == field and "given twice" in payload["error"]


def test_an_unknown_field_with_a_surrogate_is_named_escaped(client):
    payload = assert_json_refusal(post(client, "/v1/score", b'{"na\\ud800me": 1}'), (422,))
    assert payload["field"] == "na\\ud800me" and "na\\ud800me" in payload["error"]


def test_a_model_file_name_with_undecodable_bytes_is_escaped_in_every_answer(model_files):
    """mm-serve shows the model's file name; an undecodable byte of it (a lone surrogate in Python) is escaped."""
    app = create_app(OnnxSampler(model_files["mlp"][1]), name="bad\udcffname.onnx")
    with TestClient(app, raise_server_exceptions=False) as test_client:
        answers = [
            test_client.get("/v1/model"),
            post(test_client, "/v1/generate", b'{"n": 2}'),
            post(test_client, "/v1/score", b'{"names": ["emma"]}'),
        ]
    for answer in answers:
        assert answer.status_code == 200, answer.content[:300]
        payload = json.loads(answer.content.decode("utf-8"))  # strict UTF-8
        assert payload.get("model", payload)["name"] == "bad\\udcffname.onnx"  # /v1/model: the summary itself


# --- any body, any bytes: 200 or 4xx, never 5xx --------------------------------------------------------

CHARS = st.one_of(st.characters(), st.sampled_from([*SURROGATES[:2], "\x00", "\u2028", "\U0001f600"]))
TEXT = st.text(CHARS, max_size=12)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.integers(min_value=-(10**400), max_value=10**400),  # JSON's integers have no bound: past a float's range too
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4))
KEYS = st.one_of(st.sampled_from(FIELDS), TEXT)
BODIES = st.dictionaries(KEYS, VALUES, max_size=5) | VALUES


def raw_bodies() -> st.SearchStrategy[bytes]:
    """JSON text (escaped or not, with or without surrogates), the same cut short or with a byte changed, any bytes."""
    encoded = st.builds(lambda body, ascii: json.dumps(body, ensure_ascii=ascii), BODIES, st.booleans())
    as_bytes = encoded.map(lambda text: text.encode("utf-8", "surrogatepass"))
    cut = st.tuples(as_bytes, st.integers(0, 200)).map(lambda pair: pair[0][: pair[1]])
    flipped = st.tuples(as_bytes, st.integers(0, 200), st.integers(0, 255)).map(
        lambda t: t[0][: t[1]] + bytes([t[2]]) + t[0][t[1] + 1 :]
    )
    return st.one_of(as_bytes, cut, flipped, st.binary(max_size=64))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=raw_bodies(), path=st.sampled_from(["/v1/generate", "/v1/score"]))
def test_no_body_is_a_server_error(client, raw, path):
    response = post(client, path, raw)
    if response.status_code == 200:
        assert set(response.json()) == {"names" if path == "/v1/generate" else "scores", "model"}
    else:
        assert_json_refusal(response, (400, 413, 422))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.fixed_dictionaries({}, optional={name: VALUES for name in FIELDS}))
def test_known_fields_with_any_values_are_never_a_server_error(client, body):
    for path in ("/v1/generate", "/v1/score"):
        response = post(client, path, json.dumps(body).encode())
        assert response.status_code == 200 or assert_json_refusal(response, (400, 422))


# --- a real server: the bytes held for clients are bounded, and handed back ------------------------------

CLIENTS = 250
BIG_NAMES = ["a" * 100] * 10_000  # the largest valid score body under the default 1 MiB cap
BIG = json.dumps({"names": BIG_NAMES}).encode()


def request_bytes(body: bytes, path: str = "/v1/score", length: int | None = None) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
    return f"{head}Content-Length: {len(body) if length is None else length}\r\n\r\n".encode() + body


def status_of(sock: socket.socket) -> int | None:
    """The status of the answer on `sock`, read to its end (None when the server closed without one)."""
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        while sock.recv(65536):
            pass
    except OSError:
        pass
    return int(data.split()[1]) if data.startswith(b"HTTP/1.1 ") else None


def big_request(port: int, payload: bytes) -> int | None:
    """Send one request on a new connection (the server may answer before it is all sent); its status."""
    with socket.create_connection((HOST, port), timeout=60) as sock:
        try:
            sock.sendall(payload)
        except OSError:
            pass  # answered 503 and closed mid-send: the answer may still be readable
        return status_of(sock)


class HealthWatch:
    """Polls /healthz every 0.2 s in a thread; every answer's status and latency is kept."""

    def __init__(self, port: int) -> None:
        self.port, self.results, self.stop = port, [], threading.Event()
        self.thread = threading.Thread(target=self.poll, daemon=True)

    def poll(self) -> None:
        while not self.stop.wait(0.2):
            start = time.monotonic()
            try:
                status = get(self.port, "/healthz", timeout=5)[0]
            except OSError as err:
                status = repr(err)
            self.results.append((status, time.monotonic() - start))

    def __enter__(self) -> HealthWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


def run_clients(count: int, work) -> list:
    results: list = [None] * count
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, work(i)), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    return results


def stalled_upload(port: int) -> None:
    """Half of a big body, then a pause, then the connection closed."""
    with socket.create_connection((HOST, port), timeout=10) as sock:
        try:
            sock.sendall(request_bytes(BIG[: len(BIG) // 2], length=len(BIG)))
            time.sleep(1.0)
        except OSError:
            pass


def test_big_bodies_at_once_stay_under_500_mb_and_are_handed_back(model_files):
    pids: list[int] = []
    start = time.monotonic()
    with running_server(model_files["mlp"][1], "--timeout", "5", pids=pids) as port:
        before = memory_mb(pids[0])
        with HealthWatch(port) as health:
            statuses = run_clients(CLIENTS, lambda i: big_request(port, request_bytes(BIG)))
            run_clients(CLIENTS, lambda i: stalled_upload(port))
            time.sleep(0.5)
        after = memory_mb(pids[0])
        assert get(port, "/healthz")[0] == 200
    assert time.monotonic() - start < 60
    assert set(statuses) <= {200, 503, None}, statuses
    assert statuses.count(200) >= 16 and statuses.count(503) > 0, statuses  # the first 16 were admitted at least
    assert after["VmHWM"] < 500, (before, after)
    assert after["VmRSS"] < before["VmRSS"] + 100, (before, after)
    assert len(health.results) >= 3 and all(status == 200 and s < 5 for status, s in health.results), health.results


# --- stalled clients are dropped after --timeout --------------------------------------------------------


def closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closed `sock` within `seconds`, and what it sent before closing."""
    sock.settimeout(seconds)
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except TimeoutError:
        return False, data
    except ConnectionResetError:
        pass
    return True, data


def test_stalled_heads_and_bodies_are_dropped_after_the_timeout(model_files):
    with running_server(model_files["bigram"][1], "--timeout", "1") as port:
        idle = socket.create_connection((HOST, port), timeout=10)
        head = socket.create_connection((HOST, port), timeout=10)
        head.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Le")
        body = socket.create_connection((HOST, port), timeout=10)
        body.sendall(request_bytes(b'{"names": ["em', length=1000))
        start = time.monotonic()
        for sock, expect in ((idle, b""), (head, b""), (body, b"HTTP/1.1 408")):
            with sock:
                closed, data = closed_within(sock, 6)
                assert closed and data.startswith(expect), data
        assert time.monotonic() - start < 6
        assert b"did not arrive within 1 s" in data
        assert get(port, "/healthz")[0] == 200


def server_end_closed(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closed its end of `sock` within `seconds`, read from the kernel's table of TCP sockets
    (/proc/net/tcp) without taking any data: its end leaves ESTABLISHED (01) even while its unsent answer and its
    FIN wait for a client that does not read."""
    here = sock.getsockname()[1]
    there = sock.getpeername()[1]
    deadline, seen_open = time.monotonic() + seconds, False
    while time.monotonic() < deadline:
        with open("/proc/net/tcp") as table:
            rows = [line.split() for line in table.readlines()[1:]]
        states = [
            row[3] for row in rows if int(row[1].split(":")[1], 16) == there and int(row[2].split(":")[1], 16) == here
        ]
        if states == ["01"]:
            seen_open = True
        elif seen_open:  # the row was found open before: a table without it would not pass for closed
            return True
        time.sleep(0.1)
    return False


def test_a_client_that_does_not_read_its_answer_is_dropped(model_files):
    """An answer of megabytes is sent in pieces; a client that stops taking them is dropped after --timeout."""
    body = json.dumps({"n": 200_000, "max_len": 256, "temperature": 50.0, "seed": 1}).encode()
    with running_server(model_files["bigram"][1], "--timeout", "1", "--max-n", "200000") as port:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: the server must wait for us
        with sock:
            sock.settimeout(30)
            sock.connect((HOST, port))
            sock.sendall(request_bytes(body, path="/v1/generate"))
            # The answer is computed, then its pieces wait for us: --timeout each, then the cut. Read nothing until
            # the server has closed its end (the socket's TCP state says so), as a client that stopped reading.
            assert server_end_closed(sock, 60)
            closed, data = closed_within(sock, 10)
        head, _, received = data.partition(b"\r\n\r\n")
        assert closed and head.startswith(b"HTTP/1.1 200"), head
        length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))[15:])
        assert length > 5_000_000 and len(received) < length  # cut short, not the whole answer
        assert get(port, "/healthz")[0] == 200


@contextmanager
def server_with_file_limit(model: Path, files: int, *options: str) -> Iterator[tuple[int, int]]:
    """mm-serve under a soft limit of `files` open files; yields (port, pid)."""
    port = free_port()
    command = [sys.executable, "-m", "makemore.runtime.serve.cli", str(model), "--host", HOST, "--port", str(port)]

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (files, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    with tempfile.TemporaryFile() as output:
        proc = subprocess.Popen(
            [*command, "--log-level", "warning", *options], stdout=output, stderr=subprocess.STDOUT, preexec_fn=limit
        )
        try:
            wait_until_healthy(proc, port, 60, output)
            yield port, proc.pid
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def test_healthz_answers_when_stalled_connections_reach_the_file_limit(model_files):
    with server_with_file_limit(model_files["bigram"][1], 160, "--timeout", "60") as (port, _):
        sockets = []
        try:
            for _ in range(400):  # far beyond the file limit: the oldest idle ones are dropped
                sock = socket.create_connection((HOST, port), timeout=5)
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost")
                sockets.append(sock)
            # The first answer waits for the server to work through the 400: asyncio pauses accepting for a
            # second each time the limit is hit before the oldest are closed (about 3 s here, quiet).
            for _ in range(5):
                assert get(port, "/healthz", timeout=30)[0] == 200
            dropped = sum(closed_within(sock, 0.01)[0] for sock in sockets[:100])
            assert dropped == 100  # the oldest went first
        finally:
            for sock in sockets:
                sock.close()


# --- --web: the bytes loaded at start, whatever happens to the file ------------------------------------


@pytest.mark.parametrize("change", ["move", "delete", "replace"])
def test_web_model_survives_its_file_changing(model_files, tmp_path, change):
    model = tmp_path / "model.onnx"
    shutil.copyfile(model_files["mlp"][1], model)
    fake_ort_dist(tmp_path / "dist")
    loaded = model.read_bytes()
    with running_server(model, "--web", "--ort-dist", str(tmp_path / "dist")) as port:
        if change == "move":
            model.rename(tmp_path / "elsewhere.onnx")
        elif change == "delete":
            model.unlink()
        else:
            shutil.copyfile(model_files["bigram"][1], model)
        shutil.rmtree(tmp_path / "dist")
        status, served = get(port, "/web/model.onnx")
        wasm_status, _ = get(port, "/web/ort-wasm-simd-threaded.wasm")
    assert (status, wasm_status) == (200, 200)
    assert served == loaded


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-1", "1e9", "soon"])
def test_a_bad_timeout_is_one_line_exit_2(model_files, tmp_path, value):
    result = run("mm-serve", model_files["bigram"][1], "--port", "0", "--timeout", value, cwd=tmp_path, timeout=60)
    assert_usage_error(result)
    assert "--timeout" in result.stderr


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--workers", "1024"),
        ("--workers", str(2**40)),
        ("--max-n", "1000001"),
        ("--max-n", "0"),
        ("--max-body", str((64 << 20) + 1)),
        ("--max-body", "-5"),
    ],
)
def test_what_a_server_holds_is_bounded_by_its_flags(model_files, tmp_path, flag, value):
    """Flags that would make one server hold memory beyond reason (a process per --workers, --max-n names per answer,
    16 bodies of --max-body bytes) are refused in one line before anything starts."""
    result = run("mm-serve", model_files["bigram"][1], "--port", "0", flag, value, cwd=tmp_path, timeout=60)
    assert_usage_error(result)
    assert flag in result.stderr


MALFORMED = [
    b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"POST /v1/score HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n",
    b"NOT HTTP AT ALL\r\n\r\n",
]


def test_a_request_that_is_not_http_gets_a_json_400(model_files):
    """What uvicorn's parser refuses is answered as every other refusal: 400 with an encodable JSON body."""
    with running_server(model_files["bigram"][1]) as port:
        for raw in MALFORMED:
            with socket.create_connection((HOST, port), timeout=10) as sock:
                try:
                    sock.sendall(raw)
                except OSError:  # the server may close before the whole head is sent (too large)
                    pass
                answer = b""
                try:
                    while chunk := sock.recv(65536):
                        answer += chunk
                except OSError:
                    pass
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 400"), (raw[:60], answer[:200])
            assert b"application/json" in head
            assert "not valid HTTP" in json.loads(body.decode("utf-8"))["error"]


# --- a client that leaves before its answer stops its request's work ----------------------------------------


def heavy_request(port: int, n: int = 10_000) -> socket.socket:
    """A connection that has sent a generate request of `n` names of at least 250 characters."""
    return sent_generate(port, {"n": n, "min_len": 250, "max_len": 256, "seed": 1})


def test_a_client_that_leaves_before_its_answer_stops_its_work(model_files, tmp_path):
    """Requests whose clients have gone stop at their next model call, running or queued, each in one log line:
    the server is idle at once and answers the next request, where it used to finish every abandoned one. A client
    gone mid-answer is seen before the next piece of it (no flood of asyncio's warnings in the log)."""
    log, pids, abandoned = tmp_path / "server.log", [], 6
    with running_server(model_files["mlp"][1], "--log-level", "info", log=log, pids=pids) as port:
        with heavy_request(port, n=4000) as sock:  # its answer (1 MB) begins, and the client leaves mid-answer
            assert sock.recv(12) == b"HTTP/1.1 200"
        socks = [heavy_request(port) for _ in range(abandoned)]  # two run (the server's concurrency), four wait
        time.sleep(0.3)
        for sock in socks:
            sock.close()
        deadline = time.monotonic() + 30
        while log.read_text().count("disconnected before its answer") < abandoned and time.monotonic() < deadline:
            time.sleep(0.05)
        busy = cpu_seconds(pids[0])
        time.sleep(0.5)
        idle = cpu_seconds(pids[0]) - busy
        with sent_generate(port, {"n": 3, "seed": 1}, timeout=10) as sock:
            assert sock.recv(12) == b"HTTP/1.1 200"
    text = log.read_text()
    stopped = [line for line in text.splitlines() if "disconnected before its answer: /v1/generate stopped" in line]
    assert len(stopped) == abandoned, text[-3000:]
    assert idle < 0.25, idle  # nothing left running (each abandoned request alone takes about a second of CPU)
    assert "Traceback" not in text and "socket.send() raised" not in text, text[-3000:]


def test_a_client_that_leaves_while_its_request_waits_gives_up_its_place_at_once(model_files, tmp_path):
    """Two long requests hold both turns; 14 more wait (16 in flight: the bound), and their clients leave. They
    leave the queue at once, not when a turn frees: a new request is admitted (it was a 503), and the two long ones
    are answered in full."""
    log = tmp_path / "server.log"
    with running_server(model_files["mlp"][1], "--max-n", "30000", "--log-level", "info", log=log) as port:
        live = [heavy_request(port, n=30_000) for _ in range(2)]
        time.sleep(0.2)  # both running
        waiting = [sent_generate(port, {"n": 5}) for _ in range(14)]
        time.sleep(0.2)
        for sock in waiting:
            sock.close()
        time.sleep(0.3)
        running = [select.select([sock], [], [], 0)[0] == [] for sock in live]  # no answer has begun yet
        with sent_generate(port, {"n": 3}) as sock:
            sock.settimeout(60)
            assert sock.recv(12) == b"HTTP/1.1 200"
        for sock in live:
            with sock:
                sock.settimeout(60)
                assert sock.recv(12) == b"HTTP/1.1 200"
    text = log.read_text()
    assert text.count("disconnected before its answer: /v1/generate stopped") == 14, text[-3000:]
    assert all(running), "the long requests ended before the test could tell"


@pytest.mark.parametrize("kind", ["mlp", "gru"])
def test_a_stopped_sampler_ends_its_work_at_the_next_model_call(model_files, kind):
    """Sampler.until: the same names, scores and beams until its event is set; then every kind of work, and a
    request already running on two threads, ends in Stopped."""
    from makemore.runtime import Stopped

    sampler = OnnxSampler(model_files[kind][1], workers=2)
    stop = threading.Event()
    view = sampler.until(stop)
    assert view.sample(300, seed=4) == sampler.sample(300, seed=4)
    assert view.score(["emma", "zzq"]) == sampler.score(["emma", "zzq"])
    assert view.beam(5, width=8) == sampler.beam(5, width=8)
    running = view.sample_chunks(200_000, seed=4, min_len=30, max_len=40)
    next(running)  # a chunk done: the rest are being made on both threads
    stop.set()
    with pytest.raises(Stopped):
        list(running)
    calls = [lambda: view.sample(5), lambda: view.score(["emma"]), lambda: view.beam(3), lambda: view.nll(["ann"])]
    if kind == "mlp":
        calls.append(lambda: view.logits(np.zeros((2, sampler.block_size), np.int64)))
    for work in calls:
        with pytest.raises(Stopped):
            work()
    assert sampler.until(threading.Event()).sample(300, seed=4) == sampler.sample(300, seed=4)  # the model untouched
