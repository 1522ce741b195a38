"""Leases: one holder at a time for a piece of work, across processes and hosts.

A lease is a row (``PachydermLease``) with a holder and an expiry. It is taken
with one conditional UPDATE (free, or expired) and renewed by its holder while
the work runs, by a heartbeat thread, so a slow step (a big JSON file, a long
wait for pachd) never makes a live holder look dead. A holder killed with
SIGKILL stops renewing; once the lease expires, the next one takes it.

The free-or-expired test sits in the UPDATE's own WHERE clause, never in a
subquery: under READ COMMITTED, PostgreSQL re-checks only the updated row's own
WHERE after waiting for a concurrent update of that row, so a condition hidden
in a ``pk IN (SELECT ...)`` would let every waiter "take" the lease. With the
test in the WHERE, the waiters see the winner's holder and match nothing; SQLite
runs one writer at a time anyway. No transaction is held open while the work runs.

Used for: one export writer per target branch (``outbox``) and one sync per
storage (``jobs``).
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import timedelta
from typing import Callable, Optional

from django.db import IntegrityError, connection, transaction
from django.db.models import Q

from . import tables
from django.utils import timezone

logger = logging.getLogger(__name__)


def lease_seconds() -> float:
    """PACHYDERM_LEASE_SECONDS: how long a lease lasts without renewal."""
    from django.conf import settings

    return float(getattr(settings, 'PACHYDERM_LEASE_SECONDS', 30) or 30)


def _model():
    return tables.lease_model()


class Lease:
    """A lease on ``key`` for ``seconds``; ``acquire()`` never waits, ``hold()`` renews it in the background."""

    def __init__(self, key: str, seconds: float):
        self.key = key
        self.seconds = float(seconds)
        self.holder = uuid.uuid4().hex
        self.lost = threading.Event()  # set when a renewal found the lease taken by someone else
        self._beat: Optional[threading.Thread] = None
        self._stop = threading.Event()

    def acquire(self) -> bool:
        """Take the lease if it is free or expired. True when this object now holds it."""
        model = _model()
        now = timezone.now()
        # One table, no join: Django emits a plain UPDATE ... WHERE key = %s AND (holder = '' OR expires_at < %s).
        taken = model.objects.filter(Q(holder='') | Q(expires_at__lt=now), key=self.key).update(
            holder=self.holder, expires_at=now + timedelta(seconds=self.seconds), taken_at=now)
        if taken:
            return True
        if model.objects.filter(key=self.key).exists():
            return False
        try:
            with transaction.atomic():
                model.objects.create(key=self.key, holder=self.holder, taken_at=now,
                                     expires_at=now + timedelta(seconds=self.seconds))
            return True
        except IntegrityError:  # another process created it first
            return False

    def acquire_within(self, seconds: float, poll: float = 0.2) -> bool:
        """``acquire()``, tried again every ``poll`` seconds for up to ``seconds``."""
        deadline = time.monotonic() + seconds
        while not self.acquire():
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll)
        return True

    def renew(self) -> bool:
        """Push the expiry on; False (and ``lost`` set) when the lease is no longer ours."""
        renewed = _model().objects.filter(key=self.key, holder=self.holder).update(
            expires_at=timezone.now() + timedelta(seconds=self.seconds))
        if not renewed:
            self.lost.set()
        return bool(renewed)

    def release(self) -> None:
        self.stop_heartbeat()
        _model().objects.filter(key=self.key, holder=self.holder).update(holder='', expires_at=None)

    def start_heartbeat(self, on_beat: Optional[Callable[[], None]] = None, every: Optional[float] = None) -> None:
        """Renew every third of the lease (or ``every`` seconds) on a thread, until released.

        ``on_beat`` runs after each renewal (a sync uses it to show Label Studio it is alive).
        The thread has its own database connection and closes it when it ends.
        """
        interval = every or max(0.2, self.seconds / 3)

        def beat():
            try:
                while not self._stop.wait(interval):
                    try:
                        if not self.renew():
                            logger.warning('lease %s was taken over while its holder still ran', self.key)
                            return
                        if on_beat is not None:
                            on_beat()
                    except Exception:  # a database hiccup: try again at the next beat
                        logger.warning('lease %s: renewal failed', self.key, exc_info=True)
            finally:
                connection.close()

        self._stop.clear()
        self._beat = threading.Thread(target=beat, name=f'lease-{self.key[:40]}', daemon=True)
        self._beat.start()

    def stop_heartbeat(self) -> None:
        self._stop.set()
        if self._beat is not None and self._beat is not threading.current_thread():
            self._beat.join(timeout=10)
        self._beat = None

    def __enter__(self) -> 'Lease':
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()


def holder_is_live(holder: str) -> bool:
    """Whether ``holder`` (a ``Lease.holder``) still holds some unexpired lease, under whatever key."""
    return bool(holder) and _model().objects.filter(holder=holder, expires_at__gte=timezone.now()).exists()


def is_held(key: str) -> bool:
    """Whether someone holds ``key`` right now (a live, unexpired lease)."""
    return _model().objects.filter(key=key, expires_at__gte=timezone.now()).exclude(holder='').exists()


def renew_all(holder: str, seconds: float) -> set:
    """Push on the expiry of every lease ``holder`` holds, in one UPDATE; the keys it still holds.

    For a process holding many leases under one holder (the watcher: one per watched storage),
    so that one heartbeat renews them all instead of a thread per lease. A lease another
    process took over meanwhile (this one was too late) is not among the keys returned.
    """
    model = _model()
    model.objects.filter(holder=holder).update(expires_at=timezone.now() + timedelta(seconds=float(seconds)))
    return set(model.objects.filter(holder=holder).values_list('key', flat=True))


def live_leases(prefix: str) -> dict:
    """``{key: holder}`` of the unexpired, held leases whose key starts with ``prefix`` (one SELECT)."""
    rows = _model().objects.filter(key__startswith=prefix, expires_at__gte=timezone.now()).exclude(holder='')
    return dict(rows.values_list('key', 'holder'))


def forget_expired(prefix: str, older_than: float) -> int:
    """Delete the leases under ``prefix`` that expired more than ``older_than`` seconds ago; how many.

    For keys that are never used again once their holder is gone (a process's own presence)."""
    cutoff = timezone.now() - timedelta(seconds=float(older_than))
    deleted, _ = _model().objects.filter(key__startswith=prefix, expires_at__lt=cutoff).delete()
    return deleted
