"""S3 for the tests: moto in-process (``mock_aws``) for speed, and moto's HTTP server
(``ThreadedMotoServer`` on a free loopback port) so that boto3's real HTTP path runs.

Both are started once per session, on first use; every memory gets a bucket
of its own. Fake credentials come from the autouse fixture in conftest.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import boto3

from messor import Memory, open_memory

REGION = "us-east-1"

_mock: Any = None
_server: Any = None


def mock_endpoint() -> None:
    """Turn moto's in-process mock on for the rest of the session."""
    global _mock
    if _mock is None:
        from moto import mock_aws

        _mock = mock_aws()
        _mock.start()


def server_endpoint() -> str:
    """The URL of the session's moto HTTP server."""
    global _server
    if _server is None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
        _server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        _server.start()
    host, port = _server.get_host_and_port()
    return f"http://{host}:{port}"


_clients: dict[str | None, Any] = {}


def client(endpoint_url: str | None = None) -> Any:
    """A boto3 S3 client for the mock (None) or the server, made once: making one takes 50 ms."""
    if endpoint_url not in _clients:
        _clients[endpoint_url] = boto3.client("s3", region_name=REGION, endpoint_url=endpoint_url)
    return _clients[endpoint_url]


def new_bucket(endpoint_url: str | None = None) -> str:
    """A new, empty bucket (in the mock, or on the server at ``endpoint_url``)."""
    name = f"messor-{uuid.uuid4().hex[:16]}"
    client(endpoint_url).create_bucket(Bucket=name)
    return name


def s3_memory(kind: str, **options: Any) -> Memory:
    """An empty S3 memory of ``kind`` ("s3-mock" or "s3-server") in a new bucket.

    Both share one boto3 client per endpoint; the tests of the plugin itself
    let it make its own, from the URL.
    """
    endpoint = None
    if kind == "s3-mock":
        mock_endpoint()
    else:
        endpoint = server_endpoint()
    bucket = new_bucket(endpoint)
    return open_memory(f"s3://{bucket}/harvest", client=client(endpoint), **options)
