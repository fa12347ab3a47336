"""A real redis-server for the tests: started once per session on a free loopback port.

Where the Debian package is not installed the real-Redis tests skip; in CI
(``CI=true``) they fail instead, because ``.ci/run`` installs it.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis


@dataclass
class RedisServer:
    """A running redis-server, reachable over TCP and a unix socket."""

    port: int
    socket_path: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL: the server dies at once, as in a crash or an out-of-memory kill."""
        self.process.kill()
        self.process.wait(timeout=10)

    def restart(self) -> None:
        """Start the server again: same port, directory and options (and data, if it keeps any)."""
        self.process = subprocess.Popen(self.process.args, stdout=subprocess.DEVNULL)
        _wait_until_up(self)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_redis_server(*options: str) -> RedisServer:
    """A new redis-server without persistence; ``options`` are added to (or override) its own."""
    binary = shutil.which("redis-server")
    if binary is None:
        message = "redis-server is not installed (Debian: apt-get install redis-server)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; .ci/run must provide it", pytrace=False)
        pytest.skip(message)
    directory = Path(tempfile.mkdtemp(prefix="messor-redis-"))
    port = free_port()
    socket_path = directory / "redis.sock"
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--unixsocket", str(socket_path), "--unixsocketperm", "700", "--dir", str(directory),
         *options],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    server = RedisServer(port, socket_path, process)
    _wait_until_up(server)
    return server


def _wait_until_up(server: RedisServer) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            server.client().ping()
            return
        except redis.ConnectionError:
            if server.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {server.port}") from None
            time.sleep(0.05)


_server: RedisServer | None = None


def real_redis() -> RedisServer:
    """The session's redis-server, started on first use (skips or fails when there is none)."""
    global _server
    if _server is None:
        _server = start_redis_server()
        atexit.register(_server.stop)
    return _server
