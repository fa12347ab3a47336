"""The dashboard's web app (Starlette): one page, the JSON it polls, exports and /metrics.

Safe by default:

* read-only unless made with ``allow_retry``; then a state-changing request
  (a POST) needs the token of this start (written into the page, never into
  the JSON), a JSON body, and no ``Origin`` but this server's own: another
  page in the browser cannot make one (no CSRF);
* when it serves loopback only, requests naming another ``Host`` are refused,
  so a web page whose name resolves to 127.0.0.1 (DNS rebinding) cannot read it;
* the page loads nothing from elsewhere (its script and styles ship in the
  package; a Content-Security-Policy forbids the rest);
* the memory is shown as given with its secrets hidden (:mod:`messor.url`).
"""

from __future__ import annotations

import hmac
import html
import json
import secrets
from collections.abc import Collection, Iterator
from importlib.resources import files

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from messor.cli.export import FORMATS, lines
from messor.dashboard.data import Watcher, prometheus_text
from messor.failures import tasks_in_group
from messor.memories.base import FAILED, Memory
from messor.memories.records import TaskStatus

__all__ = ["LOOPBACK_HOSTS", "create_app"]

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
#: Tasks reset per call when a group is retried.
RETRY_BATCH = 1000
_STATIC = files("messor.dashboard") / "static"
_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
_MEDIA = {"jsonl": "application/x-ndjson", "csv": "text/csv", "json": "application/json"}
#: What an export may select: every status a memory knows (gave_up included), or all.
_EXPORTED = ("all", *(status.value for status in TaskStatus))


def create_app(
    memory: Memory,
    label: str,
    *,
    allow_retry: bool = False,
    hosts: Collection[str] | None = LOOPBACK_HOSTS,
    token: str | None = None,
) -> Starlette:
    """The dashboard of ``memory`` (shown as ``label``, which must hide secrets).

    ``hosts``: the names requests may be addressed to (their ``Host``), None
    for any: a server bound to loopback answers only to loopback names.
    ``token``: what a POST must carry (default: a new random one).
    """
    watcher = Watcher(memory, label)
    token = token or secrets.token_urlsafe(32)
    page = (_STATIC / "index.html").read_text(encoding="utf-8")
    page = page.replace("{{memory}}", html.escape(label)).replace(
        "{{token}}", html.escape(token) if allow_retry else ""
    )

    def index(request: Request) -> Response:
        return Response(page, media_type="text/html; charset=utf-8")

    def overview(request: Request) -> Response:
        return JSONResponse({**watcher.overview(), "allow_retry": allow_retry})

    def failures(request: Request) -> Response:
        return JSONResponse(watcher.failure_groups())

    def metrics(request: Request) -> Response:
        return PlainTextResponse(
            prometheus_text(watcher.overview()), media_type="text/plain; version=0.0.4"
        )

    def export(request: Request) -> Response:
        status = request.query_params.get("status", "all")
        form = request.query_params.get("format", "jsonl")
        if form not in FORMATS or status not in _EXPORTED:
            return PlainTextResponse(
                f"format is one of {', '.join(FORMATS)}; status one of {', '.join(_EXPORTED)}",
                status_code=400,
            )
        records = memory.iter_records(None if status == "all" else status)
        name = f"messor-{status}.{form}"
        return StreamingResponse(
            _encoded(lines(form, records)),
            media_type=_MEDIA[form],
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    async def retry(request: Request) -> Response:
        if not allow_retry:
            return _refused(403, "this dashboard is read-only: start it with --allow-retry")
        refusal = _check_post(request, token)
        if refusal is not None:
            return refusal
        try:
            body = json.loads(await request.body())
            key = body["group"]
            if not isinstance(key, str):
                raise TypeError(key)
        except (ValueError, KeyError, TypeError):
            return _refused(400, 'send {"group": KEY}')
        # Memory calls block: off the event loop, on Starlette's thread pool.
        from starlette.concurrency import run_in_threadpool

        reset = await run_in_threadpool(_retry_group, memory, key)
        watcher.forget()
        return JSONResponse({"group": key, "reset": reset})

    async def guard(request: Request, call_next: RequestResponseEndpoint) -> Response:
        if hosts is not None and _host_name(request.headers.get("host", "")) not in hosts:
            return _refused(421, f"this dashboard answers to {', '.join(hosts)} only")
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = _POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    return Starlette(
        routes=[
            Route("/", index),
            Route("/api/overview", overview),
            Route("/api/failures", failures),
            Route("/api/retry", retry, methods=["POST"]),
            Route("/export", export),
            Route("/metrics", metrics),
            Mount("/static", StaticFiles(directory=str(_STATIC)), name="static"),
        ],
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=guard)],
    )


def _check_post(request: Request, token: str) -> Response | None:
    """Why a state-changing request is refused, or None: token, JSON body, same origin."""
    given = request.headers.get("x-messor-token", "")
    if not hmac.compare_digest(given.encode(), token.encode()):
        return _refused(403, "missing or wrong token: use the retry buttons of the page")
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.headers.get('host')}":
        return _refused(403, "a request from another site's page is refused")
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return _refused(415, "send JSON")
    return None


def _retry_group(memory: Memory, key: str) -> int:
    ids = list(tasks_in_group(memory, key))
    reset = 0
    for start in range(0, len(ids), RETRY_BATCH):
        reset += len(memory.reset_tasks(ids[start : start + RETRY_BATCH], only_from={FAILED}))
    return reset


def _refused(code: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=code)


def _host_name(host: str) -> str:
    """``127.0.0.1:8642`` -> ``127.0.0.1``; ``[::1]:8642`` -> ``::1``."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def _encoded(chunks: Iterator[str]) -> Iterator[bytes]:
    """Text chunks as UTF-8, a few hundred rows per write."""
    buffer: list[str] = []
    size = 0
    for chunk in chunks:
        buffer.append(chunk)
        size += len(chunk)
        if size > 64 * 1024:
            yield "".join(buffer).encode("utf-8", "backslashreplace")
            buffer, size = [], 0
    yield "".join(buffer).encode("utf-8", "backslashreplace")
