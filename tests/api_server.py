"""A loopback HTTP API that throttles the way real ones do, for pacing tests and benchmarks.

    with ApiServer(ApiConfig(rate=50, retry_after=2)) as api:       # a thread of this process
        requests.get(f"{api.url}/items/7")
    with ApiProcess(ApiConfig(rate=50, retry_after=2)) as api:      # a child process
        ...
    python tests/api_server.py '{"rate": 50, "retry_after": 2}'     # by hand; prints its URL

Every path answers ``200 {"id": <last path segment>}`` unless the server
declines it, in this order:

- 429 when the caller's key is over its quota: a token bucket of ``rate``
  requests per second per key (``burst`` tokens deep, one second's worth by
  default), with ``Retry-After`` in seconds, or as an HTTP date when asked;
- 503 (or 529, ``overload_status``) when ``max_in_flight`` requests are
  already being answered, with ``Retry-After`` only if ``overload_retry_after``;
- 404 for the ids in ``missing``.

Accepted requests are answered after ``latency`` seconds (fixed, or uniform in
a range, as an LLM API is); declined ones at once. ``rate_changes`` changes
the quota at given times after the first request, as a provider under load
does. ``GET /_log`` returns, as JSON, an exact log: every request with its
arrival, its answer, and whether it was *sent inside a Retry-After window*
the server had announced to that key, that is, after a 429 or 503 told the key
to wait and before the time it named. A client tells when it sent a request
in the header ``X-Sent-At`` (``time.monotonic()``, one clock for every process
on Linux); without it the arrival time stands in. The window opens when the
server writes its answer, so a request sent in the instant that answer takes
to cross loopback counts as inside: the figure errs against the client. Each
such request also says how long its key had been told to wait when it was sent
(``window_age``), which tells a request already on its way from a late one.

Why a hand-written ``asyncio.Protocol`` rather than aiohttp or
``ThreadingHTTPServer``: it needs nothing installed, answers HTTP/1.1 with
keep-alive from one event loop without a thread per connection, and so
sustains several thousand requests per second on one core (measured in
tests/test_api_server.py's docstring) where the clients under test, not the
server, set the pace. Requests are answered in order per connection.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import dataclasses
import email.utils
import json
import math
import random
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

__all__ = ["ApiConfig", "ApiProcess", "ApiServer", "Entry"]

Clock = Callable[[], float]


@dataclass(frozen=True)
class ApiConfig:
    """How the API throttles; the defaults answer everything at once."""

    rate: float | None = None
    """Requests per second each key may make (a token bucket); None: no quota."""
    burst: float | None = None
    """Depth of each key's bucket; None: one second of ``rate``, at least one request."""
    retry_after: float | None = None
    """Seconds a 429 announces; None: until the key's bucket holds a token again."""
    retry_after_date: bool = False
    """Announce ``Retry-After`` as an HTTP date rather than as seconds."""
    rate_changes: tuple[tuple[float, float], ...] = ()
    """``(seconds after the first request, new rate)`` pairs, in order."""
    key_by: str | None = None
    """What a quota is per: None one for everyone, ``"path"`` the first path segment,
    any other text the value of that request header (``"X-Api-Key"``, ``"Host"``)."""
    rates_by_key: dict[str, float] = field(default_factory=dict)
    """Quotas of particular keys, which ``rate_changes`` leave alone."""
    max_in_flight: int | None = None
    """Requests answered at once; more are declined as overloaded."""
    overload_status: int = 503
    overload_retry_after: float | None = None
    latency: float | tuple[float, float] = 0.0
    """Seconds before an accepted request is answered, or a (low, high) range."""
    missing: frozenset[str] = frozenset()
    """Ids (last path segments) answered 404."""
    seed: int = 0

    def to_json(self) -> str:
        fields = dataclasses.asdict(self)
        fields["missing"] = sorted(self.missing)
        return json.dumps(fields)

    @classmethod
    def from_json(cls, text: str) -> ApiConfig:
        fields: dict[str, Any] = json.loads(text)
        if isinstance(fields.get("latency"), list):
            fields["latency"] = tuple(fields["latency"])
        fields["rate_changes"] = tuple(tuple(pair) for pair in fields.get("rate_changes", ()))
        fields["missing"] = frozenset(fields.get("missing", ()))
        return cls(**fields)


@dataclass(frozen=True)
class Entry:
    """One request as the server saw it; times on the server's clock, in seconds."""

    arrived: float
    sent: float | None
    answered: float
    method: str
    path: str
    key: str
    status: int
    in_window: bool
    window_age: float | None
    """Seconds since the key was first told to wait, without a break, when this request was
    sent (None: not sent inside a window)."""
    in_flight: int
    """Requests being answered when this one arrived, not counting it."""
    rate: float | None
    """The key's quota when this request arrived."""
    retry_after: str | None
    """The ``Retry-After`` header of the answer, as sent."""


class _Bucket:
    """A token bucket whose rate may change; refills lazily on each look."""

    def __init__(self, rate: float, depth: float | None, now: float) -> None:
        self.rate, self.depth = rate, depth
        self.tokens, self.updated = self.capacity, now

    @property
    def capacity(self) -> float:
        return self.depth if self.depth is not None else max(1.0, self.rate)

    def refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def take(self, now: float) -> bool:
        self.refill(now)
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True

    def wait(self) -> float:
        """Seconds until the next token, as a whole number of at least one."""
        if self.rate <= 0:
            return 3600.0
        return float(max(1, math.ceil((1.0 - self.tokens) / self.rate)))


class _Windows:
    """The Retry-After windows announced to one key, to tell if a send fell inside one."""

    def __init__(self) -> None:
        self.opened: list[float] = []
        self.until: list[float] = []  # running maximum: windows may overlap
        self.since: list[float] = []  # when the unbroken run of windows began

    def announce(self, at: float, until: float) -> None:
        still_waiting = bool(self.until) and at < self.until[-1]
        self.since.append(self.since[-1] if still_waiting else at)
        self.opened.append(at)
        self.until.append(max(until, self.until[-1]) if self.until else until)

    def age(self, sent: float) -> float | None:
        """How long the key had been told to wait at ``sent``; None: it had not been."""
        index = bisect.bisect_left(self.opened, sent) - 1
        if index < 0 or sent >= self.until[index]:
            return None
        return sent - self.since[index]


class _Api:
    """The decisions and the log: state of one server, touched only on its event loop."""

    def __init__(self, config: ApiConfig, clock: Clock) -> None:
        self.config, self.clock = config, clock
        self.random = random.Random(config.seed)
        self.buckets: dict[str, _Bucket] = {}
        self.windows: dict[str, _Windows] = {}
        self.first: float | None = None
        self.changes_done = 0
        self.in_flight = 0
        self.log: list[Entry] = []
        self.connections: set[asyncio.Transport] = set()

    def key(self, path: str, headers: dict[str, str]) -> str:
        if self.config.key_by is None:
            return ""
        if self.config.key_by == "path":
            return path.lstrip("/").split("/", 1)[0]
        return headers.get(self.config.key_by.lower(), "")

    def base_rate(self, now: float) -> float | None:
        """The quota now, after the ``rate_changes`` whose time has come."""
        if self.first is None:
            self.first = now
        rate = self.config.rate
        for at, changed in self.config.rate_changes:
            if now - self.first >= at:
                rate = changed
        return rate

    def bucket(self, key: str, now: float) -> _Bucket | None:
        rate = self.config.rates_by_key.get(key, self.base_rate(now))
        if rate is None:
            return None
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = _Bucket(rate, self.config.burst, now)
        elif bucket.rate != rate:
            bucket.refill(now)
            bucket.rate = rate
            bucket.tokens = min(bucket.tokens, bucket.capacity)
        return bucket

    def retry_after(self, seconds: float, now: float) -> tuple[str, float]:
        """The header announcing ``seconds`` of waiting, and when the wait ends on our clock."""
        if not self.config.retry_after_date:
            return f"{seconds:g}", now + seconds
        wall = time.time()
        date = math.ceil(wall + seconds)  # an HTTP date has whole seconds: never announce less
        return email.utils.formatdate(date, usegmt=True), now + (date - wall)

    def decide(self, path: str, headers: dict[str, str]) -> tuple[int, str | None, float]:
        """Status, Retry-After header and seconds of latency for one request; logs it later."""
        now = self.clock()
        key = self.key(path, headers)
        bucket = self.bucket(key, now)
        header: str | None = None
        if bucket is not None and not bucket.take(now):
            wait = self.config.retry_after if self.config.retry_after is not None else bucket.wait()
            header, until = self.retry_after(wait, now)
            self.windows.setdefault(key, _Windows()).announce(now, until)
            return 429, header, 0.0
        limit = self.config.max_in_flight
        if limit is not None and self.in_flight >= limit:
            if self.config.overload_retry_after is not None:
                header, until = self.retry_after(self.config.overload_retry_after, now)
                self.windows.setdefault(key, _Windows()).announce(now, until)
            return self.config.overload_status, header, 0.0
        identifier = path.rstrip("/").rsplit("/", 1)[-1]
        if identifier in self.config.missing:
            return 404, None, 0.0
        latency = self.config.latency
        if isinstance(latency, tuple):
            return 200, None, self.random.uniform(*latency)
        return 200, None, latency


_REASONS = {200: "OK", 404: "Not Found", 429: "Too Many Requests", 503: "Service Unavailable"}


def _response(status: int, body: bytes, retry_after: str | None, close: bool) -> bytes:
    head = [
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Overloaded')}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    if retry_after is not None:
        head.append(f"Retry-After: {retry_after}")
    if close:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class _Connection(asyncio.Protocol):
    """One keep-alive connection: parses requests and answers them one at a time, in order."""

    def __init__(self, api: _Api) -> None:
        self.api = api
        self.buffer = bytearray()
        self.busy = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.api.connections.add(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.api.connections.discard(self.transport)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.next_request()

    def next_request(self) -> None:
        while not self.busy and self.transport is not None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if len(self.buffer) < end + 4 + length:
                return
            del self.buffer[: end + 4 + length]
            connection = headers.get("connection", "").lower()
            close = connection == "close" or (version == "HTTP/1.0" and connection != "keep-alive")
            self.handle(method, target.split("?", 1)[0], headers, close)

    def handle(self, method: str, path: str, headers: dict[str, str], close: bool) -> None:
        api = self.api
        if path == "/_log":
            body = json.dumps([dataclasses.asdict(entry) for entry in api.log]).encode()
            self.answer(_response(200, body, None, close), close)
            return
        arrived = api.clock()
        in_flight = api.in_flight
        stamp = headers.get("x-sent-at")
        sent = float(stamp) if stamp else None
        key = api.key(path, headers)
        windows = api.windows.get(key)
        age = None if windows is None else windows.age(sent if sent is not None else arrived)
        status, retry_after, latency = api.decide(path, headers)
        bucket = api.buckets.get(key)

        def finish() -> None:
            if status == 200:
                api.in_flight -= 1
            identifier = path.rstrip("/").rsplit("/", 1)[-1]
            body = json.dumps({"id": identifier} if status == 200 else {"status": status})
            api.log.append(
                Entry(arrived, sent, api.clock(), method, path, key, status, age is not None, age,
                      in_flight, bucket.rate if bucket else None, retry_after)
            )  # fmt: skip
            self.answer(_response(status, body.encode(), retry_after, close), close)

        if status != 200:
            finish()
            return
        api.in_flight += 1
        if latency <= 0:
            finish()
            return
        self.busy = True
        asyncio.get_running_loop().call_later(latency, finish)

    def answer(self, response: bytes, close: bool) -> None:
        self.busy = False
        if self.transport is None:
            return
        self.transport.write(response)
        if close:
            self.transport.close()
            return
        self.next_request()


async def _serve(api: _Api, port: int = 0) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: _Connection(api), "127.0.0.1", port, backlog=1024)


class ApiServer:
    """The API on an event loop in a thread of this process: ``with ApiServer(config) as api``.

    ``clock`` replaces ``time.monotonic`` for the quota, the windows and the
    log, so a test can step time instead of sleeping.
    """

    def __init__(self, config: ApiConfig | None = None, clock: Clock = time.monotonic) -> None:
        self.api = _Api(config or ApiConfig(), clock)
        self.loop = asyncio.new_event_loop()
        self.server = self.loop.run_until_complete(_serve(self.api))
        self.port: int = self.server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    @property
    def in_flight(self) -> int:
        """Requests accepted and not yet answered."""
        return self.api.in_flight

    def log(self) -> list[Entry]:
        return list(self.api.log)

    def close(self) -> None:
        async def stop() -> None:
            self.server.close()
            for transport in list(self.api.connections):  # even those waiting out a latency
                transport.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ApiProcess:
    """The API in a child process, so its CPU is not counted as the client's."""

    def __init__(self, config: ApiConfig | None = None) -> None:
        command = [sys.executable, str(Path(__file__)), (config or ApiConfig()).to_json()]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("http://"):
            self.process.kill()
            raise RuntimeError(f"the API server did not start: {line!r}")
        self.url = line.strip()

    def log(self) -> list[Entry]:
        with urllib.request.urlopen(f"{self.url}/_log", timeout=60) as answer:
            return [Entry(**fields) for fields in json.load(answer)]

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main() -> None:
    config = ApiConfig.from_json(sys.argv[1] if len(sys.argv) > 1 else "{}")

    async def run() -> None:
        server = await _serve(_Api(config, time.monotonic))
        print(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
        async with server:
            await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
