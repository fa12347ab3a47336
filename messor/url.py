"""``MemoryURL``: a memory URL parsed once, whose repr never shows a password.

Memories are chosen by URL (``sqlite:///harvest.db``, ``redis://:pw@host/0``,
``s3://bucket/prefix``). The URL object is what travels through the core, into
logs, error messages and reprs; only :meth:`MemoryURL.unredacted` gives the
password back, for handing to a client library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from messor.errors import ConfigurationError

__all__ = ["MemoryURL"]

_HIDDEN = "***"
# Query keys whose values are hidden too (redis-py accepts ?password=...).
_SECRET_KEYS = ("password", "secret", "token", "credential")


@dataclass(frozen=True)
class MemoryURL:
    """The parts of a memory URL; ``str()`` and ``repr()`` hide the password."""

    scheme: str
    host: str | None
    port: int | None
    username: str | None
    path: str
    query: dict[str, str]
    password: str | None = field(default=None, repr=False)
    _text: str = field(default="", repr=False, compare=False)
    _redacted: str = field(default="", repr=False, compare=False)

    @classmethod
    def parse(cls, text: str) -> MemoryURL:
        """Parse ``scheme://[user[:password]@]host[:port]/path[?query]``."""
        redacted = _redact(text)
        try:
            parts = urlsplit(text)
        except ValueError as exc:  # e.g. an unclosed "[" of an IPv6 host
            raise ConfigurationError(f"{redacted!r} is not a valid URL ({exc})") from None
        if not parts.scheme or "://" not in text:
            raise ConfigurationError(
                f"{redacted!r} is not a URL of the form scheme://... "
                "(a scheme is letters, digits, '+', '-' or '.', starting with a letter)"
            )
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        try:
            port = parts.port
        except ValueError:
            raise ConfigurationError(
                f"The port in {redacted!r} is not a number between 0 and 65535"
            ) from None
        return cls(
            scheme=parts.scheme,
            host=parts.hostname,
            port=port,
            username=unquote(parts.username) if parts.username else None,
            path=unquote(parts.path),
            query=query,
            password=unquote(parts.password) if parts.password is not None else None,
            _text=text,
            _redacted=redacted,
        )

    def unredacted(self) -> str:
        """The URL as given, password included: for a client library, never for display."""
        return self._text

    def __str__(self) -> str:
        return self._redacted

    def __repr__(self) -> str:
        return f"MemoryURL({self._redacted!r})"


def _redact(text: str) -> str:
    """``text`` with its password and secret-looking query values replaced by ``***``.

    Deliberately more cautious than URL parsing: everything between ``://``
    and the *last* ``@`` counts as user info, so a password holding an
    unencoded ``/``, ``?`` or ``#`` is still hidden.
    """
    scheme, sep, rest = text.partition("://")
    userinfo, at, location = rest.rpartition("@")
    if at and ":" in userinfo:
        rest = f"{userinfo.partition(':')[0]}:{_HIDDEN}@{location}"
    base, question, query = rest.partition("?")
    if question:
        fields = []
        for item in query.split("&"):
            key, eq, _ = item.partition("=")
            hidden = eq and any(word in unquote(key).lower() for word in _SECRET_KEYS)
            fields.append(f"{key}={_HIDDEN}" if hidden else item)
        rest = f"{base}?{'&'.join(fields)}"
    return f"{scheme}{sep}{rest}"
