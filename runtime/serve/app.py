"""The Starlette app: generate, score, model metadata, health and the page; inference runs in a thread pool."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files

from makemore.data import UserError
from makemore.runtime.model_info import ModelInfo
from makemore.runtime.novelty import novel_names
from makemore.runtime.sampling import Sampler
from makemore.runtime.serve.validation import (
    BOOLEAN,
    INTEGER,
    NUMBER,
    STRING,
    STRINGS,
    Field,
    RequestError,
    check_body,
    parse_json,
)
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

SAMPLING_OPTIONS = ("temperature", "top_k", "top_p", "prefix", "max_len")


@dataclass(frozen=True)
class Limits:
    """What one request may ask for."""

    max_n: int = 10_000  # names per request (generate) or names scored (score)
    max_body: int = 1 << 20  # bytes of request body
    max_len: int = 256  # longest name a request may ask for (bounds memory: n * max_len tokens)


def generate_fields(limits: Limits) -> dict[str, Field]:
    """The body of POST /v1/generate; defaults match mm-gen."""
    return {
        "n": Field(INTEGER, 20, low=1, high=limits.max_n),
        "seed": Field(INTEGER, None, nullable=True, low=0),
        "temperature": Field(NUMBER, 1.0),
        "top_k": Field(INTEGER, None, nullable=True),
        "top_p": Field(NUMBER, None, nullable=True),
        "prefix": Field(STRING, ""),
        "max_len": Field(INTEGER, None, nullable=True, high=limits.max_len),
        "novel": Field(BOOLEAN, False),
    }


def score_fields(limits: Limits) -> dict[str, Field]:
    """The body of POST /v1/score."""
    return {"names": Field(STRINGS, required=True, low=1, high=limits.max_n)}


def model_summary(info: ModelInfo, name: str) -> dict:
    """The short description of the model sent with every answer."""
    return {"name": name, "kind": info.kind, "vocab": info.vocab.chars, "block_size": info.block_size}


def model_metadata(info: ModelInfo, name: str) -> dict:
    """What the model file says about itself (GET /v1/model); the per-step loss history stays in the file."""
    return {
        **model_summary(info, name),
        "max_len": info.max_len,
        "config": info.config,
        "metrics": {key: value for key, value in info.metrics.items() if key != "history"},
        "data_sha256": info.data_sha256,
    }


def generate_names(sampler: Sampler, known: frozenset[str], args: dict) -> list[str]:
    """The names of a checked generate request: what OnnxSampler.sample (or mm-gen --novel-vs) gives."""
    options = {key: args[key] for key in SAMPLING_OPTIONS}
    if args["novel"]:
        return novel_names(sampler, args["n"], known, args["seed"], options)
    return sampler.sample(args["n"], seed=args["seed"], **options)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"the body is larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def page_html() -> str:
    """The single static page, shipped as package data."""
    return files("makemore.runtime").joinpath("static/index.html").read_text(encoding="utf-8")


def create_app(
    sampler: Sampler, known: frozenset[str] = frozenset(), limits: Limits | None = None, name: str = "model"
) -> Starlette:
    """An ASGI app serving one loaded model; `known` are the training names that "novel" drops."""
    limits = limits or Limits()
    known = frozenset(known)
    summary = model_summary(sampler.info, name)
    metadata = model_metadata(sampler.info, name)
    page = page_html()
    gen_fields, sc_fields = generate_fields(limits), score_fields(limits)

    async def generate(request: Request) -> JSONResponse:
        args = check_body(parse_json(await read_body(request, limits.max_body)), gen_fields)
        names = await run_in_threadpool(generate_names, sampler, known, args)
        return JSONResponse({"names": names, "model": summary})

    async def score(request: Request) -> JSONResponse:
        names = check_body(parse_json(await read_body(request, limits.max_body)), sc_fields)["names"]
        nlls = await run_in_threadpool(sampler.score, names)
        scores = [{"name": name, "nll": nll} for name, nll in zip(names, nlls, strict=True)]
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
    ]
    handlers = {RequestError: request_error, UserError: user_error, HTTPException: http_error, Exception: server_error}
    return Starlette(routes=routes, exception_handlers=handlers)


async def request_error(request: Request, err: RequestError) -> JSONResponse:
    return JSONResponse(err.to_json(), status_code=err.status)


async def user_error(request: Request, err: UserError) -> JSONResponse:
    """The runtime's own refusals (SamplingError, DatasetError: prefix or name outside the vocabulary)."""
    return JSONResponse({"error": str(err), "field": None}, status_code=400)


async def http_error(request: Request, err: HTTPException) -> JSONResponse:
    return JSONResponse({"error": err.detail, "field": None}, status_code=err.status_code, headers=err.headers)


async def server_error(request: Request, err: Exception) -> JSONResponse:
    return JSONResponse({"error": "internal server error", "field": None}, status_code=500)
