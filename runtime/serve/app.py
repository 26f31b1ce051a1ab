"""The Starlette app: generate, score, model metadata, health and the page; inference runs in a thread pool."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from typing import Any, TypeVar

import anyio
from anyio import to_thread
from makemore.contract import ModelInfo, ModelOutputError
from makemore.contract.metadata import summary_json
from makemore.data import UserError
from makemore.runtime.novelty import known_names, novel_names
from makemore.runtime.options import BOUNDS, SamplingOptions, check_option, label_index
from makemore.runtime.sampling import Sampler, Stopped
from makemore.runtime.serve.flow import Admission
from makemore.runtime.serve.in_browser import in_browser_routes
from makemore.runtime.serve.validation import (
    BOOLEAN,
    INTEGER,
    STRING,
    STRINGS,
    Field,
    RequestError,
    check_body,
    encodable,
    error_json,
    parse_json,
)
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

T = TypeVar("T")
LOG = logging.getLogger("uvicorn.error")  # uvicorn's own log: one line per event, no traceback


@dataclass(frozen=True)
class Limits:
    """What one request may ask for: the work of a request is bounded by max_n * max_len characters."""

    max_n: int = 10_000  # names per request (generate) or names scored (score)
    max_body: int = 1 << 20  # bytes of request body
    max_len: int = 256  # longest name a request may generate or score
    concurrency: int = 2  # requests sampled or scored at once (the rest wait): bounds the server's memory
    in_flight: int = 16  # POST requests held at once, body to answer (more get 503 unread): bounds the bytes held
    timeout: float = 20.0  # seconds a client has to send a body, or to take each piece of an answer


def generate_fields(limits: Limits) -> dict[str, Field]:
    """The body of POST /v1/generate besides the sampling options (SamplingOptions checks those); defaults: mm-gen's."""
    return {
        "n": Field(INTEGER, 20, low=1, high=limits.max_n),
        "novel": Field(BOOLEAN, False),
        "beam": Field(INTEGER, None, nullable=True),  # its range: data.bounds.BEAM, as Sampler.beam words it
    }


def score_fields(limits: Limits) -> dict[str, Field]:
    """The body of POST /v1/score: 1..max_n names of 1..max_len characters each, and a conditional model's label
    (None: the mixture of its labels, as Sampler.score); the label is checked against the model by label_index."""
    return {
        "names": Field(STRINGS, required=True, low=1, high=limits.max_n, item_high=limits.max_len),
        "label": Field(STRING, None, nullable=True),
    }


def labels_metadata(info: ModelInfo) -> list[dict[str, Any]]:
    """A conditional model's labels in index order, each with its training count and frequency; [] without labels."""
    total = sum(info.label_counts)
    return [
        {"name": name, "count": count, "frequency": count / total}
        for name, count in zip(info.labels, info.label_counts, strict=True)
    ]


def model_summary(info: ModelInfo, name: str) -> dict[str, Any]:
    """The short description of the model sent with every answer."""
    return {"name": name, "kind": info.kind, "vocab": info.vocab.chars, "block_size": info.block_size}


def model_metadata(info: ModelInfo, name: str) -> dict[str, Any]:
    """What the model file says about itself (GET /v1/model); the per-step loss history stays in the file."""
    summary: dict[str, Any] = summary_json(
        {
            **model_summary(info, name),
            "max_len": info.max_len,
            "config": info.config,
            "metrics": {key: value for key, value in info.metrics.items() if key != "history"},
            "data_sha256": info.data_sha256,
            "labels": labels_metadata(info),
        }
    )
    return summary


M_ARENA_MAX = -8  # glibc's mallopt parameter


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none (musl, macOS). The first call also caps
    glibc's heaps at two: each worker thread would otherwise keep a heap of its own, whose freed memory
    stays resident (measured: 700 MB peak for 40 large score requests instead of under 400)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(M_ARENA_MAX, 2)
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


def released(work: Callable[..., T], *args: object) -> T:
    """work(*args), then the freed heap handed back to the system (a big request leaves no resident memory)."""
    try:
        return work(*args)
    finally:
        trim_heap()


def sampling_options(body: dict[str, Any], info: ModelInfo, limits: Limits) -> SamplingOptions:
    """The request's SamplingOptions (a SamplingError naming the field otherwise), max_len within the server's bound."""
    options = SamplingOptions.of(**{key: body[key] for key in BOUNDS if key in body})
    options.for_model(info, ceiling=limits.max_len)  # in the order every surface checks them
    return options


def generate_names(sampler: Sampler, known: frozenset[str], n: int, novel: bool, options: SamplingOptions) -> list[str]:
    """The names of a checked generate request: what OnnxSampler.sample (or mm-gen --novel-vs) gives."""
    if novel:
        return novel_names(sampler, n, known, options)
    return sampler.sample(n, options)


def beam_names(sampler: Sampler, n: int, width: int, options: SamplingOptions) -> list[tuple[str, float]]:
    """The names of a checked beam request with their log-probabilities (what mm-gen --beam prints)."""
    return sampler.beam(n, options, width=width)


def name_scores(sampler: Sampler, names: list[str], label: str | None) -> list[float]:
    """The scores of a checked score request (what mm-eval --score prints)."""
    return sampler.score(names, label)


def outcome(work: Callable[..., T], *args: object) -> tuple[T | None, Exception | None]:
    """work(*args) (its freed heap handed back, see released), or the exception it raised: the caller raises it
    outside its task group, which would wrap it in an ExceptionGroup that no handler matches."""
    try:
        return released(work, *args), None
    except Exception as err:
        return None, err


async def stop_when_gone(request: Request, stop: threading.Event, waiting: anyio.CancelScope) -> None:
    """Once the client disconnects (called after its body was read: all that can arrive is that), set `stop` (its
    work ends at its next model call) and cancel `waiting` (a request still waiting for its turn leaves the queue,
    and its place among the requests in flight, at once; onnxruntime's work in a thread is not cancelled by it)."""
    while (await request.receive())["type"] != "http.disconnect":
        await anyio.sleep(0.05)  # not a busy loop, whatever the server hands over instead
    stop.set()
    waiting.cancel()


async def read_body(request: Request, limit: int, timeout: float = Limits.timeout) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed `limit` bytes, and with 408 when
    it has not all arrived within `timeout` seconds (its bytes are dropped and the connection closed).

    A client that goes away mid-body is logged in one line (no answer can reach it).
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"the body is larger than {limit} bytes", close=True)
    chunks: list[bytes] = []
    try:
        with anyio.fail_after(timeout):
            await receive_chunks(request, limit, chunks)
    except TimeoutError:
        raise RequestError(408, f"the body did not arrive within {timeout:g} s", close=True) from None
    except ClientDisconnect:
        LOG.info("%s disconnected before sending the whole body of %s", client_of(request), request.url.path)
        raise RequestError(400, "the client disconnected mid-body") from None
    return b"".join(chunks)


def client_of(request: Request) -> str:
    """The client's address as a log line names it."""
    return f"{request.client.host}:{request.client.port}" if request.client else "a client"


async def receive_chunks(request: Request, limit: int, chunks: list[bytes]) -> None:
    """Append the body's chunks to `chunks`; 413 once they exceed `limit` bytes."""
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            chunks.clear()
            raise RequestError(413, f"the body is larger than {limit} bytes", close=True)
        chunks.append(chunk)


def page_html() -> str:
    """The single static page, shipped as package data."""
    return files("makemore.runtime").joinpath("static/index.html").read_text(encoding="utf-8")


def create_app(
    sampler: Sampler,
    known: frozenset[str] = frozenset(),
    limits: Limits | None = None,
    name: str = "model",
    web: dict[str, bytes] | None = None,
) -> Admission:
    """An ASGI app serving one loaded model; `known` are the training names that "novel" drops; `web`: mm-web's
    site files, served under /web/ (the page's switch to "in this browser"), or None. Requests with a body are
    admitted `limits.in_flight` at a time (see flow.Admission)."""
    limits = limits or Limits()
    known = known_names(known, sampler.info)  # a conditional model's training lines stand for their items
    name = encodable(name)  # a file name's undecodable bytes (lone surrogates) as escapes: every answer encodes
    summary = model_summary(sampler.info, name)
    metadata = model_metadata(sampler.info, name)
    page = page_html() if web is None else page_html().replace('<nav id="where" hidden>', '<nav id="where">')
    gen_fields, sc_fields = generate_fields(limits), score_fields(limits)
    limiter = anyio.CapacityLimiter(limits.concurrency)
    _malloc_trim()  # caps glibc's heaps before the first worker thread allocates

    async def answer(request: Request, work: Callable[..., T], *args: object) -> T:
        """work(sampler, *args) in a worker thread (`limits.concurrency` at once); a client that leaves first stops
        it at its next model call (no answer could reach it), in one log line."""
        stop = threading.Event()
        outcomes: list[tuple[T | None, Exception | None]] = []
        async with anyio.create_task_group() as group:
            group.start_soon(stop_when_gone, request, stop, group.cancel_scope)
            work_now = functools.partial(outcome, work, sampler.until(stop), *args)
            outcomes.append(await to_thread.run_sync(work_now, limiter=limiter))
            group.cancel_scope.cancel()
        if not outcomes or isinstance(outcomes[0][1], Stopped):  # none: it left while waiting for its turn
            LOG.info("%s disconnected before its answer: %s stopped", client_of(request), request.url.path)
            raise RequestError(400, "the client disconnected before its answer")
        result, err = outcomes[0]
        if err is not None:
            raise err
        return result  # type: ignore[return-value]

    async def generate(request: Request) -> JSONResponse:
        raw = await read_body(request, limits.max_body, limits.timeout)
        # checked in a worker thread: an exclude list of 100,000 names takes a while to sort and compile, and the
        # event loop must keep answering (/healthz stalled 0.3 s per such request)
        args, options = await to_thread.run_sync(generate_request, raw)
        if args["beam"] is not None:
            if args["novel"]:
                raise RequestError(422, "beam cannot be combined with novel", "novel")
            found = await answer(request, beam_names, args["n"], args["beam"], options)
            names, log_probs = [name for name, _ in found], [lp for _, lp in found]
            return JSONResponse({"names": names, "log_probs": log_probs, "model": summary})
        names = await answer(request, generate_names, known, args["n"], args["novel"], options)
        return JSONResponse({"names": names, "model": summary})

    def generate_request(raw: bytes) -> tuple[dict[str, Any], SamplingOptions]:
        body = parse_json(raw)
        return check_body(body, gen_fields, also_known=tuple(BOUNDS)), sampling_options(body, sampler.info, limits)

    async def score(request: Request) -> JSONResponse:
        args = check_body(parse_json(await read_body(request, limits.max_body, limits.timeout)), sc_fields)
        names, label = args["names"], args["label"]
        label_index(check_option("label", label, BOUNDS["label"]), sampler.info)  # 422 before any work
        nlls = await answer(request, name_scores, names, label)
        scores = [{"name": name, "nll": nll} for name, nll in zip(names, summary_json(nlls), strict=True)]
        return JSONResponse({"scores": scores, "model": summary})

    async def model(request: Request) -> JSONResponse:
        return JSONResponse(metadata)

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def index(request: Request) -> HTMLResponse:
        return HTMLResponse(page)

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/v1/model", model, methods=["GET"]),
        Route("/v1/generate", generate, methods=["POST"]),
        Route("/v1/score", score, methods=["POST"]),
        *(in_browser_routes(web) if web is not None else []),
    ]
    handlers: dict[Any, Any] = {
        RequestError: request_error,
        ModelOutputError: model_error,
        UserError: user_error,
        HTTPException: http_error,
        Exception: server_error,
    }
    app = Starlette(routes=routes, exception_handlers=handlers)
    heavy = frozenset({"/v1/generate", "/v1/score"})
    return Admission(app, heavy, limits.in_flight, limits.timeout, on_idle=trim_heap)


def trim_heap() -> None:
    """Hand the freed heap back to the system (when no request with a body is left in flight)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


async def request_error(request: Request, err: RequestError) -> JSONResponse:
    headers = {"connection": "close"} if err.close else None
    return JSONResponse(err.to_json(), status_code=err.status, headers=headers)


async def user_error(request: Request, err: UserError) -> JSONResponse:
    """A value refused by the sampling options or the model (SamplingError names its field; a name outside
    the vocabulary is a DatasetError of the field `names`): 422, as every other field error."""
    field = getattr(err, "field", None) or ("names" if request.url.path == "/v1/score" else None)
    return JSONResponse(error_json(str(err), field), status_code=422)


async def model_error(request: Request, err: ModelOutputError) -> JSONResponse:
    """The model failed on a valid request (non-finite logits, a run that fails): the server's fault, 500 with why."""
    LOG.error("%s: %s", request.url.path, err)
    return JSONResponse(error_json(str(err), None), status_code=500)


async def http_error(request: Request, err: HTTPException) -> JSONResponse:
    return JSONResponse(error_json(str(err.detail), None), status_code=err.status_code, headers=err.headers)


async def server_error(request: Request, err: Exception) -> JSONResponse:
    return JSONResponse({"error": "internal server error", "field": None}, status_code=500)
