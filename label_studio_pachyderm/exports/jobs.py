"""Export work as jobs: the manual export sync, and the flushes that write the outbox.

Inline mode writes from the process itself (the outbox's writer and retry thread).
Background mode (``PACHYDERM_REDIS_URL``) runs one delayed, de-duplicated flush job per
storage, so the submits of PACHYDERM_EXPORT_COALESCE_SECONDS become one commit.
"""
from __future__ import annotations

import logging

from django.conf import settings

from .. import jobs, tables
from ..leases import lease_seconds
from . import outbox

logger = logging.getLogger(__name__)

# Per queue and storage: deployments (or test runs) that share one Redis keep apart by queue name.
_FLUSH_SCHEDULED = 'pachyderm:export:scheduled:{queue.name}:{id}'  # a flush job of this storage is waiting to run
_FLUSH_FAILURES = 'pachyderm:export:failures:{queue.name}:{id}'  # failed flushes in a row (sets the back-off)


def export_sync_job(storage_class, storage_id, only_new=False, reason='manual sync'):
    jobs.run_exclusive(storage_class, storage_id, _export_sync, only_new, reason)


def _export_sync(storage, only_new=False, reason='manual sync'):
    """A full sync: every annotation (or only those never exported) and the outbox, in one commit.

    ``reason`` says in the commit description what asked for it: ``manual sync``, or
    ``storage created`` for the sync Label Studio runs when a target storage is added.
    """
    from tasks.models import Annotation

    snapshot = Annotation.objects.filter(project_id=storage.project_id)
    if only_new:
        snapshot = snapshot.exclude(id__in=storage.links.model.objects.filter(storage=storage).values('annotation_id'))
    result = outbox.flush(storage, wait=lease_seconds(), snapshot=snapshot, track_status=True, reason=reason)
    if result.left:
        schedule_flush(storage, result)


def run_export_sync(storage, only_new=False, reason='manual sync'):
    if jobs.claim_sync(storage):
        jobs.run(export_sync_job, storage, only_new, reason)


# ----------------------------------------------------------------------------- auto-export
def export_pending(storage_ids) -> None:
    """After a transaction that recorded outbox rows: get them written. Never raises.

    Inline mode: try to be the target's writer now, without waiting (see ``outbox``).
    Background mode: one delayed, de-duplicated flush job per storage gathers the
    submits of PACHYDERM_EXPORT_COALESCE_SECONDS into one commit.
    """
    for storage in tables.export_storage_model().objects.filter(id__in=list(storage_ids)):
        try:
            if jobs.get_queue() is not None:
                schedule_flush(storage)
                continue
            outbox.write_soon(storage)
        except Exception as exc:  # the rows are safe in the outbox; say what happened
            logger.warning('Pachyderm storage %s: export not started: %s', storage.id, exc)
            outbox.retry_later(storage, _failed(exc))


def schedule_flush(storage, result=None) -> None:
    """Background mode: make sure one flush job of this storage is scheduled (after a back-off if failing)."""
    from datetime import timedelta

    queue = jobs.get_queue()
    if queue is None:
        if result is not None:
            outbox.retry_later(storage, result)
        return
    conn = queue.connection
    if result is not None and result.error is not None:
        failures = conn.incr(_FLUSH_FAILURES.format(queue=queue, id=storage.id))
        if failures == 1:
            conn.expire(_FLUSH_FAILURES.format(queue=queue, id=storage.id), 24 * 3600)
        delay = min(600.0, outbox.retry_seconds() * 2 ** (failures - 1))
    elif result is not None and result.busy:
        delay = lease_seconds() + 1
    else:
        delay = float(getattr(settings, 'PACHYDERM_EXPORT_COALESCE_SECONDS', 0) or 0)
    if _claim_flush(queue, storage, ttl=delay * 4 + 60):
        queue.enqueue_in(timedelta(seconds=max(delay, 0.0)), flush_job, type(storage), storage.id,
                         on_failure=_on_flush_failure)


def _claim_flush(queue, storage, ttl: float) -> bool:
    """Mark a flush of ``storage`` as scheduled unless one already is; True when this caller must enqueue it.

    The mark expires after ``ttl`` seconds, so a job lost with its worker cannot block flushes for ever.
    """
    return bool(queue.connection.set(_FLUSH_SCHEDULED.format(queue=queue, id=storage.id), '1', nx=True,
                                     ex=int(ttl)))


def write_overdue(storage) -> None:
    """The outbox sweep found rows whose writer is gone: get them written by a process that is alive.

    Inline mode: this process's retry thread. Background mode: a flush job on the queue right
    away (the rows are overdue; no coalescing, and no need for RQ's scheduler), unless one
    is already scheduled: a failing one keeps its back-off, and one its scheduler forgot is
    moved to the queue (``_enqueue_late_flushes``).
    """
    queue = jobs.get_queue()
    if queue is None:
        outbox.retry_soon(storage)
        return
    if _claim_flush(queue, storage, ttl=outbox.retry_seconds() * 4 + 60):
        queue.enqueue(flush_job, type(storage), storage.id, on_failure=_on_flush_failure)
    else:
        _enqueue_late_flushes(queue, storage)


_SCHEDULER_SLACK = 5.0  # seconds a scheduled flush job may be late before it is taken for one no scheduler moves


def _enqueue_late_flushes(queue, storage) -> int:
    """Flush jobs of ``storage`` that RQ's scheduler should have enqueued by now, enqueued here.

    Only a running RQ scheduler moves a scheduled job (``enqueue_in``) to the queue. It runs
    in one worker, under a lock in Redis that outlives a worker killed with SIGKILL by about
    a minute, and a worker started meanwhile tries to take it again only at RQ's maintenance
    turn (every ten minutes). So after every worker died at once, a scheduled flush would
    wait that long. A job still waiting _SCHEDULER_SLACK seconds past its time has no
    scheduler: it goes to the queue, where any worker takes it. A job due later (a failing
    pachd's back-off) is left alone. Returns the number of jobs moved.
    """
    import time

    from rq.job import Job
    from rq.registry import ScheduledJobRegistry

    registry = ScheduledJobRegistry(queue=queue)
    moved = 0
    for job in Job.fetch_many(registry.get_jobs_to_schedule(time.time() - _SCHEDULER_SLACK),
                              connection=queue.connection):
        ours = job is not None and job.func_name == f'{flush_job.__module__}.flush_job'
        if not ours or list(job.args[1:2]) != [storage.id]:
            continue
        registry.remove(job)
        queue.enqueue_job(job)
        moved += 1
        logger.warning('Pachyderm storage %s: flush job %s was late (no RQ scheduler is running); enqueued it '
                       'directly', storage.id, job.id)
    return moved


def flush_job(storage_class, storage_id):
    """Background mode: write what the storage's outbox holds; reschedule while rows are left."""
    queue = jobs.get_queue()
    # Cleared first: a submit arriving from now on schedules the next flush.
    queue.connection.delete(_FLUSH_SCHEDULED.format(queue=queue, id=storage_id))
    storage = storage_class.objects.filter(id=storage_id).first()
    if storage is None:
        outbox.pending_for_id(storage_id).delete()
        return
    result = outbox.flush(storage)
    if result.error is None and not result.busy:
        queue.connection.delete(_FLUSH_FAILURES.format(queue=queue, id=storage_id))
    if result.left:
        schedule_flush(storage, result)


def _on_flush_failure(job, connection, exc_type, exc_value, exc_tb):
    """A flush job that died (not one that failed cleanly: those reschedule themselves)."""
    storage = job.args[0].objects.filter(id=job.args[1]).first()
    if storage is not None:
        schedule_flush(storage, _failed(exc_value))


def _failed(exc):
    return outbox.FlushResult(commits=[], error=exc, left=1)
