"""What the server holds for its clients, bounded: requests with a body in flight (the rest are answered 503
unread) and answers sent in pieces that wait for the client to read (a client that stops reading is dropped)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PIECE = 1 << 16  # bytes of an answer handed to the server at once (uvicorn then waits until the client reads)
BUSY = json.dumps({"error": "the server is busy: too many requests in flight, retry shortly", "field": None}).encode()


class Admission:
    """ASGI middleware: at most `limit` requests to `heavy` paths in flight at once, from their first body byte
    to their answer's last; one more is answered 503 at once without reading its body. Every answer is sent in
    pieces of PIECE bytes, each of which the client must take within `timeout` seconds (or it is dropped)."""

    def __init__(
        self, app: ASGIApp, heavy: frozenset[str], limit: int, timeout: float, on_idle: Callable[[], object]
    ) -> None:
        self.app, self.heavy, self.limit, self.timeout, self.on_idle = app, heavy, limit, timeout, on_idle
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = paced(send, self.timeout)
        if scope["path"] not in self.heavy or scope["method"] in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            await busy(send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self.on_idle()


async def busy(send: Send) -> None:
    """503, closing the connection: the request's body stays unread."""
    headers = [(b"content-type", b"application/json"), (b"retry-after", b"1"), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": BUSY})


class ClientStalled(Exception):
    """The client did not read an answer's piece within the timeout."""


def paced(send: Send, timeout: float) -> Send:
    """`send` that hands a body over in pieces of PIECE bytes, each within `timeout` seconds; after one that
    times out, the rest of the answer is dropped (uvicorn then closes the connection)."""
    stalled = False

    async def send_paced(message: Message) -> None:
        nonlocal stalled
        if stalled:
            return
        body = message.get("body", b"")
        if message["type"] != "http.response.body" or len(body) <= PIECE:
            pieces = [message]
        else:
            more = message.get("more_body", False)
            starts = range(0, len(body), PIECE)
            pieces = [
                {"type": message["type"], "body": body[i : i + PIECE], "more_body": more or i + PIECE < len(body)}
                for i in starts
            ]
        for piece in pieces:
            with anyio.move_on_after(timeout) as scope:
                await send(piece)
            if scope.cancelled_caught:
                stalled = True
                return
            # the event loop runs between pieces: a client gone mid-answer is seen (uvicorn then drops the rest)
            # before the next piece, not after the whole answer was written to a closed socket (asyncio's
            # "socket.send() raised exception." for each piece)
            await anyio.lowlevel.checkpoint()

    return send_paced
