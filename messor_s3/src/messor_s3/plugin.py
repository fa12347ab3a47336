"""The ``messor`` entry point of messor-s3: registers the ``s3`` memory.

Importing this module imports neither boto3 nor the memory: listing the
installed backends stays cheap.
"""

from __future__ import annotations

import difflib
import os
from typing import TYPE_CHECKING, Any

from messor.plugin import ConfigurationError, Memory, MemoryURL, Register, hookimpl

if TYPE_CHECKING:
    from messor_s3.bucket import Bucket
    from messor_s3.memory import S3Memory

#: Folders near an empty prefix looked into for a harvest, at most.
CHECKED = 5
#: URL query options (all optional): where S3 is, and how the memory behaves.
URL_OPTIONS = ("region", "endpoint_url", "profile", "refresh_interval", "batch_delay")


def open_s3(url: MemoryURL | None, *, create: bool = True, **options: Any) -> Memory:
    """Open ``s3://bucket/prefix?region=...&endpoint_url=...&profile=...``.

    Credentials, region and endpoint come from boto3's usual chain
    (environment, ``~/.aws``, ``AWS_ENDPOINT_URL`` for MinIO and other
    S3-compatible stores, instance roles); the URL query may name the region,
    the endpoint or a profile, never a secret. Keywords: the same options,
    plus ``client`` (a boto3 S3 client of your own, instead of region,
    endpoint and profile) and, by bare name, ``bucket`` and ``prefix``. With
    ``create=False`` (the command line inspecting a harvest) a prefix that
    holds no task is a ConfigurationError naming prefixes near it that do: a
    mistyped one would otherwise show as an empty harvest.
    """
    import boto3
    from botocore.config import Config

    from messor_s3.bucket import Bucket
    from messor_s3.memory import S3Memory

    settings = _settings(url, options)
    client = settings.pop("client", None)
    if client is None:
        session = boto3.session.Session(profile_name=settings.pop("profile", None))
        # Throttling (503 SlowDown) and 5xx answers are retried with backoff,
        # unless AWS_RETRY_MODE / AWS_MAX_ATTEMPTS say otherwise.
        if {"AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS"} & set(os.environ):
            config = Config()
        else:
            config = Config(retries={"mode": "standard", "max_attempts": 10})
        region: str | None = settings.pop("region", None)
        endpoint: str | None = settings.pop("endpoint_url", None)
        client = session.client("s3", region_name=region, endpoint_url=endpoint, config=config)
    bucket = Bucket(client, settings.pop("bucket"), settings.pop("prefix", ""))
    seconds: dict[str, Any] = {k: float(v) for k, v in settings.items()}  # what is left
    memory = S3Memory(bucket, **seconds)
    memory.load()  # fails here, naming bucket and prefix, if S3 cannot be used
    if not create:
        _refuse_empty(memory)
    return memory


def _refuse_empty(memory: S3Memory) -> None:
    """Raise ConfigurationError if nothing is recorded under the prefix, naming prefixes
    beside and below it that hold a harvest."""
    if any(memory.count_by_status().values()):
        return
    bucket = memory.store
    message = (
        f"There is no harvest at {bucket.location}: nothing is recorded under this prefix "
        "(nothing ever was, or it was cleared)"
    )
    near = _harvests_near(bucket)
    if near:
        message += ". Prefixes near it holding one: " + ", ".join(
            f"s3://{bucket.bucket}/{folder}" for folder in near
        )
        names = {folder.rpartition("/")[2]: folder for folder in near}
        close = difflib.get_close_matches(bucket.prefix.rpartition("/")[2], list(names), n=1)
        if close:
            message += f"; did you mean s3://{bucket.bucket}/{names[close[0]]}?"
    raise ConfigurationError(message)


def _harvests_near(bucket: Bucket) -> list[str]:
    """The folders beside and below ``bucket``'s prefix that hold a harvest (a ``log/``),
    the closest in name first: a few LIST requests for a hint, left out if one fails."""
    from botocore.exceptions import BotoCoreError, ClientError

    client, prefix = bucket.client, bucket.prefix
    try:
        folders: set[str] = set()
        for base in {prefix.rpartition("/")[0], prefix}:
            reply = client.list_objects_v2(
                Bucket=bucket.bucket, Prefix=f"{base}/" if base else "", Delimiter="/"
            )
            folders.update(p["Prefix"].rstrip("/") for p in reply.get("CommonPrefixes", []))
        folders.discard(prefix)
        ranked = difflib.get_close_matches(prefix, sorted(folders), n=CHECKED, cutoff=0)
        listed = (
            client.list_objects_v2(Bucket=bucket.bucket, Prefix=f"{folder}/log/", MaxKeys=1)
            for folder in ranked
        )
        return [folder for folder, reply in zip(ranked, listed, strict=True) if reply["KeyCount"]]
    except (BotoCoreError, ClientError):
        return []


def _settings(url: MemoryURL | None, options: dict[str, Any]) -> dict[str, Any]:
    """Options from the URL and the keywords, checked: one place each, nothing unknown."""
    settings: dict[str, Any] = {}
    if url is not None:
        if url.username or url.password:
            raise ConfigurationError(
                f"{url}: credentials do not belong in the URL; boto3 finds them in the "
                "environment (AWS_ACCESS_KEY_ID, ...), a profile (?profile=name) or a role"
            )
        if not url.host:
            raise ConfigurationError(f"{url} names no bucket: write s3://bucket/prefix")
        unknown = sorted(set(url.query) - set(URL_OPTIONS))
        if unknown:
            raise ConfigurationError(
                f"The s3 memory does not know the URL option(s) {', '.join(unknown)}; "
                f"it takes {', '.join(URL_OPTIONS)}"
            )
        settings = {"bucket": url.host, "prefix": url.path.strip("/"), **url.query}
    for key, value in options.items():
        if key in settings:
            raise ConfigurationError(f"Give {key} in the URL {url} or as {key}=, not both")
        settings[key] = value
    unknown = sorted(set(settings) - {*URL_OPTIONS, "bucket", "prefix", "client"})
    if unknown:
        raise ConfigurationError(
            f"The s3 memory does not know the option(s) {', '.join(unknown)}; "
            f"it takes {', '.join(URL_OPTIONS)}"
        )
    if "bucket" not in settings:
        raise ConfigurationError("The s3 memory needs a bucket: open_memory('s3://bucket/prefix')")
    if "client" in settings and {"region", "endpoint_url", "profile"} & set(settings):
        raise ConfigurationError(
            "Give the s3 memory a client= or where to connect (region, endpoint_url, profile), "
            "not both: a client of your own already knows"
        )
    endpoint = settings.get("endpoint_url")
    if endpoint is not None and "@" in str(endpoint).partition("://")[2].partition("/")[0]:
        raise ConfigurationError(
            "endpoint_url must not hold credentials; boto3 finds them in the environment, "
            "a profile or a role"
        )
    for key in ("refresh_interval", "batch_delay"):
        if key in settings:
            try:
                seconds = float(settings[key])
            except (TypeError, ValueError):
                seconds = -1.0
            if not 0 <= seconds < float("inf"):
                raise ConfigurationError(
                    f"{key} must be a number of seconds >= 0, got {settings[key]!r}"
                )
    return settings


@hookimpl
def register_memories(register: Register) -> None:
    """Offer the S3 memory, for s3:// URLs."""
    register("s3", open_s3, description="an S3 prefix (messor-s3)")
