"""uvicorn's HTTP/1.1 protocol (h11) with two more bounds: a client must send a request's head within a timeout,
and at most a number of connections stay open, so stalled clients cannot use up the server's file descriptors."""

from __future__ import annotations

import asyncio
import json
import resource
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

FD_RESERVE = 64  # file descriptors kept for the model, the thread pool, logs and the listening socket
MAX_CONNECTIONS = 1000  # the default ceiling, whatever the file limit


def connection_bound(asked: int | None = None) -> int:
    """Connections mm-serve keeps open at most: `asked` (default MAX_CONNECTIONS), fewer when the open-file limit
    leaves less room (a connection is a file descriptor: beyond the limit the server could not accept any)."""
    wanted = asked if asked is not None else MAX_CONNECTIONS
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(8, min(wanted, soft - FD_RESERVE))


class GuardedH11(H11Protocol):
    """H11Protocol, plus: a connection that has not sent a complete request head `timeout` seconds after it
    opened (or after its last answer) is dropped, as is one stuck closing; a new connection beyond
    `max_connections` drops the longest idle one (or itself, when every other is busy with a request)."""

    def __init__(self, *args: Any, timeout: float = 20.0, max_connections: int = MAX_CONNECTIONS, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.head_timeout = timeout
        self.max_connections = max_connections
        self.timer: asyncio.TimerHandle | None = None
        self.armed_cycle: object = None
        self.idle_since = 0.0
        self.dropped = False  # aborted: its socket closes soon, it no longer counts

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.arm()
        live = [c for c in self.connections if not getattr(c, "dropped", False)]
        if len(live) > self.max_connections:
            oldest = min((c for c in live if is_idle(c)), key=idle_since, default=self)
            if isinstance(oldest, GuardedH11):
                oldest.drop()

    def send_400_response(self, msg: str) -> None:
        """A request that is no HTTP (a bad head, a negative Content-Length, a head too large) is answered as every
        other refusal is, JSON naming no field, then the connection closes (uvicorn's own answer is plain text)."""
        body = json.dumps({"error": f"the request is not valid HTTP/1.1: {msg}", "field": None}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        headers.append((b"connection", b"close"))
        for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"), h11.Data(data=body)):
            self.transport.write(self.conn.send(event))
        self.transport.write(self.conn.send(h11.EndOfMessage()))
        self.transport.close()

    def drop(self) -> None:
        """Close the connection now, whatever it has not sent yet."""
        self.dropped = True
        self.disarm()
        self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.disarm()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self.arm()

    def arm(self) -> None:
        """Start waiting for the next request's head."""
        self.disarm()
        self.armed_cycle = self.cycle
        self.idle_since = self.loop.time()
        self.timer = self.loop.call_later(self.head_timeout, self.on_timer)

    def disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def on_timer(self) -> None:
        """Drop the connection if no request head came (or it is stuck closing); otherwise look again later."""
        self.timer = None
        if self.transport.is_closing() or (self.cycle is self.armed_cycle and is_idle(self)):
            self.drop()
            return
        self.timer = self.loop.call_later(self.head_timeout, self.on_timer)


def is_idle(connection: Any) -> bool:
    """Whether a connection has no request in progress (it waits for a head, or is closing)."""
    cycle = getattr(connection, "cycle", None)
    transport = getattr(connection, "transport", None)
    return cycle is None or cycle.response_complete or (transport is not None and transport.is_closing())


def idle_since(connection: Any) -> float:
    return getattr(connection, "idle_since", 0.0)
