"""Where Pachyderm work runs: inline (the default), or on the plugin's RQ queue.

Label Studio OSS hard-codes Redis off, so its own job launcher always runs
inline. Rather than flip that switch for every Label Studio job, the plugin has
an opt-in queue for its own work only: set ``PACHYDERM_REDIS_URL`` and start
``label-studio-pachyderm worker``. Job functions receive a model class and an
id (RQ pickles the class by reference), and always re-read the storage.

Failures never leave a storage QUEUED or IN_PROGRESS: they end in FAILED with
a readable reason in ``traceback`` and ``meta``.

This module is what both flows share: the queue, failure bookkeeping, and the claim
and the lease that make a storage's sync its only one. The jobs themselves are in
``imports.jobs`` (import syncs) and ``exports.jobs`` (export syncs and flushes).
"""
from __future__ import annotations

import logging
import traceback as tb
from datetime import datetime

from django.conf import settings
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from . import leases, pachd
from .leases import lease_seconds

logger = logging.getLogger(__name__)


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
    if isinstance(exc, (ValidationError, pachd.PachdError)):
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


def run(fn, storage, *args):
    """Run the job ``fn(storage class, storage id, *args)`` now, or queue it in background mode."""
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
    lease = leases.Lease(sync_key(type(storage), storage.id), lease_seconds())
    model, active = type(storage), (storage.Status.QUEUED, storage.Status.IN_PROGRESS)

    def ping():
        meta = dict(storage.meta or {})
        meta['time_last_ping'] = str(timezone.now())
        model.objects.filter(id=storage.id, status__in=active).update(meta=meta)

    return lease, ping


def run_exclusive(storage_class, storage_id, body, *args) -> None:
    """Run ``body(storage, *args)`` as the storage's only sync, or not at all when another one is alive."""
    storage = storage_class.objects.get(id=storage_id)
    lease, ping = _sync_lease(storage)
    if not lease.acquire():
        logger.info('Pachyderm storage %s: another sync is running; this one does not start', storage_id)
        return
    lease.start_heartbeat(on_beat=ping, every=min(lease.seconds / 3, settings.STORAGE_IN_PROGRESS_TIMER))
    try:
        body(storage, *args)
    finally:
        lease.release()


def sync_is_busy(storage) -> bool:
    """Whether a sync of this storage is genuinely queued or running right now."""
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
    any database cannot both queue a sync; and the sync lease (``run_exclusive``)
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
