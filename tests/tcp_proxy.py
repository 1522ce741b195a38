"""TCP proxies in front of the local PFS server, for network faults.

FreezingProxy can freeze: it keeps every socket open but stops forwarding bytes.
That is how a hung pachd, a stalled load balancer or a half-dead network looks to
a client: connections stay up, nothing comes back, no error ever arrives. A refused
connection is the easy case; this is the hard one.
"""
from __future__ import annotations

import selectors
import socket
import threading


class FreezingProxy:
    """Forwards 127.0.0.1:<port> to ``target`` until :meth:`freeze`; :meth:`thaw` resumes."""

    def __init__(self, target: str):
        host, _, port = target.split('://', 1)[-1].rpartition(':')
        self._target = (host.strip('[]') or '127.0.0.1', int(port))
        self._listener = socket.create_server(('127.0.0.1', 0))
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        self.address = f'127.0.0.1:{self.port}'
        self._running = threading.Event()  # set: forwarding; clear: frozen
        self._running.set()
        self._stop = threading.Event()
        self._pairs: list = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name='freezing-proxy', daemon=True)
        self._thread.start()

    def freeze(self) -> None:
        """Stop forwarding in both directions (new connections are accepted, then ignored too)."""
        self._running.clear()

    def thaw(self) -> None:
        self._running.set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with self._lock:
            for a, b in self._pairs:
                for sock in (a, b):
                    try:
                        sock.close()
                    except OSError:
                        pass
        self._listener.close()

    def _loop(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._listener, selectors.EVENT_READ, None)
        peers: dict = {}
        while not self._stop.is_set():
            if not self._running.is_set():
                # Frozen: accept nothing new and read nothing, so the kernel buffers fill up
                # and the peers' writes stall, exactly as with a hung server.
                self._running.wait(0.05)
                continue
            for key, _ in selector.select(timeout=0.05):
                if key.fileobj is self._listener:
                    try:
                        client, _ = self._listener.accept()
                    except BlockingIOError:
                        continue
                    try:
                        upstream = socket.create_connection(self._target, timeout=5)
                    except OSError:
                        client.close()
                        continue
                    for sock in (client, upstream):
                        sock.setblocking(False)
                    peers[client], peers[upstream] = upstream, client
                    with self._lock:
                        self._pairs.append((client, upstream))
                    selector.register(client, selectors.EVENT_READ, None)
                    selector.register(upstream, selectors.EVENT_READ, None)
                    continue
                sock = key.fileobj
                other = peers.get(sock)
                try:
                    data = sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b''
                if not data or other is None:
                    for end in (sock, other):
                        if end is not None and end in peers:
                            selector.unregister(end)
                            peers.pop(end, None)
                            end.close()
                    continue
                try:
                    other.setblocking(True)
                    other.settimeout(5)
                    other.sendall(data)
                    other.setblocking(False)
                except OSError:
                    pass
        selector.close()


class CuttableProxy:
    """A TCP relay to a local server whose network can be cut and restored.

    Losing pachd mid-call is simulated by dropping every relayed connection (and
    refusing new ones until ``restore``), not by stopping the server: the
    server keeps running, as pachd does behind a broken network.
    """

    def __init__(self, target_port: int):
        self._target = ('127.0.0.1', target_port)
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(('127.0.0.1', 0))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        self.address = f'grpc://127.0.0.1:{self.port}'
        self._lock = threading.Lock()
        self._sockets = []
        self._cut = False
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if self._cut:
                    client.close()
                    continue
                upstream = socket.create_connection(self._target)
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source, sink):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        with self._lock:
            self._cut = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def restore(self):
        with self._lock:
            self._cut = False

    def close(self):
        self._closed = True
        self.cut()
        self._listener.close()
