"""One run at a time per memory: the claim a harvest holds on its memory while it runs.

Two harvests on one SQLite file or one Redis namespace would run the same
pending tasks twice and race to record them. So a run claims its memory
first (:meth:`messor.Memory.claim_run`), and a second run is refused with a
:class:`~messor.errors.RunInProgressError` naming the first: its process, its
host and when it started. A claim must end with its holder, however that
ends: a file claim is an OS lock, which the kernel drops when the process
dies, even by SIGKILL; a remote store's claim (Redis) lapses unless renewed,
and a claim left by a dead process is taken over at once where that death is
certain: same host, same boot, same PID namespace (see :meth:`RunOwner.is_local`).

A claim that lapses can be lost by a run that lives: a pause longer than the
lapse (SIGSTOP, a suspended VM) lets a second run take it. The memory tells
the run through the owner's :class:`ClaimWatch`; the run then starts nothing
more and ends with :class:`~messor.errors.ClaimLostError`, and the memory
refuses its writes (a fence), so the second run's results stay as it left them.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from messor.errors import ClaimLostError, ConfigurationError, RunInProgressError

__all__ = [
    "ClaimWatch",
    "FileClaim",
    "LocalClaim",
    "Release",
    "RunOwner",
    "boot_id",
    "claim_lost",
    "mark_held",
    "pid_namespace",
    "refuse",
    "release_nothing",
]

#: Ends a claim; calling it twice is harmless.
Release = Callable[[], None]


def release_nothing() -> None:
    """The release of a memory that does not keep runs apart."""


def boot_id() -> str:
    """This boot of this machine ("" where the system does not say: not Linux)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def pid_namespace() -> str:
    """The PID namespace this process sees pids in ("" where the system does not say)."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


class ClaimWatch:
    """What a run knows of the claim it holds: held for certain, in doubt, or lost.

    A claim that cannot be lost while its holder lives (a file lock) is held
    for certain until released. One that lapses unless renewed is certain
    only until its lapse, counted from when the last renewal was sent: the
    memory reports each renewal (:meth:`renewed`) and a loss (:meth:`lost`),
    from any thread. The run starts nothing while the claim is in doubt (its
    process was paused longer than the lapse, say: another run may hold it
    now), and stops when it is lost. A memory of any kind reports a loss
    here, or raises :class:`~messor.errors.ClaimLostError` from a write.
    """

    def __init__(self) -> None:
        self._until = math.inf  # monotonic time until which the claim is certainly held
        #: Why the claim was lost; None while it is not.
        self.error: ClaimLostError | None = None
        self._listener: Callable[[], None] = lambda: None

    def listen(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (from the memory's thread) when the claim is lost or certain again."""
        self._listener = listener

    @property
    def certain(self) -> bool:
        """True while the claim is held for certain."""
        return time.monotonic() < self._until

    def renewed(self, until: float) -> None:
        """A lapsing claim was renewed: held for certain until ``until`` (``time.monotonic()``)."""
        if self.error is not None:
            return
        was_certain = self.certain
        self._until = until
        if not was_certain:
            self._listener()

    def lost(self, error: ClaimLostError) -> None:
        """The claim is gone (or lapsed): the run must stop."""
        if self.error is None:
            self.error = error
            self._until = -math.inf
            self._listener()


@dataclass(frozen=True)
class RunOwner:
    """Who holds a claim: enough to tell a user which run it is, and whether it still lives."""

    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)
    started: float = field(default_factory=time.time)
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    #: Where ``pid`` means this process: a host name alone does not say (containers
    #: share the host's name, cloned VMs share theirs). "" when not known.
    boot: str = field(default_factory=boot_id)
    pid_namespace: str = field(default_factory=pid_namespace)
    #: What the run knows of its claim while it holds it (not stored with the claim).
    watch: ClaimWatch = field(default_factory=ClaimWatch, compare=False, repr=False)

    def to_json(self) -> str:
        return json.dumps(
            {
                "pid": self.pid,
                "host": self.host,
                "started": self.started,
                "token": self.token,
                "boot": self.boot,
                "pid_namespace": self.pid_namespace,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | bytes | None) -> RunOwner | None:
        """The owner written by :meth:`to_json`; None for anything else (an empty file, say).

        A claim written before boot and namespace were recorded lacks them:
        its owner is never provably local.
        """
        try:
            data = json.loads(text or "")
            return cls(
                int(data["pid"]),
                str(data["host"]),
                float(data["started"]),
                str(data["token"]),
                str(data.get("boot", "")),
                str(data.get("pid_namespace", "")),
            )
        except (ValueError, TypeError, KeyError, AttributeError):
            return None

    def describe(self) -> str:
        since = datetime.fromtimestamp(self.started).strftime("%Y-%m-%d %H:%M:%S")
        return f"process {self.pid} on {self.host}, started {since}"

    def is_local(self) -> bool:
        """True if this owner's pid provably names a process this process can see.

        Host, boot and PID namespace must all match: a run in a container
        that shares the host's name, or on a clone of this VM, has pids that
        mean nothing here. Unknown (old claims, systems without /proc) is not local.
        """
        here = (socket.gethostname(), boot_id(), pid_namespace())
        return all(here) and (self.host, self.boot, self.pid_namespace) == here

    def is_dead_here(self) -> bool:
        """True if this owner's claim is provably stale: its run is over.

        Its process is local (:meth:`is_local`) and gone, or it is this very
        process and the run that claimed has ended (its claim could not be
        removed: the store was unreachable then). Otherwise the claim must lapse.
        """
        if not self.is_local():
            return False
        if self.pid == os.getpid():
            with _active_lock:
                return self.token not in _active_tokens
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's
            return False
        return False


#: Tokens of the claims runs of this process hold right now.
_active_tokens: set[str] = set()
_active_lock = threading.Lock()


def mark_held(owner: RunOwner, held: bool) -> None:
    """Note that a run of this process holds ``owner``'s claim (or no longer does).

    A claim of this process that no run holds is stale, even if the store
    still has it: see :meth:`RunOwner.is_dead_here`.
    """
    with _active_lock:
        if held:
            _active_tokens.add(owner.token)
        else:
            _active_tokens.discard(owner.token)


def refuse(memory: object, holder: RunOwner | None, *, lapses: str = "") -> RunInProgressError:
    """The error for a run that finds ``memory`` claimed by ``holder``."""
    who = f" ({holder.describe()})" if holder is not None else ""
    return RunInProgressError(
        f"Another run is using {memory!r}{who}. Two runs on one memory would run the same "
        f"tasks twice: wait for it to end{lapses}, or give this run a memory of its own."
    )


def claim_lost(
    memory: object, seconds: float, holder: RunOwner | None, *, longer: str
) -> ClaimLostError:
    """The error of a run whose claim on ``memory`` lapsed ``seconds`` after its last renewal.

    ``longer`` says how to give the claim a longer lapse.
    """
    now = f"; {holder.describe()} holds it now" if holder is not None else ""
    return ClaimLostError(
        f"This run lost its claim on {memory!r}{now}. The claim lapses {seconds:g} s after "
        "its last renewal, and this run could not renew it in time (its process was paused "
        "or suspended, or the store unreachable, that long). So that two runs never do the "
        "same tasks, this run stopped and records nothing more; what it recorded before is "
        f"intact. Run again once the other run has ended; to ride out longer pauses, {longer}."
    )


class FileClaim:
    """A claim held as an exclusive OS lock on a file beside the store (``harvest.db-run``).

    The lock is ``flock`` on POSIX and ``msvcrt.locking`` on Windows, chosen
    when a claim is taken (so ``import messor`` works anywhere); either ends
    when the file is closed or its process dies. The file stays when the
    claim ends: removing it would let a process that opened it just before
    lock an orphaned inode while a third one creates a new file. It holds the
    owner's description, for the message of a refused run.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._file: IO[str] | None = None

    def acquire(self, memory: object, owner: RunOwner) -> Release:
        file = self.path.open("a+", encoding="utf-8")
        try:
            if not _try_lock(file.fileno(), memory):
                file.seek(0)
                raise refuse(memory, RunOwner.from_json(file.read()))
        except BaseException:
            file.close()
            raise
        file.seek(0)
        file.truncate()
        file.write(owner.to_json())
        file.flush()
        with self._lock:
            self._file = file
        return self.release

    def release(self) -> None:
        with self._lock:
            file, self._file = self._file, None
        if file is None:
            return
        try:
            file.truncate(0)
        finally:
            file.close()  # closing drops the lock


#: The byte a Windows lock covers: Windows locks bytes, not files, and a
#: refused run must still read the owner's description at the start of the file.
_WINDOWS_LOCK_BYTE = 2**30


def _try_lock(fd: int, memory: object) -> bool:
    """Lock the open file ``fd`` exclusively, without waiting: False if another holds it.

    Raises :class:`~messor.errors.ConfigurationError` on a platform with
    neither lock: no run there can claim ``memory`` through a file.
    """
    try:
        import fcntl
    except ImportError:
        pass
    else:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
    try:
        # Not `import msvcrt`: its type stubs exist only for a type check on Windows.
        msvcrt: Any = importlib.import_module("msvcrt")
    except ImportError:
        raise ConfigurationError(
            f"A run cannot claim {memory!r}: this platform has no file lock that Messor "
            "knows (neither fcntl.flock nor msvcrt.locking), and without one two runs "
            "could do the same tasks twice. Run on a memory that keeps runs apart by "
            "other means: memory:// (this process only) or redis:// (pip install "
            "'messor[redis]')."
        ) from None
    position = os.lseek(fd, 0, os.SEEK_CUR)
    os.lseek(fd, _WINDOWS_LOCK_BYTE, os.SEEK_SET)
    try:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except PermissionError:  # EACCES: another handle holds the byte
        return False
    finally:
        os.lseek(fd, position, os.SEEK_SET)
    return True


class LocalClaim:
    """A claim on a memory that lives in this process (``:memory:``, ``memory://``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holder: RunOwner | None = None

    def acquire(self, memory: object, owner: RunOwner) -> Release:
        with self._lock:
            if self._holder is not None:
                raise refuse(memory, self._holder)
            self._holder = owner

        def release() -> None:
            with self._lock:
                if self._holder is owner:
                    self._holder = None

        return release
