"""Text bound for a terminal, with the control characters of stored text made harmless.

Task ids and errors are stored exactly, whatever they hold; an error quoting
an HTML page or a log line may carry ANSI escapes, a carriage return or a
bell. Everything Messor prints or logs for a person (``status_summary``, the
command line's listings, errors and log lines) passes through here, so that
no stored text can clear the screen, recolour it or rewrite a line. Exports
(``messor results``, ``--json``) keep the text exact instead.
"""

from __future__ import annotations

__all__ = ["printable", "printable_lines"]


def printable(text: str) -> str:
    """``text`` on one line, every non-printable character escaped as in a repr (``\\x1b``)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


def printable_lines(text: str) -> str:
    """``text`` with its line breaks kept and every other non-printable character escaped.

    For Messor's own messages of several lines (a list of backends, a
    traceback); a carriage return is escaped too, so no line is overwritten.
    """
    return "\n".join(printable(line) for line in text.split("\n"))
