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
import time
import traceback as tb
from datetime import datetime

from django.conf import settings
from django.utils import timezone
from rest_framework.exceptions import ValidationError

logger = logging.getLogger(__name__)

_COALESCE_PENDING = 'pachyderm:export:pending:{}'
_COALESCE_SCHEDULED = 'pachyderm:export:scheduled:{}'
_COALESCE_RETRIES = 'pachyderm:export:retries:{}'
_RETRY_ATTEMPTS = 5  # then the annotations wait for the next submit or a sync


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
def import_sync_job(storage_class, storage_id, full_rescan=False):
    storage = storage_class.objects.get(id=storage_id)
    storage.scan_and_create_links(full_rescan=full_rescan)


def export_sync_job(storage_class, storage_id, only_new=False):
    storage = storage_class.objects.get(id=storage_id)
    started = timezone.now()
    if only_new:
        storage.save_only_new_annotations()
    else:
        storage.save_all_annotations()
    export_saved_during_sync(storage_class, storage_id, started)


# An annotation without an export link after a sync that was saved up to this long before the
# sync started may have been committed after the sync read its list (a transaction in flight).
_IN_FLIGHT_SECONDS = 10


def export_saved_during_sync(storage_class, storage_id, started) -> None:
    """After a sync: export the annotations saved while it ran, in one more commit. Never raises.

    The sync reads its list of annotations when it starts, and while its commit is open pachd
    refuses any other commit on the branch, so the auto-exports of annotations saved meanwhile
    fail. Their failure note cannot survive either: the sync records its own result over it.
    Without this step such an annotation would stay out of the repo (or stale in it) while the
    storage says "completed".
    """
    from datetime import timedelta

    from django.db.models import Q
    from tasks.models import Annotation

    from .exporter import export_annotations

    storage = storage_class.objects.filter(id=storage_id).first()
    if storage is None or storage.status not in (storage.Status.COMPLETED, storage.Status.COMPLETED_WITH_ERRORS):
        return  # a failed sync says so; the next one exports everything
    try:
        linked = storage.links.model.objects.filter(storage=storage).values('annotation_id')
        window = started - timedelta(seconds=_IN_FLIGHT_SECONDS)
        ids = list(
            Annotation.objects.filter(project_id=storage.project_id)
            .filter(Q(updated_at__gte=started) | (Q(updated_at__gte=window) & ~Q(id__in=linked)))
            .order_by('id').values_list('id', flat=True)
        )
    except Exception:
        logger.exception('Pachyderm storage %s: cannot list annotations saved during the sync', storage_id)
        return
    if not ids:
        return
    try:
        export_annotations(storage, annotation_ids=ids, reason='annotations saved during a sync')
    except Exception as exc:
        logger.warning('Pachyderm storage %s: annotations saved during the sync not exported: %s', storage_id, exc)
        note_export_error(storage, exc, f'annotations {", ".join(map(str, ids))} (saved during the sync)')


def _busy(storage) -> bool:
    """Whether a sync of this storage is genuinely queued or running right now."""
    if storage.status not in (storage.Status.QUEUED, storage.Status.IN_PROGRESS):
        return False
    meta = storage.meta or {}
    if storage.status == storage.Status.QUEUED and storage.last_sync_job:
        queue = get_queue()
        if queue is None:
            return False
        from rq.job import Job

        try:
            job = Job.fetch(storage.last_sync_job, connection=queue.connection)
        except Exception:
            return False  # the job is gone: nothing will run it
        return job.get_status(refresh=True) in ('queued', 'started', 'deferred', 'scheduled')
    stamp = meta.get('time_last_ping') or meta.get('time_queued')
    if not stamp:
        return False
    age = (timezone.now() - datetime.fromisoformat(stamp)).total_seconds()
    return age < settings.STORAGE_IN_PROGRESS_TIMER * 5


def claim_sync(storage) -> bool:
    """Move the storage to QUEUED unless a sync is already queued or running.

    One conditional UPDATE, so two requests (or a request and a worker) racing on
    any database cannot both start a sync: Label Studio's own check locks rows on
    PostgreSQL only, and a second concurrent import would duplicate tasks.
    """
    storage.refresh_from_db()
    if _busy(storage):
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


def run_import_sync(storage, full_rescan=False):
    if claim_sync(storage):
        _run(import_sync_job, storage, full_rescan)


def run_export_sync(storage, only_new=False):
    if claim_sync(storage):
        _run(export_sync_job, storage, only_new)


# ----------------------------------------------------------------------------- auto-export
# A storage whose pachd just failed is not dialled again for a while, so that a
# burst of submits (or a project deletion) does not wait on pachd each time.
_BACKOFF_SECONDS = 30.0
_unreachable_until: dict = {}


def _in_backoff(storage_id) -> bool:
    return _unreachable_until.get(storage_id, 0) > time.monotonic()


def _on_auto_export_failure(job, connection, exc_type, exc_value, exc_tb):
    """Background auto-exports report failures on the storage, as inline ones do."""
    storage = job.args[0].objects.filter(id=job.args[1]).first()
    if storage is not None:
        ids = job.args[2] if len(job.args) > 2 else None
        what = f'annotations {", ".join(map(str, ids))}' if ids else 'gathered annotations'
        note_export_error(storage, exc_value, what)


def auto_export_job(storage_class, storage_id, annotation_ids):
    from .exporter import export_annotations

    storage = storage_class.objects.filter(id=storage_id).first()
    if storage is not None:
        export_annotations(storage, annotation_ids=annotation_ids, reason='annotations submitted')


def coalesced_export_job(storage_class, storage_id):
    """Export every annotation gathered for this storage since the job was scheduled: one commit.

    A failed flush puts its annotations back and schedules another flush, up to
    _RETRY_ATTEMPTS times with doubling delays from PACHYDERM_EXPORT_RETRY_SECONDS,
    so a pachd outage during a burst of submits heals without anyone syncing.
    """
    queue = get_queue()
    conn = queue.connection
    # Clear the flag first: a submit arriving from now on schedules the next flush.
    conn.delete(_COALESCE_SCHEDULED.format(storage_id))
    pending_key = _COALESCE_PENDING.format(storage_id)
    pipe = conn.pipeline()
    pipe.smembers(pending_key)
    pipe.delete(pending_key)
    members, _ = pipe.execute()
    ids = sorted(int(m) for m in members)
    if not ids:
        return
    try:
        auto_export_job(storage_class, storage_id, ids)
    except Exception:
        # Put them back so the next flush (or a manual sync) still exports them.
        conn.sadd(pending_key, *ids)
        _schedule_retry(queue, storage_class, storage_id)
        raise
    conn.delete(_COALESCE_RETRIES.format(storage_id))


def _schedule_retry(queue, storage_class, storage_id) -> None:
    from datetime import timedelta

    conn = queue.connection
    retries_key = _COALESCE_RETRIES.format(storage_id)
    attempt = conn.incr(retries_key)
    conn.expire(retries_key, 24 * 3600)
    if attempt > _RETRY_ATTEMPTS:
        return
    delay = float(getattr(settings, 'PACHYDERM_EXPORT_RETRY_SECONDS', 30) or 30) * 2 ** (attempt - 1)
    if conn.set(_COALESCE_SCHEDULED.format(storage_id), '1', nx=True, ex=int(delay * 4) + 60):
        queue.enqueue_in(timedelta(seconds=delay), coalesced_export_job, storage_class, storage_id,
                         on_failure=_on_auto_export_failure)


def export_on_submit(storage, annotation_id) -> None:
    """Called from the annotation post_save receiver. Never raises."""
    try:
        queue = get_queue()
        if queue is None:
            _export_inline(storage, annotation_id)
            return
        window = float(getattr(settings, 'PACHYDERM_EXPORT_COALESCE_SECONDS', 0) or 0)
        if window <= 0:
            queue.enqueue(auto_export_job, storage.__class__, storage.id, [annotation_id],
                          on_failure=_on_auto_export_failure)
            return
        conn = queue.connection
        conn.sadd(_COALESCE_PENDING.format(storage.id), annotation_id)
        if conn.set(_COALESCE_SCHEDULED.format(storage.id), '1', nx=True, ex=int(window * 4) + 60):
            from datetime import timedelta

            queue.enqueue_in(timedelta(seconds=window), coalesced_export_job, storage.__class__, storage.id,
                             on_failure=_on_auto_export_failure)
    except Exception as exc:
        logger.warning('Could not export annotation %s to Pachyderm storage %s: %s', annotation_id, storage.id, exc)
        note_export_error(storage, exc, f'annotation {annotation_id}')


def _export_inline(storage, annotation_id) -> None:
    from .exporter import export_annotations

    if _in_backoff(storage.id):
        note_export_error(storage, None, f'annotation {annotation_id}', skipped=True)
        return
    try:
        export_annotations(storage, annotation_ids=[annotation_id], reason='annotation submitted')
    except Exception as exc:
        from .pachd import PachdUnavailable

        if isinstance(exc, PachdUnavailable) or 'cannot reach pachd' in str(exc):
            _unreachable_until[storage.id] = time.monotonic() + _BACKOFF_SECONDS
        logger.warning('Could not export annotation %s to Pachyderm storage %s: %s', annotation_id, storage.id, exc)
        note_export_error(storage, exc, f'annotation {annotation_id}')


def note_export_error(storage, exc, what: str, skipped: bool = False) -> None:
    """Show an auto-export problem on the storage; the next sync exports what was missed."""
    if skipped:
        message = f'{what} not exported yet: pachd was unreachable moments ago. The next sync exports it.'
    else:
        reason = failure_text(exc).strip().splitlines()[-1] if exc is not None else 'unknown error'
        if isinstance(exc, ValidationError):
            reason = failure_text(exc).strip().splitlines()[0]
        message = f'{what} not exported: {reason}. The next sync exports it.'
    # A running sync owns the status; it will be told about missed annotations by its own result.
    type(storage).objects.filter(id=storage.id).exclude(
        status__in=[storage.Status.QUEUED, storage.Status.IN_PROGRESS]
    ).update(status=storage.Status.COMPLETED_WITH_ERRORS, traceback=message)
    storage.refresh_from_db(fields=['meta'])
    meta = storage.meta or {}
    meta['auto_export_error'] = message
    meta['time_auto_export_error'] = str(timezone.now())
    type(storage).objects.filter(id=storage.id).update(meta=meta)
