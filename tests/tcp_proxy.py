"""A TCP proxy on loopback that can fail the way networks fail, for fault tests."""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpProxy:
    """Forwards a loopback port to ``target_port``.

    ``blackhole()`` keeps every connection open but delivers nothing, as a
    partitioned network does; ``cut_after(n)`` closes a connection once ``n``
    bytes went from client to server, in the middle of whatever was sent;
    ``drop()`` closes every open connection at once, as a restarted load
    balancer or an expired NAT entry does.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._blackhole = False
        self._cut_after: int | None = None
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def blackhole(self, on: bool = True) -> None:
        self._blackhole = on

    def cut_after(self, count: int | None) -> None:
        """Close each connection after ``count`` more bytes from the client (None: never)."""
        self._cut_after = count

    def drop(self) -> int:
        """Close every connection open now (how many); new ones are accepted as before."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):  # already closed by its pump
                sock.shutdown(socket.SHUT_RDWR)  # wakes the pump blocked in recv()
            sock.close()
        return len(sockets) // 2

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, to_server: bool) -> None:
        try:
            while data := source.recv(65536):
                if self._blackhole:
                    continue
                if to_server and self._cut_after is not None:
                    if len(data) >= self._cut_after:
                        target.sendall(data[: self._cut_after])
                        source.close()
                        target.close()
                        return
                    self._cut_after -= len(data)
                target.sendall(data)
        except OSError:
            pass
        finally:
            source.close()
            target.close()
