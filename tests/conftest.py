"""Fixtures shared by the whole suite."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from messor import InProcessMemory, Memory, SQLiteMemory, open_memory
from tests.primitive_memory import PrimitivesOnlyMemory
from tests.redis_server import real_redis
from tests.s3_server import REGION, new_bucket, s3_memory, server_endpoint
from tests.seed_memory import SeedOnlyMemory


@pytest.fixture(autouse=True)
def isolated_workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test runs in its own empty directory, with no memory configured."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MESSOR_MEMORY", raising=False)
    return tmp_path


@pytest.fixture(autouse=True)
def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach real AWS: fake credentials, no profile or endpoint of the machine's."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")


MEMORY_KINDS = [
    "sqlite-file",
    "sqlite-ram",
    "in-process",
    "seed-only",
    "primitives-only",
    "redis-fake",
    "redis-real",
    "s3-mock",
    "s3-server",
]


def make_memory(kind: str, directory: Path) -> Memory:
    """An empty memory of ``kind`` (Redis ones in a namespace of their own)."""
    if kind == "redis-fake":
        import fakeredis

        from messor_redis import RedisMemory

        client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
        return RedisMemory(client, namespace="test")
    if kind == "redis-real":
        return open_memory(f"{real_redis().url}?namespace={uuid.uuid4().hex}")
    if kind.startswith("s3-"):
        # No batch delay: tests want outcomes written at once, not gathered.
        return s3_memory(kind, batch_delay=0)
    if kind == "sqlite-file":
        return SQLiteMemory(directory / "harvest.db")
    if kind == "sqlite-ram":
        return SQLiteMemory(":memory:")
    if kind == "in-process":
        return InProcessMemory()
    if kind == "seed-only":
        return SeedOnlyMemory()
    if kind == "primitives-only":
        return PrimitivesOnlyMemory()
    raise ValueError(kind)


def opened_memory(kind: str, directory: Path) -> Iterator[Memory]:
    """A fixture body: an empty memory of ``kind``; cleared (shared server) and closed after."""
    memory = make_memory(kind, directory)
    yield memory
    if kind == "redis-real":
        memory.clear()
    memory.close()


@pytest.fixture(params=MEMORY_KINDS)
def any_memory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Memory]:
    """Each memory this repository ships, one that implements only the seed's methods and one
    that implements only the primitives."""
    yield from opened_memory(request.param, tmp_path)


@pytest.fixture
def endpoint() -> str:
    """The URL of the session's moto S3 server."""
    return server_endpoint()


@pytest.fixture
def bucket(endpoint: str) -> str:
    """A new, empty bucket on that server."""
    return new_bucket(endpoint)
