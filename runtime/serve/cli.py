"""mm-serve: load a makemore ONNX model once and serve it over HTTP (uvicorn), torch-free."""

from __future__ import annotations

import ipaddress
import socket
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from makemore.data.bounds import SERVER
from makemore.data.cli import fail, require_extra, run_cli
from makemore.runtime.pretrained import MODEL_HELP, model_or_pretrained

MIN_TIMEOUT, MAX_TIMEOUT = 0.01, 86_400.0  # seconds, --timeout's bounds
HEAD_LIMIT = 16 * 1024  # bytes h11 buffers for an incomplete head (its default, said here): beyond, 400 and the
# connection closed. A longer head that arrives whole is parsed (so memory stays bounded either way)

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)


def is_loopback(host: str) -> bool:
    """Whether `host` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bindable(host: str, port: int) -> None:
    """Fail in one line now when uvicorn could not listen on host:port (unknown host, port in use, no permission)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError) as err:
        fail(f"cannot resolve --host {host!r}: {getattr(err, 'strerror', None) or err}")
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            sock.bind(address)
        except OSError as err:
            fail(f"cannot listen on {host}:{port}: {err.strerror}")


@app.command(help="Serve a makemore ONNX model: POST /v1/generate, POST /v1/score, GET /v1/model, a page at /.")
def serve_command(
    model: Annotated[Path | None, typer.Argument(help=MODEL_HELP, show_default=False)] = None,
    host: Annotated[str, typer.Option(help="Address to bind; anything but loopback is reachable by others.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0: any free port).")] = 8000,
    max_n: Annotated[
        int, typer.Option(help=f"Most names one request may generate or score (1 to {SERVER['max_n'].high:,}).")
    ] = 10_000,
    max_body: Annotated[
        int, typer.Option(help=f"Largest request body, in bytes (1 to {SERVER['max_body'].high:,}).")
    ] = 1 << 20,
    data: Annotated[Path | None, typer.Option(help="Training names that novel=true drops [default: bundled]")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level: debug, info, warning, error, critical.")] = "info",
    workers: Annotated[
        int,
        typer.Option(
            help="Server processes (uvicorn workers), each with its own session, sharing the port; at most the usable"
            " cores."
        ),
    ] = 1,
    web: Annotated[
        bool,
        typer.Option(
            "--web",
            help="Also serve mm-web's page at /web/, which samples in the visitor's browser: the model file is then"
            " downloadable at /web/model.onnx. Needs onnxruntime-web (`make web`, or --ort-dist).",
        ),
    ] = False,
    ort_dist: Annotated[
        Path | None,
        typer.Option(help="onnxruntime-web's dist folder for --web [default: the checkout's, after `make web`]."),
    ] = None,
    max_in_flight: Annotated[
        int,
        typer.Option(min=1, help="POST requests held at once, from body to answer; more are answered 503 unread."),
    ] = 16,
    timeout: Annotated[
        float,
        typer.Option(
            help="Seconds a client has to send a request's head (or the connection is dropped), its body (or 408),"
            " or to take each 64 KiB of an answer.",
        ),
    ] = 20.0,
    max_connections: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Connections kept open; a new one drops the longest idle [default: 1000 or less, by the file limit].",
        ),
    ] = None,
) -> None:
    require_extra("mm-serve", "serve", ("starlette", "uvicorn"))
    if log_level not in ("debug", "info", "warning", "error", "critical"):
        fail(f"unknown log level {log_level!r}: choose debug, info, warning, error or critical")
    import uvicorn
    from makemore.runtime.parallel import check_workers, usable_cores
    from makemore.runtime.serve.factory import FACTORY, ServeConfig, build_app, for_workers, http_protocol, known_names

    check_workers(workers, "--workers")
    if workers > usable_cores():  # each is a process with its own model and session: more than cores only add memory
        fail(f"--workers is server processes: at most {usable_cores()} (the usable cores here), got {workers}")
    for flag, value in (("--max-n", max_n), ("--max-body", max_body)):
        bound = SERVER[flag[2:].replace("-", "_")]
        if not bound.admits(value):
            fail(f"{flag} must be a whole number from 1 to {bound.high:,}, got {value}")
    if not MIN_TIMEOUT <= timeout <= MAX_TIMEOUT:  # also refuses nan
        fail(f"--timeout must be between {MIN_TIMEOUT:g} and {MAX_TIMEOUT:g} seconds, got {timeout:g}")
    if ort_dist is not None and not web:
        fail("--ort-dist is onnxruntime-web's folder for --web: add --web to serve the in-browser page too")
    check_bindable(host, port)
    dist = (
        str(ort_dist) if ort_dist is not None else None
    )  # workers start in this working directory: relative paths mean the same there
    config = ServeConfig(
        str(model_or_pretrained(model)),
        str(data) if data else None,
        max_n,
        max_body,
        workers,
        web=web,
        ort_dist=dist,
        in_flight=max_in_flight,
        timeout=timeout,
        max_connections=max_connections,
    )
    known = known_names(config)  # the data is read here, once (it may be a pipe), before any worker starts
    app = build_app(config, known)  # the model is checked here too
    guards: dict[str, Any] = {
        "http": http_protocol(config),
        "h11_max_incomplete_event_size": HEAD_LIMIT,
        "timeout_keep_alive": 5,
    }
    if not is_loopback(host):
        print(f"warning: binding {host}: other machines can reach this server", file=sys.stderr)
    if workers == 1:
        uvicorn.run(app, host=host, port=port, log_level=log_level, **guards)
        return
    del app  # each worker process builds its own
    with for_workers(config, known) as shared:
        shared.to_environment()
        uvicorn.run(FACTORY, factory=True, workers=workers, host=host, port=port, log_level=log_level, **guards)


def main() -> None:
    run_cli(app)


if __name__ == "__main__":
    main()
