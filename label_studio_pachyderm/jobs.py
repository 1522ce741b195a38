"""Where Pachyderm work runs: inline (the default), or on the plugin's RQ queue.

Label Studio OSS hard-codes Redis off, so its own job launcher always runs
inline. Rather than flip that switch for every Label Studio job, the plugin has
an opt-in queue for its own work only: set ``PACHYDERM_REDIS_URL`` and start
``label-studio-pachyderm worker``. Job functions receive a model class and an
id (RQ pickles the class by reference), and always re-read the storage.

Failures never leave a storage QUEUED or IN_PROGRESS: they end in FAILED with
a readable reason in ``traceback`` and ``meta``.
"""
from __future__ import annotations

import logging
import traceback as tb
from datetime import datetime

from django.conf import settings
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from .leases import lease_seconds

logger = logging.getLogger(__name__)

# Per queue and storage: deployments (or test runs) that share one Redis keep apart by queue name.
_FLUSH_SCHEDULED = 'pachyderm:export:scheduled:{queue.name}:{id}'  # a flush job of this storage is waiting to run
_FLUSH_FAILURES = 'pachyderm:export:failures:{queue.name}:{id}'  # failed flushes in a row (sets the back-off)


_connections: dict = {}


def get_queue():
    """The plugin's RQ queue, or None in inline mode.

    Built from the plugin settings at call time (not from django-rq's RQ_QUEUES,
    which is read once at import), so the mode follows the settings in force.
    """
    url = getattr(settings, 'PACHYDERM_REDIS_URL', '')
    if not url:
        return None
    from redis import Redis
    from rq import Queue

    if url not in _connections:
        _connections[url] = Redis.from_url(url)
    return Queue(settings.PACHYDERM_RQ_QUEUE, connection=_connections[url])


# ----------------------------------------------------------------------------- failure bookkeeping
def failure_text(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        detail = exc.detail
        if isinstance(detail, dict):
            parts = [str(m) for msgs in detail.values() for m in (msgs if isinstance(msgs, list) else [msgs])]
        elif isinstance(detail, list):
            parts = [str(m) for m in detail]
        else:
            parts = [str(detail)]
        return '\n'.join(parts)
    return ''.join(tb.format_exception(type(exc), exc, exc.__traceback__))


def short_reason(exc: BaseException) -> str:
    """One line saying what went wrong: the message for expected errors, the exception line otherwise."""
    from .pachd import PachdError

    if isinstance(exc, (ValidationError, PachdError)):
        lines = failure_text(exc).strip().splitlines() if isinstance(exc, ValidationError) else [str(exc)]
        return lines[0] if lines else exc.__class__.__name__
    return f'{exc.__class__.__name__}: {exc}' if str(exc) else exc.__class__.__name__


def record_failure(storage_class, storage_id, exc: BaseException) -> None:
    storage = storage_class.objects.filter(id=storage_id).first()
    if storage is None:
        return
    now = timezone.now()
    storage.status = storage.Status.FAILED
    storage.traceback = failure_text(exc)
    meta = storage.meta or {}
    meta['time_failure'] = str(now)
    meta['error'] = storage.traceback.splitlines()[0] if storage.traceback else exc.__class__.__name__
    storage.meta = meta
    storage.save(update_fields=['status', 'traceback', 'meta'])


def _on_rq_failure(job, connection, exc_type, exc_value, exc_tb):
    record_failure(job.args[0], job.args[1], exc_value)


def _redis_where(url: str) -> str:
    """host:port/db of a Redis URL, never its password."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        return f'{parts.hostname or "localhost"}:{parts.port or 6379}{parts.path or ""}'
    except ValueError:
        return 'the configured Redis'


def _run(fn, storage, *args):
    queue = get_queue()
    if queue is not None:
        try:
            job = queue.enqueue(
                fn, storage.__class__, storage.id, *args,
                on_failure=_on_rq_failure, job_timeout=settings.RQ_LONG_JOB_TIMEOUT,
            )
        except Exception as exc:
            # The claim already says QUEUED: without this the storage would stay queued with
            # no job behind it (and the request would fail with a bare 500).
            reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
            logger.warning('Pachyderm storage %s: cannot queue the sync: %s', storage.id, reason)
            record_failure(storage.__class__, storage.id, ValidationError([
                f'cannot queue the sync: Redis at {_redis_where(settings.PACHYDERM_REDIS_URL)} '
                f'(PACHYDERM_REDIS_URL) did not take the job ({reason}). Start Redis and a '
                '"label-studio-pachyderm worker", or unset PACHYDERM_REDIS_URL to run syncs inline; then sync again.'
            ]))
            return
        storage.info_set_job(job.id)
        return
    try:
        fn(storage.__class__, storage.id, *args)
    except Exception as exc:
        logger.info('Pachyderm storage %s job failed: %s', storage.id, exc)
        record_failure(storage.__class__, storage.id, exc)


# ----------------------------------------------------------------------------- syncs
def sync_key(storage_class, storage_id) -> str:
    return f'sync:{storage_class._meta.model_name}:{storage_id}'


def _sync_lease(storage):
    """The lease a running sync holds for its whole run, renewed by a heartbeat (see ``leases``).

    Each beat also refreshes ``time_last_ping`` in the stored meta, so neither this
    module nor Label Studio's own health check takes a sync busy with one slow step
    (a big file, a long wait for pachd) for a dead one. The sync's in-memory meta is
    left alone: Label Studio's progress updates compare against it.
    """
    from .leases import Lease

    lease = Lease(sync_key(type(storage), storage.id), lease_seconds())
    model, active = type(storage), (storage.Status.QUEUED, storage.Status.IN_PROGRESS)

    def ping():
        meta = dict(storage.meta or {})
        meta['time_last_ping'] = str(timezone.now())
        model.objects.filter(id=storage.id, status__in=active).update(meta=meta)

    return lease, ping


def _run_exclusive(storage_class, storage_id, run, *args) -> None:
    """Run ``run(storage, *args)`` as the storage's only sync, or not at all when another one is alive."""
    storage = storage_class.objects.get(id=storage_id)
    lease, ping = _sync_lease(storage)
    if not lease.acquire():
        logger.info('Pachyderm storage %s: another sync is running; this one does not start', storage_id)
        return
    lease.start_heartbeat(on_beat=ping, every=min(lease.seconds / 3, settings.STORAGE_IN_PROGRESS_TIMER))
    try:
        run(storage, *args)
    finally:
        lease.release()


def import_sync_job(storage_class, storage_id, full_rescan=False):
    _run_exclusive(storage_class, storage_id, _import_sync, full_rescan)


def export_sync_job(storage_class, storage_id, only_new=False, reason='manual sync'):
    _run_exclusive(storage_class, storage_id, _export_sync, only_new, reason)


def _import_sync(storage, full_rescan=False):
    storage.scan_and_create_links(full_rescan=full_rescan)


def _export_sync(storage, only_new=False, reason='manual sync'):
    """A full sync: every annotation (or only those never exported) and the outbox, in one commit.

    ``reason`` says in the commit description what asked for it: ``manual sync``, or
    ``storage created`` for the sync Label Studio runs when a target storage is added.
    """
    from . import outbox

    from tasks.models import Annotation

    snapshot = Annotation.objects.filter(project_id=storage.project_id)
    if only_new:
        snapshot = snapshot.exclude(id__in=storage.links.model.objects.filter(storage=storage).values('annotation_id'))
    result = outbox.flush(storage, wait=lease_seconds(), snapshot=snapshot, track_status=True, reason=reason)
    if result.left:
        schedule_flush(storage, result)


def sync_is_busy(storage) -> bool:
    """Whether a sync of this storage is genuinely queued or running right now."""
    from . import leases

    if leases.is_held(sync_key(type(storage), storage.id)):
        return True  # a live sync renews its lease, however long a step takes
    if storage.status != storage.Status.QUEUED:
        return False  # IN_PROGRESS without a live lease: its process died
    if storage.last_sync_job:
        queue = get_queue()
        if queue is None:
            return False
        from rq.job import Job

        try:
            job = Job.fetch(storage.last_sync_job, connection=queue.connection)
        except Exception:
            return False  # the job is gone: nothing will run it
        return job.get_status(refresh=True) in ('queued', 'started', 'deferred', 'scheduled')
    stamp = (storage.meta or {}).get('time_queued')
    if not stamp:
        return False
    # Queued moments ago by a request that is about to run it (or to hand it to RQ).
    age = (timezone.now() - datetime.fromisoformat(stamp)).total_seconds()
    return age < settings.STORAGE_IN_PROGRESS_TIMER * 5


def claim_sync(storage) -> bool:
    """Move the storage to QUEUED unless a sync is already queued or running.

    One conditional UPDATE, so two requests (or a request and a worker) racing on
    any database cannot both queue a sync; and the sync lease (``_exclusive``)
    keeps two from ever running at once, even if both were queued.
    """
    storage.refresh_from_db()
    if sync_is_busy(storage):
        logger.info('Pachyderm storage %s: a sync is already %s; not starting another', storage.id, storage.status)
        return False
    # Status and the queued time in the same statement: a concurrent request must
    # never see QUEUED without the time that proves it fresh.
    meta = {'attempts': (storage.meta or {}).get('attempts', 0) + 1, 'time_queued': str(timezone.now())}
    claimed = type(storage).objects.filter(pk=storage.pk, status=storage.status).update(
        status=storage.Status.QUEUED, meta=meta, last_sync=None, last_sync_count=None, last_sync_job=None,
        traceback=None,
    )
    if not claimed:
        return False
    storage.refresh_from_db()
    return True


def run_import_sync(storage, full_rescan=False) -> bool:
    """Claim and run (or queue) an import sync; False when another one was already queued or running."""
    if claim_sync(storage):
        _run(import_sync_job, storage, full_rescan)
        return True
    return False


def run_export_sync(storage, only_new=False, reason='manual sync'):
    if claim_sync(storage):
        _run(export_sync_job, storage, only_new, reason)


# ----------------------------------------------------------------------------- auto-export
def export_pending(storage_ids) -> None:
    """After a transaction that recorded outbox rows: get them written. Never raises.

    Inline mode: try to be the target's writer now, without waiting (see ``outbox``).
    Background mode: one delayed, de-duplicated flush job per storage gathers the
    submits of PACHYDERM_EXPORT_COALESCE_SECONDS into one commit.
    """
    from . import outbox
    from .models import PachydermExportStorage

    for storage in PachydermExportStorage.objects.filter(id__in=list(storage_ids)):
        try:
            if get_queue() is not None:
                schedule_flush(storage)
                continue
            outbox.write_soon(storage)
        except Exception as exc:  # the rows are safe in the outbox; say what happened
            logger.warning('Pachyderm storage %s: export not started: %s', storage.id, exc)
            outbox.retry_later(storage, _failed(exc))


def schedule_flush(storage, result=None) -> None:
    """Background mode: make sure one flush job of this storage is scheduled (after a back-off if failing)."""
    from datetime import timedelta

    from . import outbox

    queue = get_queue()
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
    from . import outbox

    queue = get_queue()
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
    from . import outbox

    queue = get_queue()
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
    from .outbox import FlushResult

    return FlushResult(commits=[], error=exc, left=1)
