"""``Bucket``: the handful of S3 requests the memory makes, under one prefix.

It turns botocore's errors into Messor's: a missing bucket or denied access
names bucket and prefix; a conditional write that lost its race is a
:class:`ConditionFailed`. Throttling and 5xx answers are retried by botocore
itself (the client's ``retries`` configuration), before anything reaches here.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from messor.plugin import MemoryUnavailableError

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client

__all__ = ["Bucket", "ConditionFailed", "decode", "encode"]

#: S3 deletes at most this many keys per request.
DELETE_BATCH = 1000


class ConditionFailed(Exception):
    """A conditional write found the object changed (or existing): someone else won."""


def encode(document: Any) -> bytes:
    """A JSON document, gzipped (mtime 0: the same document gives the same bytes)."""
    return gzip.compress(json.dumps(document, separators=(",", ":")).encode(), 6, mtime=0)


def decode(body: bytes) -> Any:
    return json.loads(gzip.decompress(body))


class Bucket:
    """Objects under ``s3://bucket/prefix/``; names are relative to the prefix."""

    def __init__(self, client: S3Client, bucket: str, prefix: str) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        #: Requests made, for tests and curious users.
        self.requests = 0

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def get(self, name: str, byte_range: tuple[int, int] | None = None) -> tuple[bytes, str] | None:
        """The object's bytes (or ``byte_range``, end included) and ETag; None if there is none."""
        options: dict[str, Any] = {}
        if byte_range is not None:
            options["Range"] = f"bytes={byte_range[0]}-{byte_range[1]}"
        try:
            reply = self._call("get_object", Bucket=self.bucket, Key=self.key(name), **options)
        except _Missing:
            return None
        return reply["Body"].read(), reply["ETag"]

    def put(
        self, name: str, body: bytes, *, if_match: str | None = None, if_absent: bool = False
    ) -> str:
        """Write an object; with ``if_match``/``if_absent``, only if it is still as expected."""
        options: dict[str, Any] = {}
        if if_match is not None:
            options["IfMatch"] = if_match
        if if_absent:
            options["IfNoneMatch"] = "*"
        for _ in range(5):
            try:
                reply = self._call(
                    "put_object", Bucket=self.bucket, Key=self.key(name), Body=body, **options
                )
                etag: str = reply["ETag"]
                return etag
            except _Conflict:
                continue  # S3 answers 409 to concurrent conditional writes: try again
        raise ConditionFailed(f"{self.key(name)}: conditional write kept conflicting")

    def names(self, folder: str) -> Iterator[str]:
        """Names of the objects under ``folder/``, in key order."""
        token: dict[str, str] = {}
        while True:
            reply = self._call(
                "list_objects_v2", Bucket=self.bucket, Prefix=self.key(folder) + "/", **token
            )
            start = len(self.key(""))
            for item in reply.get("Contents", []):
                yield item["Key"][start:]
            if not reply.get("IsTruncated"):
                return
            token = {"ContinuationToken": reply["NextContinuationToken"]}

    def delete(self, names: list[str]) -> None:
        for start in range(0, len(names), DELETE_BATCH):
            chunk = names[start : start + DELETE_BATCH]
            reply = self._call(
                "delete_objects",
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": self.key(n)} for n in chunk], "Quiet": True},
            )
            if reply.get("Errors"):
                first = reply["Errors"][0]
                raise MemoryUnavailableError(
                    f"{self.location}: could not delete {first.get('Key')}: {first.get('Message')}"
                )

    def _call(self, operation: str, **parameters: Any) -> Any:
        self.requests += 1
        try:
            return getattr(self.client, operation)(**parameters)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("NoSuchKey", "404") and operation == "get_object":
                raise _Missing from None
            if operation == "put_object":
                if code == "ConditionalRequestConflict" or status == 409:
                    raise _Conflict from None
                # 404: an If-Match on an object deleted meanwhile (a clear()).
                if code in ("PreconditionFailed", "NoSuchKey") or status in (404, 412):
                    raise ConditionFailed(f"{parameters.get('Key')}: {code}") from None
            if code == "NoSuchBucket":
                raise MemoryUnavailableError(
                    f"The bucket {self.bucket!r} does not exist (memory {self.location}); "
                    "create it, or fix the bucket name or the region/endpoint"
                ) from None
            if code in ("AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId", "403") or (
                status == 403
            ):
                raise MemoryUnavailableError(
                    f"Access to {self.location} was denied ({code}: {error.get('Message', '')}); "
                    "check the credentials boto3 finds and their permissions on this prefix"
                ) from None
            raise MemoryUnavailableError(
                f"S3 refused {operation} on {self.location}: {code}: {error.get('Message', '')}"
            ) from None
        except BotoCoreError as exc:  # no connection, no credentials, retries exhausted
            raise MemoryUnavailableError(
                f"S3 at {self.location} could not be used: {exc}"
            ) from None


class _Missing(Exception):
    """The object does not exist."""


class _Conflict(Exception):
    """A 409: two conditional writes at once; the loser should try again."""
