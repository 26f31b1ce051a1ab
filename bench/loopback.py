"""A real mm-serve (or a static file server) on a loopback port and a bounded load generator for mm-serve."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"  # loopback only, ever


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def memory_mb(pid: int) -> dict[str, float]:
    """A process's resident memory now (VmRSS) and at its peak (VmHWM), in MB (Linux /proc)."""
    with open(f"/proc/{pid}/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    return {key: int(fields[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM")}


def cpu_seconds(pid: int) -> float:
    """A process's user and system CPU time so far, threads included (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sent_generate(port: int, body: dict, timeout: float = 60.0) -> socket.socket:
    """A connection that has sent POST /v1/generate with the JSON `body` (its answer is left to read, or not)."""
    raw = json.dumps(body).encode()
    sock = socket.create_connection((HOST, port), timeout=timeout)
    sock.sendall(f"POST /v1/generate HTTP/1.1\r\nHost: x\r\nContent-Length: {len(raw)}\r\n\r\n".encode() + raw)
    return sock


def get(port: int, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """GET a path on the loopback server: (status, body)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@contextmanager
def running_server(
    model: str | Path,
    *options: str,
    startup_timeout: float = 60.0,
    pids: list[int] | None = None,
    log: Path | None = None,
) -> Iterator[int]:
    """Start `mm-serve model` on a free loopback port in a subprocess; yield the port; stop it on exit.

    The server's process id is appended to `pids` when given (to read its memory); its output goes to `log`.
    """
    port = free_port()
    command = [sys.executable, "-m", "makemore.runtime.serve.cli", str(model), "--host", HOST, "--port", str(port)]
    with open(log, "w+b") if log is not None else tempfile.TemporaryFile() as output:
        proc = subprocess.Popen([*command, "--log-level", "warning", *options], stdout=output, stderr=subprocess.STDOUT)
        if pids is not None:
            pids.append(proc.pid)
        try:
            wait_until_healthy(proc, port, startup_timeout, output)
            yield port
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_until_healthy(proc: subprocess.Popen, port: int, timeout: float, log) -> None:
    """Poll GET /healthz until it answers 200; raise with the server's output if it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"mm-serve exited with {proc.returncode}: {log.read().decode(errors='replace')}")
        try:
            if get(port, "/healthz", timeout=1.0)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"mm-serve did not answer /healthz on port {port} within {timeout} s")


@contextmanager
def static_server(folder: str | Path, startup_timeout: float = 30.0) -> Iterator[int]:
    """Serve `folder` with `python -m http.server` on a free loopback port (as any static host would); yield it."""
    port = free_port()
    command = [sys.executable, "-m", "http.server", str(port), "--bind", HOST, "--directory", str(folder)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            try:
                get(port, "/", timeout=1.0)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"http.server did not answer on port {port}") from None
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@dataclass
class Reply:
    """One request of a load run: its index, HTTP status, decoded JSON (None if not JSON) and latency."""

    index: int
    status: int
    payload: object
    seconds: float


@dataclass
class LoadResult:
    replies: list[Reply] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # transport failures: refused, reset, timed out
    seconds: float = 0.0

    @property
    def requests_per_second(self) -> float:
        return len(self.replies) / self.seconds if self.seconds else 0.0

    def latency_quantile(self, q: float) -> float:
        """The q-quantile of the latencies in seconds (nearest rank)."""
        times = sorted(reply.seconds for reply in self.replies)
        return times[min(len(times) - 1, max(0, int(q * len(times) + 0.5) - 1))] if times else float("nan")


def run_load(
    port: int, requests: int, clients: int, body: Callable[[int], dict], path: str = "/v1/generate", timeout=30.0
) -> LoadResult:
    """POST `requests` JSON bodies (`body(i)` for request i) from `clients` threads, each on one keep-alive
    connection; every socket operation times out, so the run ends by itself."""
    result = LoadResult()
    lock = threading.Lock()
    next_index = iter(range(requests))

    def client() -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
        try:
            while True:
                with lock:
                    i = next(next_index, None)
                if i is None:
                    return
                data = json.dumps(body(i)).encode()
                start = time.perf_counter()
                try:
                    conn.request("POST", path, data, {"Content-Type": "application/json"})
                    response = conn.getresponse()
                    raw = response.read()
                except (OSError, http.client.HTTPException) as err:
                    with lock:
                        result.errors.append(f"request {i}: {type(err).__name__}: {err}")
                    conn.close()
                    continue
                seconds = time.perf_counter() - start
                try:
                    payload = json.loads(raw)
                except ValueError:
                    payload = None
                with lock:
                    result.replies.append(Reply(i, response.status, payload, seconds))
        finally:
            conn.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - start
    return result
