"""One client per (pachd, token, certificates, timeout, dialled addresses) for the whole process."""
from __future__ import annotations

import collections
import hashlib
import os
import threading
import weakref
from typing import Optional

from .client import PachdClient
from .values import DEFAULT_TIMEOUT, parse_address

_clients: 'collections.OrderedDict[tuple, PachdClient]' = collections.OrderedDict()
_clients_lock = threading.Lock()
_CLIENTS_MAX = 64


def get_client(address: str, auth_token: Optional[str] = None, root_certs: Optional[bytes] = None,
               timeout: Optional[float] = None, dial_ips: 'tuple[str, ...]' = ()) -> PachdClient:
    """A process-wide cached client per (address, token, root_certs, timeout, dial_ips).

    ``dial_ips``: the IP addresses to connect to (see PachdClient); a name that now
    resolves elsewhere gets a client of its own, and the old one ages out of the cache.
    """
    dial_ips = tuple(dial_ips or ())
    parsed = parse_address(address)
    if isinstance(root_certs, str):
        root_certs = root_certs.encode()
    token = (auth_token or '').strip() or None
    # Keyed by a digest so the cache's keys do not carry the secret itself.
    key = (parsed, hashlib.sha256(token.encode()).hexdigest() if token else None,
           hashlib.sha256(root_certs).hexdigest() if root_certs else None,
           float(timeout if timeout is not None else DEFAULT_TIMEOUT), dial_ips)
    with _clients_lock:
        client = _clients.get(key)
        if client is not None and not client._closed:
            _clients.move_to_end(key)
            return client
        client = PachdClient(parsed, token, root_certs, key[3], dial_ips=dial_ips)
        _clients[key] = client
        while len(_clients) > _CLIENTS_MAX:
            _retire(_clients.popitem(last=False)[1])
        return client


def _retire(client: PachdClient) -> None:
    """Close an evicted client's channel once nothing uses the client any more.

    Another thread may be in a call on it, or reading one of its streams, right now;
    each holds a reference to the client (a call's frame, a stream's ``_client``), so
    the channel is closed only when the last of them is done and the client is freed.
    Nothing else refers to a client (its gRPC interceptor holds a weak proxy), so that
    happens at once, without waiting for Python's cycle collector.
    """
    finalizer = weakref.finalize(client, _close_channel, client._raw_channel, os.getpid())
    finalizer.atexit = False  # at exit there is nothing left to save


def _close_channel(channel, pid: int) -> None:
    if os.getpid() != pid:
        return  # a forked child never touches its parent's channels (see below)
    try:
        channel.close()
    except Exception:  # closing is best effort; the channel is unreachable anyway
        pass


def _forget_clients_in_forked_child() -> None:
    """A forked child (an RQ work-horse, a pre-forking web server) starts with no clients.

    gRPC channels do not survive fork(): a child using its parent's channel can
    hang. The parent's clients are kept referenced, never used, so that
    nothing in the child tries to close them either; the lock is new because
    another thread may have held it at the moment of the fork.
    """
    global _clients_lock
    _clients_lock = threading.Lock()
    _inherited.extend(_clients.values())
    _clients.clear()


_inherited: list = []
if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_forget_clients_in_forked_child)


def clear_client_cache() -> None:
    """Forget (and close) every cached client; for tests and for reloading settings."""
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        client.close()
