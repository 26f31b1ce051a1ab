"""mm-serve's "in this browser" mode: mm-web's page, its scripts, onnxruntime-web's files and the served model
under /web/, so one server offers both (the page samples there with no further requests to the server)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from makemore.contract import ModelInfo
from makemore.data import UserError
from makemore.runtime.serve.validation import error_json
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".wasm": "application/wasm",
    ".json": "application/json",
    ".onnx": "application/octet-stream",
}


def browser_files(model: str, info: ModelInfo, ort_dist: str | None) -> dict[str, bytes]:
    """The site's files for /web/ (mm-serve --web), read into memory once: the model file (and onnxruntime-web's)
    moved, replaced or deleted later changes nothing served. A UserError when a file cannot be read, or when the
    model changed while it was being read."""
    from makemore.runtime.web.folder import MARKER
    from makemore.runtime.web.site import MODEL_NAME, find_ort_dist, site_files

    sources = site_files(model, info, find_ort_dist(ort_dist), server="../")
    content = {name: read_source(source) for name, source in sources.items()}
    if json.loads(content[MARKER]).get("model_sha256") != hashlib.sha256(content[MODEL_NAME]).hexdigest():
        raise UserError(f"{model} changed while mm-serve was reading it: start it again")
    return content


def read_source(source: bytes | Path) -> bytes:
    """A site file's bytes (read now when given as a path); a UserError when it cannot be read."""
    if isinstance(source, bytes):
        return source
    try:
        return source.read_bytes()
    except OSError as err:
        raise UserError(f"cannot read {source}: {err.strerror or err}") from None


def in_browser_routes(content: dict[str, bytes]) -> list[Route]:
    """GET /web/ (the page) and /web/NAME (its files), from memory."""

    def respond(name: str) -> Response:
        source = content.get(name)
        if source is None:
            return JSONResponse(error_json(f"no file {name!r:.60} in /web/", None), status_code=404)
        return Response(source, media_type=MEDIA_TYPES[Path(name).suffix])

    async def index(request: Request) -> Response:
        return respond("index.html")

    async def asset(request: Request) -> Response:
        return respond(request.path_params["name"])

    return [Route("/web/", index, methods=["GET"]), Route("/web/{name}", asset, methods=["GET"])]
