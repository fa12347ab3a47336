"""``messor dashboard``: a live web page of a harvest (the ``messor[dashboard]`` extra).

The web libraries are imported only when the command runs: without them it
says what to install, and the rest of the command line never needs them.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from typing import Any

from messor.cli.common import CommandError, Formatter, add_memory_argument, open_chosen_memory

__all__ = ["add_command", "is_loopback"]

DEFAULT_PORT = 8642
INSTALL = "pip install 'messor[dashboard]'"


def add_command(commands: Any) -> None:
    parser = commands.add_parser(
        "dashboard",
        help="a live web page of the harvest: counts, progress, rate, runs, failures",
        description="Serve a page that shows the harvest live: counts and progress against "
        "the known total, outcomes per second over time, the runs going on (with their "
        "concurrency and pauses), failures grouped by cause, exports of the results, and "
        "/metrics for Prometheus. It reads the memory and changes nothing, unless started "
        f"with --allow-retry. Needs the dashboard extra: {INSTALL}.",
        epilog="examples:\n  messor dashboard                       http://127.0.0.1:8642/\n"
        "  messor dashboard --memory redis://cache:6379/0?namespace=crawl --port 9000\n"
        "  messor dashboard --allow-retry          retry buttons for failure groups",
        formatter_class=Formatter,
    )
    add_memory_argument(parser)
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="the address to listen on (default 127.0.0.1: this machine only; anything else "
        "lets others on the network read the harvest)",
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"the port (default {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--allow-retry",
        action="store_true",
        help="show buttons that make a failure group's tasks pending again (each request "
        "needs this start's token, which only the page holds)",
    )
    parser.set_defaults(handler=dashboard)


def dashboard(arguments: argparse.Namespace) -> int:
    try:
        import uvicorn

        from messor.dashboard.app import LOOPBACK_HOSTS, create_app
    except ImportError as exc:
        raise CommandError(
            f"messor dashboard needs the dashboard extra, which is not installed ({exc.name} "
            f"is missing): {INSTALL}"
        ) from None
    loopback = is_loopback(arguments.host)
    memory, choice = open_chosen_memory(arguments.memory)
    if not loopback:
        print(
            f"messor: WARNING: listening on {arguments.host}, not on loopback: anyone who can "
            "reach this machine can read the harvest (task ids, errors, results)"
            + (" and retry its failures" if arguments.allow_retry else "")
            + ". Put it behind an authenticating proxy, or use --host 127.0.0.1 with an SSH "
            "tunnel.",
            file=sys.stderr,
            flush=True,
        )
    hosts = (*LOOPBACK_HOSTS, arguments.host) if loopback else None
    app = create_app(memory, choice.shown, allow_retry=arguments.allow_retry, hosts=hosts)
    where = f"[{arguments.host}]" if ":" in arguments.host else arguments.host
    mode = "retry buttons enabled" if arguments.allow_retry else "read-only"
    print(
        f"Dashboard of {choice.shown} on http://{where}:{arguments.port}/ ({mode}; Ctrl-C ends)",
        flush=True,
    )
    with memory:
        uvicorn.run(app, host=arguments.host, port=arguments.port, log_level="warning")
    return 0


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
