"""Fixtures for the pachd client and CLI tests: local PFS servers on ephemeral loopback ports.

Import the fixtures by name into a test module (pytest picks up fixtures found in
the module's namespace).
"""
import socket
import threading

import pytest

from label_studio_pachyderm import pachd

# Shaped like a real token and unusual enough that finding it in a message means a leak.
TOKEN = 'lsp0test0token0c0ffee0d00d0f00d0bad0cafe'
PROJECT = 'default'


@pytest.fixture
def local_pfs(tmp_path):
    """A local PFS server without auth."""
    from label_studio_pachyderm.localpfs import start_server

    server = start_server('127.0.0.1', 0, str(tmp_path / 'pfs-data'), None)
    yield server
    server.stop()


@pytest.fixture
def local_pfs_auth(tmp_path):
    """A local PFS server that requires TOKEN."""
    from label_studio_pachyderm.localpfs import start_server

    server = start_server('127.0.0.1', 0, str(tmp_path / 'pfs-auth-data'), TOKEN)
    yield server
    server.stop()


@pytest.fixture
def pachd_client(local_pfs):
    client = pachd.PachdClient(local_pfs.address, timeout=5)
    yield client
    client.close()


@pytest.fixture
def images_repo(pachd_client):
    """An empty repo 'images' in the default project."""
    pachd_client.create_repo(PROJECT, 'images')
    return 'images'


@pytest.fixture
def closed_port():
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.fixture
def mute_port():
    """A loopback port that accepts TCP connections and never says a word (no HTTP/2)."""
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(16)
    accepted = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                accepted.append(conn)  # hold it open, read nothing, write nothing
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(1)
    for conn in accepted:
        conn.close()
    listener.close()


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


@pytest.fixture
def proxied_pfs(local_pfs):
    proxy = CuttableProxy(local_pfs.port)
    yield proxy
    proxy.close()


def commit_ids(client, repo, branch=None):
    return [c.id for c in client.list_commits(PROJECT, repo, branch)]


# ----------------------------------------------------------------------------- the sdk itself
# For the local PFS server's own tests (tests/test_localpfs_*.py): the official
# pachyderm_sdk client on a server of its own.

@pytest.fixture
def pfs_server(tmp_path):
    from label_studio_pachyderm.localpfs import start_server

    server = start_server('127.0.0.1', 0, str(tmp_path / 'pfs-sdk-data'))
    yield server
    server.stop()


@pytest.fixture
def sdk_client(pfs_server):
    from pachyderm_sdk import Client

    return Client(host='127.0.0.1', port=pfs_server.port)


@pytest.fixture
def sdk_repo(sdk_client):
    """An empty repo 'images' in the default project, made with the sdk."""
    from pachyderm_sdk.api import pfs

    sdk_client.pfs.create_repo(repo=pfs.Repo.from_uri('images'))
    return 'images'


def sdk_put(client, branch_uri, files):
    """One commit on ``branch_uri`` writing ``files`` ({path: bytes}) with the sdk; its id."""
    from pachyderm_sdk.api import pfs

    with client.pfs.commit(branch=pfs.Branch.from_uri(branch_uri)) as commit:
        for path, data in files.items():
            commit.put_file_from_bytes(path, data)
    return commit.id


class StatusOf:
    """``with StatusOf(code, fragment):`` expects a grpc.RpcError with that code (and text)."""

    def __init__(self, code, fragment=None):
        self.code, self.fragment, self.error = code, fragment, None

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        import grpc

        assert kind is not None, f'expected {self.code}, the call succeeded'
        if not issubclass(kind, grpc.RpcError):
            return False
        assert value.code() == self.code, (value.code(), value.details())
        if self.fragment is not None:
            assert self.fragment in value.details(), value.details()
        self.error = value
        return True
