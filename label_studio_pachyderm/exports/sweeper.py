"""The outbox sweep: annotation changes whose writer is gone are written by a process that is alive.

A failed flush is retried by the process that made it (``outbox``'s retry thread,
or the RQ job that reschedules itself). When that process dies (SIGKILL, an OOM
kill, a redeploy), its retry dies with it, and the rows would wait for the next
submit of the same project. The sweep closes that gap from outside: every few
seconds it looks for targets whose oldest pending row is older than
``PACHYDERM_EXPORT_RETRY_SECONDS`` and whose branch lease is free (a live writer
renews its lease; a dead one's runs out within ``PACHYDERM_LEASE_SECONDS``). It
says so on the storage (``pending_exports`` and ``last_export_error``, cleared by
the flush that writes them), then hands the storage over:

* inline mode: to this process's retry thread, unless it already has it scheduled
  (then its back-off stands);
* background mode (RQ): to a flush job, unless one is already scheduled.

So rows whose writer died are written within retry + lease + one sweep period of
being recorded, by whichever process runs a sweep: ``label-studio-pachyderm start``
(always, with or without ``PACHYDERM_WATCH``) and ``label-studio-pachyderm watch``.
Several processes sweeping at once is fine: the branch lease keeps one writer.

The sweep also reconciles (``reconcile``): an annotation changed after its last
export whose outbox row is missing (the insert failed, see ``signals``) gets its
row, so the change is written like any other.
"""
from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Optional

from django.db import close_old_connections, connection
from django.db.models import Count, Exists, Min, OuterRef
from django.utils import timezone

from .. import jobs, leases, tables
from . import outbox
from .jobs import export_pending, write_overdue

logger = logging.getLogger(__name__)

RECONCILE_EVERY = 12  # sweeps between two reconciles (a reconcile reads every annotation's export link)


class OverdueExports(Exception):
    """Rows have waited longer than a retry: the writer that had them is gone."""


def period() -> float:
    """Seconds between two sweeps: a fraction of the retry delay, between 0.5 and 5 s."""
    return min(5.0, max(0.5, outbox.retry_seconds() / 4))


def overdue_storages():
    """(storage, pending rows, oldest row's age in seconds) of every target whose rows wait past a retry."""
    cutoff = timezone.now() - timedelta(seconds=outbox.retry_seconds())
    waiting = (outbox.all_pending().values('storage_id').annotate(oldest=Min('created_at'), rows=Count('id'))
               .filter(oldest__lt=cutoff))
    found = {row['storage_id']: row for row in waiting}
    for storage in tables.export_storage_model().objects.filter(id__in=list(found)):
        row = found[storage.id]
        yield storage, row['rows'], (timezone.now() - row['oldest']).total_seconds()


def sweep_once() -> int:
    """One pass; returns how many storages were handed to a writer. Never raises."""
    handed = 0
    try:
        for storage, rows, age in overdue_storages():
            try:
                if leases.is_held(outbox.target_key(storage)):
                    continue  # a live writer has the branch: it writes them
                if jobs.get_queue() is None and outbox.retry_is_scheduled(storage.id):
                    continue  # this process retries it already, with its back-off
                outbox.note_waiting(storage, OverdueExports(
                    f'waiting for {age:.0f} s; the process that was exporting them stopped, so another '
                    'one takes them over now'))
                write_overdue(storage)
                handed += 1
            except Exception:
                logger.warning('Pachyderm storage %s: the outbox sweep could not hand it over', storage.id,
                               exc_info=True)
    except Exception:
        logger.warning('Pachyderm outbox sweep: cannot read the outbox', exc_info=True)
    return handed


def reconcile(since: dict) -> int:
    """Record an outbox row for every annotation changed since its last export and recorded nowhere.

    An export link's ``updated_at`` is the moment its writer read the annotations, so an
    annotation saved later is newer than its link. Looked at: annotations of each target's
    project changed after ``since[storage id]`` (at first, the storage's creation) and at
    least one retry delay ago (their own save has long recorded its row, if it could),
    with no row already waiting. ``since`` moves on as each target is done, so an
    annotation that cannot be exported is recorded again only by a new process.
    Returns the number of rows recorded. Never raises.
    """
    from tasks.models import Annotation


    recorded = 0
    try:
        until = timezone.now() - timedelta(seconds=outbox.retry_seconds())
        for storage in tables.export_storage_model().objects.all():
            links = storage.links.model.objects.filter(storage_id=storage.id, annotation_id=OuterRef('pk'),
                                                        updated_at__gte=OuterRef('updated_at'))
            waiting = outbox.pending_for_id(storage.id).filter(annotation_id=OuterRef('pk'))
            missed = (Annotation.objects
                      .filter(project_id=storage.project_id, updated_at__lt=until,
                              updated_at__gte=since.get(storage.id, storage.created_at))
                      .filter(~Exists(links)).filter(~Exists(waiting)))
            found = list(missed.only('id', 'task_id'))
            for annotation in found:
                outbox.record_change(annotation, [storage.id])
            if found:
                export_pending([storage.id])
                recorded += len(found)
                logger.warning('Pachyderm storage %s: %s annotation change(s) had no outbox row; recorded now',
                               storage.id, len(found))
            since[storage.id] = until
    except Exception:
        logger.warning('Pachyderm outbox reconcile failed; it runs again at the next turn', exc_info=True)
    return recorded


class Sweeper:
    """Runs ``sweep_once`` every ``period()`` seconds (and ``reconcile`` every RECONCILE_EVERY) until ``stop()``."""

    def __init__(self, every: Optional[float] = None):
        self.every = every
        self.reconciled_since: dict = {}  # storage id -> annotations changed before this are reconciled
        self._stopped = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def run(self) -> None:
        turn = 0
        while not self._stopped.is_set():
            try:
                close_old_connections()
                if turn % RECONCILE_EVERY == 0:
                    reconcile(self.reconciled_since)
                if not self._stopped.is_set():
                    sweep_once()
            finally:
                connection.close()
            turn += 1
            self._stopped.wait(self.every or period())

    def start(self) -> 'Sweeper':
        self._thread = threading.Thread(target=self.run, name='pachyderm-outbox-sweep', daemon=True)
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopped.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
