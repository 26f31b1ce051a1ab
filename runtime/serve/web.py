"""mm-serve's "in this browser" mode: mm-web's page, its scripts, onnxruntime-web's files and the served model
under /web/, so one server offers both (the page samples there with no further requests to the server)."""

from __future__ import annotations

from pathlib import Path

from makemore.contract import ModelInfo
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".wasm": "application/wasm",
    ".json": "application/json",
    ".onnx": "application/octet-stream",
}


def browser_files(model: str, info: ModelInfo, ort_dist: str | None) -> dict[str, bytes | Path]:
    """The site's files for /web/ (mm-serve --web); a UserError when onnxruntime-web's files are not at hand."""
    from makemore.runtime.web.site import find_ort_dist, site_files

    return site_files(model, info, find_ort_dist(ort_dist), server="../")


def web_routes(content: dict[str, bytes | Path]) -> list[Route]:
    """GET /web/ (the page) and /web/NAME (its files), from memory or from disk."""

    def respond(name: str) -> Response:
        source = content.get(name)
        if source is None:
            return JSONResponse({"error": f"no file {name!r:.60} in /web/"}, status_code=404)
        media_type = MEDIA_TYPES[Path(name).suffix]
        if isinstance(source, Path):
            return FileResponse(source, media_type=media_type)
        return Response(source, media_type=media_type)

    async def index(request: Request) -> Response:
        return respond("index.html")

    async def asset(request: Request) -> Response:
        return respond(request.path_params["name"])

    return [Route("/web/", index, methods=["GET"]), Route("/web/{name}", asset, methods=["GET"])]
