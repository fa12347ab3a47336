"""``MemoryURL``: a memory URL parsed once, whose repr never shows a secret.

Memories are chosen by URL (``sqlite:///harvest.db``, ``redis://:pw@host/0``,
``s3://bucket/prefix``). The URL object is what travels through the core, into
logs, error messages and reprs; only :meth:`MemoryURL.unredacted` gives the
full text back, for handing to a client library.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from urllib.parse import parse_qsl, unquote, urlsplit

from messor.errors import ConfigurationError

__all__ = ["MemoryURL", "redact_url"]

_HIDDEN = "***"
# Query keys whose values are hidden too (redis-py accepts ?password=..., signed
# URLs carry signatures, APIs take keys and tokens).
_SECRET_WORDS = ("password", "passwd", "secret", "token", "credential", "signature", "apikey")
_SECRET_KEYS = {"pwd", "key", "api_key", "access_key", "auth", "sig"}


class MemoryURL:
    """The parts of a memory URL; ``str()`` and ``repr()`` hide the password and secrets."""

    __slots__ = (
        "_password",
        "_redacted",
        "_text",
        "_username",
        "host",
        "path",
        "port",
        "query",
        "scheme",
    )

    scheme: str
    host: str | None
    port: int | None
    path: str
    query: Mapping[str, str]

    def __init__(self, text: str) -> None:
        """Parse ``scheme://[user[:password]@]host[:port]/path[?query]``."""
        redacted = redact_url(text)
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError as exc:  # a port that is no number, an unclosed "[" of an IPv6 host
            raise ConfigurationError(f"{redacted!r} is not a valid URL: {exc}") from None
        if not parts.scheme or "://" not in text:
            raise ConfigurationError(
                f"{redacted!r} is not a URL of the form scheme://... "
                "(a scheme is letters, digits, '+', '-' or '.', starting with a letter)"
            )
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = port
        self.path = unquote(parts.path)
        self.query = MappingProxyType(dict(parse_qsl(parts.query, keep_blank_values=True)))
        self._password = unquote(parts.password) if parts.password is not None else None
        self._text = text
        self._redacted = redacted
        self._username = unquote(parts.username) if parts.username else None

    @classmethod
    def parse(cls, text: str) -> MemoryURL:
        """The same as ``MemoryURL(text)``."""
        return cls(text)

    @property
    def username(self) -> str | None:
        return self._username

    @property
    def password(self) -> str | None:
        """The password, percent-decoded: for a client library, never for display."""
        return self._password

    def unredacted(self) -> str:
        """The URL as given, secrets included: for a client library, never for display."""
        return self._text

    def __str__(self) -> str:
        return self._redacted

    def __repr__(self) -> str:
        return f"MemoryURL({self._redacted!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MemoryURL) and other._text == self._text

    def __hash__(self) -> int:
        return hash(self._text)


def redact_url(text: str) -> str:
    """``text`` with the user info and secret-looking query values replaced by ``***``.

    Deliberately more cautious than URL parsing: everything between ``://`` and
    the *last* ``@`` counts as user info, so a password holding an unencoded
    ``/``, ``?`` or ``#`` is still hidden, and so is a token given as user name.
    """
    scheme, sep, rest = text.partition("://")
    userinfo, at, location = rest.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        rest = f"{user}:{_HIDDEN}@{location}" if colon else f"{_HIDDEN}@{location}"
    base, question, query = rest.partition("?")
    if question:
        fields = []
        for item in query.split("&"):
            key, eq, _ = item.partition("=")
            name = unquote(key).lower()
            secret = name in _SECRET_KEYS or any(word in name for word in _SECRET_WORDS)
            fields.append(f"{key}={_HIDDEN}" if eq and secret else item)
        rest = f"{base}?{'&'.join(fields)}"
    return f"{scheme}{sep}{rest}"
