"""Starting and stopping the local PFS server."""
from __future__ import annotations

import collections
import ctypes
import logging
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

import grpc

from .auth import TokenInterceptor
from .metadata import Metadata
from .service import PfsService, generic_handlers
from .store import Store

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock, the rest works
    fcntl = None

log = logging.getLogger('label_studio_pachyderm.localpfs')

DEFAULT_HOST = '127.0.0.1'
DEFAULT_PORT = 30650
DEFAULT_DATA_DIR = os.path.join(
    os.environ.get('XDG_DATA_HOME') or os.path.join(os.path.expanduser('~'), '.local', 'share'),
    'label-studio-pachyderm', 'localpfs')

# Streams hold a worker each while they run (a long upload, a 100k-file listing). Threads
# are only started when needed, so a large bound costs nothing until it is used.
MAX_WORKERS = 256
# SubscribeCommit calls have threads of their own, apart from MAX_WORKERS: a watcher holds one
# open per watched storage for as long as it runs, and a thousand of them must not starve
# every other call. Each sleeps until its repo changes (subscribers.py): no CPU while idle,
# a small stack each. A call beyond the bound waits for one to end.
MAX_SUBSCRIPTIONS = 4096
# The sdk sends file content in 19 MB messages; gRPC's default limit is 4 MB.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


# pachd's keepalive enforcement policy (src/internal/grpcutil/server.go in pachyderm:
# MinTime 5 s, PermitWithoutStream true): a client may ping every 5 s or slower, with or
# without a call in flight. gRPC's default (5 minutes, only during calls) would answer a
# client pinging every 10 s with GOAWAY "too_many_pings".
KEEPALIVE_MIN_PING_INTERVAL_MS = 5000
KEEPALIVE_ENFORCEMENT = (
    ('grpc.http2.min_recv_ping_interval_without_data_ms', KEEPALIVE_MIN_PING_INTERVAL_MS),
    ('grpc.http2.min_ping_interval_without_data_ms', KEEPALIVE_MIN_PING_INTERVAL_MS),
    ('grpc.keepalive_permit_without_calls', 1),
)


class LocalPFSError(Exception):
    """The server could not start; the message says why and what to do about it."""


class LocalPFS:
    """A running local PFS server. Stop it with ``stop()`` or use it as a context manager."""

    def __init__(self, host: str, port: int, data_dir: str, auth_token: Optional[str] = None,
                 metadata_api: bool = True):
        self.host = host
        # False: answer metadata.API with UNIMPLEMENTED, as a pachd before 2.12 does (for testing a
        # client's fallback; the commits' stored metadata still shows in CommitInfo)
        self.metadata_api = metadata_api
        self.port = port
        self.data_dir = os.path.abspath(os.path.expanduser(data_dir))
        self.auth_enabled = bool(auth_token)
        self._auth_token = auth_token
        self._lock_file = None
        self._store: Optional[Store] = None
        self._server: Optional[grpc.Server] = None
        self._stopped = threading.Event()

    @property
    def address(self) -> str:
        host = f'[{self.host}]' if ':' in self.host else self.host
        return f'grpc://{host}:{self.port}'

    def start(self) -> 'LocalPFS':
        self._prepare_data_dir()
        try:
            self._store = Store(self.data_dir)
        except Exception as exc:
            self._release_lock()
            raise LocalPFSError(f'cannot open the localpfs data in {self.data_dir}: {exc}') from exc
        interceptors = [TokenInterceptor(self._auth_token)] if self._auth_token else []
        self._executor = ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix='localpfs')
        self._subscription_executor = ThreadPoolExecutor(max_workers=MAX_SUBSCRIPTIONS,
                                                         thread_name_prefix='localpfs-subscribe')
        pfs_service = PfsService(self._store, auth_enabled=self.auth_enabled)
        server = grpc.server(
            self._executor,
            handlers=[*([Metadata(self._store).handler()] if self.metadata_api else []),
                      *generic_handlers(pfs_service, subscription_pool=self._subscription_executor)],
            interceptors=interceptors,
            options=[
                # Without this, gRPC lets a second server share a port that is in use.
                ('grpc.so_reuseport', 0),
                ('grpc.max_receive_message_length', MAX_MESSAGE_BYTES),
                ('grpc.max_send_message_length', MAX_MESSAGE_BYTES),
                *KEEPALIVE_ENFORCEMENT,
            ])
        bind_host = f'[{self.host}]' if ':' in self.host else self.host
        try:
            bound = server.add_insecure_port(f'{bind_host}:{self.port}')
        except RuntimeError:
            bound = 0
        if not bound:
            self._store.close()
            self._release_lock()
            raise LocalPFSError(
                f'cannot listen on {self.host}:{self.port}: the port is in use or the address is not available '
                f'here. Stop whatever listens there, or choose another port (0 picks a free one).')
        self.port = bound
        server.start()
        self._server = server
        return self

    def _prepare_data_dir(self) -> None:
        try:
            os.makedirs(self.data_dir, exist_ok=True)
            probe = os.path.join(self.data_dir, '.write-test')
            with open(probe, 'w') as handle:
                handle.write('ok')
            os.unlink(probe)
        except OSError as exc:
            raise LocalPFSError(
                f'the data directory {self.data_dir} is not writable ({exc.strerror or exc}). '
                f'Choose a directory this user can write to.') from exc
        if fcntl is None:
            return
        self._lock_file = open(os.path.join(self.data_dir, 'LOCK'), 'a+')
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self._lock_file.close()
            self._lock_file = None
            raise LocalPFSError(
                f'the data directory {self.data_dir} is in use by another localpfs server. '
                f'Stop that server or choose another data directory.') from exc

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()  # closing releases the flock
            self._lock_file = None

    def stop(self, grace: Optional[float] = None) -> None:
        """Stop serving; with ``grace``, running calls get that many seconds to finish."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._store is not None:
            self._store.begin_shutdown()  # open subscriptions and waits end now, not after ``grace``
        if self._server is not None:
            self._server.stop(grace).wait()
        self._drain_handlers()
        if self._store is not None:
            self._store.close()
        self._release_lock()

    def _drain_handlers(self, timeout: float = 10.0) -> None:
        """Let handler threads of cancelled calls return before the store closes.

        gRPC reports the server stopped once calls are cancelled, while their
        handlers may still be writing; closing the store under them crashes.
        """
        waiters = []
        for executor in (getattr(self, '_executor', None), getattr(self, '_subscription_executor', None)):
            if executor is None:
                continue
            waiter = threading.Thread(target=executor.shutdown, kwargs={'wait': True, 'cancel_futures': True},
                                      daemon=True)
            waiter.start()
            waiters.append(waiter)
        for waiter in waiters:
            waiter.join(timeout)

    def open_subscriptions(self) -> 'collections.Counter[str]':
        """How many live SubscribeCommit calls follow each branch (``project/repo@branch``)."""
        return self._store.subscribers.open() if self._store is not None else collections.Counter()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until the server is stopped (or ``timeout`` passes); True if it stopped."""
        return self._stopped.wait(timeout)

    def __enter__(self) -> 'LocalPFS':
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f'<LocalPFS {self.address} data_dir={self.data_dir!r} auth={"on" if self.auth_enabled else "off"}>'


def start_server(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, data_dir: str = DEFAULT_DATA_DIR,
                 auth_token: Optional[str] = None, metadata_api: bool = True) -> LocalPFS:
    """Start a server in background threads and return it (``port=0`` picks a free port;
    ``metadata_api=False`` answers the metadata API as a pachd before 2.12 does: UNIMPLEMENTED)."""
    return LocalPFS(host, port, data_dir, auth_token, metadata_api).start()


def _return_large_buffers_to_the_system() -> None:
    """Make glibc hand large freed buffers straight back to the system.

    File content arrives in messages of up to ~19 MB. glibc raises its mmap threshold
    after such a buffer is freed, so later ones come from the heap and stay in the
    process's resident memory after use. Pinning the threshold keeps memory close to what
    is live. Done only for a server that has its process to itself.
    """
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(-3, 1024 * 1024)  # -3 is M_MMAP_THRESHOLD
    except (AttributeError, OSError):
        pass  # not glibc: nothing to tune


def serve_forever(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, data_dir: str = DEFAULT_DATA_DIR,
                  auth_token: Optional[str] = None) -> None:
    """Run a server in the foreground until SIGINT or SIGTERM, then stop it cleanly."""
    if not logging.getLogger().hasHandlers():
        logging.basicConfig(level=logging.INFO, format='%(message)s')
    _return_large_buffers_to_the_system()
    server = start_server(host, port, data_dir, auth_token)
    log.info('localpfs listening on %s (data in %s, auth %s)', server.address, server.data_dir,
             'on' if server.auth_enabled else 'off')
    stop_requested = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda *_: stop_requested.set())
    try:
        while not stop_requested.wait(1.0) and not server.wait(0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        server.stop(grace=2.0)
        log.info('localpfs stopped')
