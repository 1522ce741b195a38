"""The export outbox: annotation changes wait here until a commit holding them is finished.

Why: a branch has at most one open commit (pachd refuses a second writer while the
head is open), and Label Studio is used by teams whose submits arrive together. So:

* Every save or delete of an annotation in a project with a Pachyderm target adds
  a row (``PachydermExportOutboxEntry``) in the same database transaction as the
  change (``record_change``, called from the model signals). A crash anywhere after
  the save loses nothing.
* One writer at a time per target (pachd address, project, repo, branch) holds a
  lease (``leases``). It drains the storage's rows into ONE commit, and deletes the
  drained rows only after FinishCommit succeeded. After releasing it looks again,
  so a row recorded meanwhile is never stranded.
* A submit never waits for pachd: the request records its rows and returns.
  Inline mode (the default): each process has one writer thread, woken at once
  by the request's commit (``write_soon``). It takes the target's lease and
  writes every pending row of the storage in one commit: at once after a quiet
  spell, else when PACHYDERM_EXPORT_COALESCE_SECONDS have passed since its last
  commit, so a burst of submits becomes one commit per window.
  Rows that are left over (pachd down, a busy branch, a writer that died) are
  tried again by the same thread, with back-off, as long as rows are pending.
  Background mode (RQ): the flush runs as a job (``jobs``). When the process
  that had the rows dies, its thread dies with it: the outbox sweep
  (``sweeper``) of any live process takes them over.
* Commits carry a marker line naming the writer's lease holder. A writer that
  holds the lease and finds such a commit still open on the branch drops it only
  when that holder has no live lease and the commit is still open right before
  the drop (``_clear_dead_writer``); the outbox still holds the work. An open
  commit without the marker is someone else's: the storage says so and the
  writer tries again later.
"""
from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Optional

from django.conf import settings
from django.db import connection
from django.utils import timezone

from .. import leases, pachd, tables
from ..connection import pachd_identity
from ..leases import Lease, lease_seconds

logger = logging.getLogger(__name__)

MARKER = 'Label-Studio-Pachyderm-Writer:'
_BATCH = 5000  # rows drained per commit; more wait for the next round of the same writer
_ROUNDS = 3  # commits one flush makes at most before it hands what is left to the retry thread
_MAX_RETRY_SECONDS = 600.0


def coalesce_seconds() -> float:
    """PACHYDERM_EXPORT_COALESCE_SECONDS: a target gets at most one auto-export commit per window."""
    return float(getattr(settings, 'PACHYDERM_EXPORT_COALESCE_SECONDS', 0) or 0)


def retry_seconds() -> float:
    return float(getattr(settings, 'PACHYDERM_EXPORT_RETRY_SECONDS', 30) or 30)


def target_key(storage) -> str:
    """The lease key of a storage's target branch: the same branch is the same key, whichever storage writes."""
    where = '|'.join((pachd_identity(storage), storage.project_name, storage.repo, storage.branch_name))
    return 'export:' + hashlib.sha256(where.encode()).hexdigest()[:48]


def _entry_model():
    return tables.outbox_entry_model()


# ----------------------------------------------------------------------------- recording
def targets_of(annotation, deleted: bool = False) -> list:
    """Ids of the Pachyderm targets a change of ``annotation`` must reach.

    Deletes go only to targets that may delete files (``can_delete_objects``), as
    Label Studio's own storages do.
    """
    storages = tables.export_storage_model().objects.filter(project_id=annotation.project_id)
    if deleted:
        storages = storages.filter(can_delete_objects=True)
    return list(storages.values_list('id', flat=True))


def record_change(annotation, storage_ids, deleted: bool = False) -> None:
    """Add one outbox row per target in ``storage_ids``, in the transaction that changes the annotation.

    Only INSERTs: on SQLite a transaction that reads and then writes can be refused
    at once under concurrency ("database is locked"), one that starts by writing waits its turn.
    """
    _entry_model().objects.bulk_create([
        _entry_model()(storage_id=sid, task_id=annotation.task_id, annotation_id=annotation.id, deleted=deleted)
        for sid in storage_ids
    ])


def pending(storage):
    return pending_for_id(storage.id)


def all_pending():
    return _entry_model().objects.all()


def pending_for_id(storage_id: int):
    return _entry_model().objects.filter(storage_id=storage_id)


def status(storage) -> dict:
    """What the storage card shows about the outbox: pending rows and the age of the oldest."""
    rows = pending(storage)
    oldest = rows.order_by('id').values_list('created_at', flat=True).first()
    return {
        'pending_exports': rows.count(),
        'oldest_pending_seconds': round((timezone.now() - oldest).total_seconds(), 1) if oldest else None,
    }


# ----------------------------------------------------------------------------- writing
@dataclass
class FlushResult:
    commits: list
    exported: int = 0  # rows drained
    busy: bool = False  # another writer held the target's lease
    error: Optional[BaseException] = None
    left: int = 0  # rows still pending afterwards

    def add(self, commit: str, drained: int) -> None:
        """One round's outcome: its commit ('' when none was needed) and the rows it drained."""
        if commit:
            self.commits.append(commit)
        self.exported += drained


class FormatsNotWritten(ValueError):
    """The commit landed with every annotation, but one or more export formats could not be converted."""


class OpenCommitNotOurs(pachd.PachdError):
    """The branch head is an unfinished commit that no writer of this plugin started."""


# A target whose pachd just failed is not dialled again for a while, so a burst of submits
# (or a project deletion) does not make the writer wait on a dead pachd once per submit.
_unreachable_until: dict = {}


def flush(storage, wait: float = 0.0, snapshot=None, track_status: bool = False, reason: str = 'auto-export',
          rounds: int = _ROUNDS) -> FlushResult:
    """Write this storage's pending rows as the target's one writer, in one commit per round.

    ``snapshot``: annotations to write in the first commit besides the rows (a
    manual sync passes all of them, so its one commit is a full snapshot).

    ``wait``: seconds to wait for the lease (0: return at once with ``busy`` when
    another writer holds it). Raises only with ``track_status`` (a manual sync,
    whose job records the failure); otherwise errors come back in the result.
    """
    lease = Lease(target_key(storage), lease_seconds())
    if not lease.acquire_within(wait):
        if track_status:
            raise pachd.PachdError(
                f'another export to {storage.project_name}/{storage.repo}@{storage.branch_name} is still being '
                f'written; sync again in a moment')
        return FlushResult(commits=[], busy=True, left=pending(storage).count())
    result = FlushResult(commits=[])
    lease.start_heartbeat()
    try:
        for round_number in range(max(1, rounds)):
            if lease.lost.is_set():
                break
            first = round_number == 0
            # Later rounds carry what was saved while the first commit was being written.
            done = _write_round(storage, lease, snapshot if first else None, track_status and first,
                                reason if first else 'auto-export')
            if done is None:
                break
            result.add(*done)
            if not pending(storage).exists():
                break
        _unreachable_until.pop(target_key(storage), None)
    except Exception as exc:
        if isinstance(exc, pachd.PachdUnavailable) or 'cannot reach pachd' in str(exc):
            _unreachable_until[target_key(storage)] = time.monotonic() + min(retry_seconds(), 30.0)
        if track_status:
            raise
        result.error = exc
    finally:
        lease.release()
    result.left = pending(storage).count()
    _record_outcome(storage, result, card=not track_status)
    return result


def drain_recorded(storage, lease, row_ids: set, recorded_before) -> FlushResult:
    """Write exactly the rows ``row_ids`` (those recorded before a labeling round began), holding
    ``lease``, the target's writer lease; annotations created after ``recorded_before`` stay out of
    the files written, and their own rows stay pending for the next flush. Raises on any error."""
    result = FlushResult(commits=[])
    left = set(row_ids)
    while left:
        done = _write_round(storage, lease, None, False, 'labeling round', row_ids=left,
                            recorded_before=recorded_before)
        if done is None:
            break
        result.add(*done)
        left &= set(pending(storage).filter(id__in=left).values_list('id', flat=True))
    result.left = pending(storage).count()
    _record_outcome(storage, result)
    return result


def _write_round(storage, lease, snapshot, track_status, reason, row_ids=None, recorded_before=None):
    """One commit: (commit id, rows drained), or None when there was nothing to do.

    ``row_ids``: only these rows (else the oldest pending ones); ``recorded_before``: leave out
    annotations created after this moment (see ``drain_recorded``).
    """
    from tasks.models import Annotation

    from . import formats, writer

    rows = pending(storage) if row_ids is None else pending(storage).filter(id__in=row_ids)
    rows = list(rows.order_by('id').values('id', 'task_id', 'annotation_id', 'deleted')[:_BATCH])
    full = snapshot is not None
    if not rows and not full:
        return None
    client = storage.get_client()
    _clear_dead_writer(client, storage, lease)
    annotations = Annotation.objects.filter(project_id=storage.project_id)
    if recorded_before is not None:
        annotations = annotations.filter(created_at__lte=recorded_before)
    removals = set()
    if full:
        queryset = snapshot
    elif writer.layout() == 'task':
        tasks = {row['task_id'] for row in rows}
        queryset = annotations.filter(task_id__in=tasks)
        still_annotated = set(queryset.values_list('task_id', flat=True).distinct())
        removals = {writer.task_path(storage, row['task_id']) for row in rows
                    if row['deleted'] and row['task_id'] not in still_annotated}
    else:
        ids = {row['annotation_id'] for row in rows}
        queryset = annotations.filter(id__in=ids)
        present = set(queryset.values_list('id', flat=True))
        removals = {writer.annotation_path(storage, row['annotation_id']) for row in rows
                    if row['deleted'] and row['annotation_id'] not in present}
    if full and rows:
        # A full snapshot also carries the deletions waiting in the outbox.
        present_tasks = set(annotations.values_list('task_id', flat=True).distinct())
        present_ids = set(annotations.filter(id__in=[r['annotation_id'] for r in rows]).values_list('id', flat=True))
        for row in rows:
            if not row['deleted']:
                continue
            if writer.layout() == 'task' and row['task_id'] not in present_tasks:
                removals.add(writer.task_path(storage, row['task_id']))
            elif writer.layout() != 'task' and row['annotation_id'] not in present_ids:
                removals.add(writer.annotation_path(storage, row['annotation_id']))
    problems: list = []
    # The training formats ride along in this writer's commit: always in a full snapshot (manual
    # sync), else at most once per PACHYDERM_FORMATS_REFRESH_SECONDS (a conversion reads every
    # annotated task of the project). No rows, no commit: a refresh that is due waits for the next change.
    # Not in a round's drain: a conversion reads every annotation, also those after its cut.
    with_formats = full or (recorded_before is None and formats.due(storage))
    commit = writer.export_annotations(storage, queryset=queryset, reason=reason, track_status=track_status,
                                         removals=removals, marker=f'{MARKER} {lease.holder}', errors=problems,
                                         formats=with_formats, created_before=recorded_before)
    if commit and not lease.renew():
        # Someone else took the lease while this commit was written (this process stalled past the
        # lease): it may take this commit for a dead writer's and drop it. Keep the rows; writing
        # them again is harmless.
        raise pachd.PachdError(f'the export lease of {storage.project_name}/{storage.repo}@{storage.branch_name} '
                               f'was lost while commit {commit} was written; its changes are written again')
    # Only now, with the commit finished, are the drained rows done with. An annotation that
    # cannot be serialised is not retried for ever: it is reported, and its next save records it again.
    _entry_model().objects.filter(id__in=[row['id'] for row in rows]).delete()
    if problems and all(isinstance(problem, formats.FormatProblem) for problem in problems):
        raise FormatsNotWritten('; '.join(problems))
    if problems:
        raise ValueError('; '.join(problems))
    return commit, len(rows)


def writer_of(description: str) -> Optional[str]:
    """The lease holder named by a commit's marker line, or None when no writer of this plugin started it."""
    for line in (description or '').splitlines():
        if line.startswith(MARKER):
            return line[len(MARKER):].strip() or None
    return None


def _clear_dead_writer(client, storage, lease) -> None:
    """Drop an unfinished commit left on the branch by a writer of ours that died.

    Dropped only when it is provably open and provably a dead writer's: its marker names
    a writer that holds no live lease (we hold the branch's lease, so no writer of this
    deployment can be writing), and it is still open when inspected again right before
    the drop. In any doubt the commit stays and the rows wait for the next try.
    """
    head = client.unfinished_head(storage.project_name, storage.repo, storage.branch_name)
    if head is None:
        return
    where = f'{storage.project_name}/{storage.repo}@{storage.branch_name}'
    holder = writer_of(head.description)
    if holder is None:
        raise OpenCommitNotOurs(
            f'the branch {where} has an unfinished commit {head.id} that Label Studio did not start (another '
            'program is writing to it, or was interrupted); exports wait until it is finished or dropped')
    if holder != lease.holder and leases.holder_is_live(holder):
        raise OpenCommitNotOurs(
            f'the branch {where} has an unfinished commit {head.id} of another Label Studio export writer that '
            'is still running (two storages name this pachd differently?); exports wait until it is finished')
    if client.inspect_commit(storage.project_name, storage.repo, head.id).finished:
        return  # finished after all, by a writer that was only slow: a good commit, kept
    logger.warning('Pachyderm storage %s: dropping unfinished commit %s on %s left by a writer that stopped',
                   storage.id, head.id, where)
    client.drop_commit(storage.project_name, storage.repo, head.id)


def note_waiting(storage, reason: BaseException) -> None:
    """Show on the storage that its rows wait, and why (``pending_exports`` and ``last_export_error``)."""
    _record_outcome(storage, FlushResult(commits=[], error=reason, left=pending(storage).count()))


def _record_outcome(storage, result: FlushResult, card: bool = True) -> None:
    """The last error (or its clearing) in the storage's status and meta, with the outbox's state; never raises.

    With ``card`` (an auto-export: a manual sync's job records its own figures), a flush
    that made commits also sets what Label Studio's storage card reads: "Last Sync"
    (``last_sync``), "Annotations <last_sync_count> (<meta.total_annotations> total)", and a
    status that says the target works. A flush that wrote nothing after one that went well
    writes nothing: the API shows the outbox and the last commit live (``status``).
    """
    from tasks.models import Annotation

    from ..jobs import short_reason

    try:
        model = type(storage)
        fresh = model.objects.filter(id=storage.id).values('meta', 'status', 'last_exported_commit').first()
        if fresh is None:
            return
        meta = dict(fresh['meta'] or {})
        wrote = card and bool(result.commits)
        if result.error is None and not meta.get('last_export_error') and not wrote:
            return
        meta.update(status(storage))
        meta['last_exported_commit'] = fresh['last_exported_commit'] or None
        updates = {}
        if result.commits:
            meta['time_last_export'] = str(timezone.now())
        if wrote:
            updates.update(last_sync=timezone.now(), last_sync_count=result.exported)
            meta['total_annotations'] = Annotation.objects.filter(project_id=storage.project_id).count()
            if fresh['status'] in (storage.Status.INITIALIZED, storage.Status.FAILED):
                updates.update(status=storage.Status.COMPLETED, traceback=None)
        if result.error is not None:
            waiting = meta['pending_exports']
            message = (f'{waiting} annotation change{"" if waiting == 1 else "s"} not exported yet: '
                       f'{short_reason(result.error)}. ' + (
                           'They stay in the outbox and are retried automatically.' if waiting else
                           'Save the annotation again after fixing it.'))
            if isinstance(result.error, FormatsNotWritten) and not waiting:
                message = (f'The annotations were exported, but not every export format: {result.error}. '
                           'The formats are converted again at the next refresh or sync.')
            meta['last_export_error'] = message
            meta['time_last_export_error'] = str(timezone.now())
            if fresh['status'] not in (storage.Status.QUEUED, storage.Status.IN_PROGRESS):
                updates.update(status=storage.Status.COMPLETED_WITH_ERRORS, traceback=message)
                meta['status_from_export_error'] = True
        elif not result.left and not result.busy and meta.pop('last_export_error', None):
            meta.pop('time_last_export_error', None)
            # Everything made it after all: the card stops showing the old problem.
            if meta.pop('status_from_export_error', False) and fresh['status'] == storage.Status.COMPLETED_WITH_ERRORS:
                updates.update(status=storage.Status.COMPLETED, traceback=None)
        model.objects.filter(id=storage.id).update(meta=meta, **updates)
    except Exception:
        logger.exception('Pachyderm storage %s: cannot record the export outcome', storage.id)


# ----------------------------------------------------------------------------- this process's writer
class _WriterThread:
    """Flushes storages whose rows are due: soon after a submit, later (with back-off) after a failure.

    One thread per process, started when needed and ended when nothing is due.
    New changes (``soon``) are written at once, or, when the target was written less
    than PACHYDERM_EXPORT_COALESCE_SECONDS ago, when that window ends: a burst of
    submits becomes one commit per window, and a lone submit is not kept waiting.
    Failures double the delay (from PACHYDERM_EXPORT_RETRY_SECONDS up to ten
    minutes) and never stop it while rows are pending. It has its own database
    connection, closed after every try.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._due: dict = {}  # storage id -> (monotonic time of the next try, whether it writes new changes)
        self._failures: dict = {}  # storage id -> failed tries in a row
        self._last_write: dict = {}  # storage id -> monotonic time its last flush began
        self._wake = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._stopping = False
        self._writing: Optional[int] = None  # the storage being flushed right now

    def soon(self, storage_id: int, not_before: float = 0.0) -> None:
        """New changes of ``storage_id``: write them now, or when its coalescing window ends.

        ``not_before`` (monotonic): a pachd that failed moments ago is waited out first.
        """
        with self._lock:
            now = time.monotonic()
            window_end = self._last_write.get(storage_id, now - 1e9) + coalesce_seconds()
            self._schedule(storage_id, max(now, window_end, not_before), write=not_before <= now)

    def later(self, storage_id: int, delay: float, failed: Optional[bool]) -> None:
        """Try ``storage_id`` again after ``delay``; ``failed``: True doubles the delay per failure in a
        row, False starts counting again, None leaves the count as it is."""
        with self._lock:
            if failed:
                failures = self._failures[storage_id] = self._failures.get(storage_id, 0) + 1
                delay = min(_MAX_RETRY_SECONDS, delay * 2 ** (failures - 1))
            elif failed is not None:
                self._failures.pop(storage_id, None)
            self._schedule(storage_id, time.monotonic() + delay, write=False)

    def follow_up(self, storage_id: int, result: FlushResult) -> None:
        """Rows left over by ``result``: after a failure, the back-off; while another writer holds the
        branch, one lease later (if it died, its lease has run out); a backlog longer than one flush's
        rounds, the next window."""
        if result.error is not None:
            self.later(storage_id, retry_seconds(), True)
        elif result.busy:
            self.later(storage_id, lease_seconds() + 1, False)
        else:
            self.soon(storage_id)

    def _schedule(self, storage_id: int, at: float, write: bool) -> None:
        # Called with the lock held. The earliest try wins; the thread starts when needed.
        if self._stopping:
            return
        due = self._due.get(storage_id)
        if due is None or at < due[0]:
            self._due[storage_id] = (at, write)
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name='pachyderm-export-writer', daemon=True)
            self._thread.start()
        self._wake.set()

    def has(self, storage_id: int) -> bool:
        with self._lock:
            return storage_id in self._due or self._writing == storage_id

    def idle(self) -> bool:
        """Nothing being written, and no new change waiting (a retry waiting out a back-off does not count)."""
        with self._lock:
            return self._writing is None and not any(write for _, write in self._due.values())

    def _next(self):
        """(storage id or None, seconds to wait); (None, None) when nothing is due any more."""
        with self._lock:
            if not self._due or self._stopping:
                self._thread = None
                return None, None
            storage_id, (at, _) = min(self._due.items(), key=lambda item: item[1][0])
            now = time.monotonic()
            if at > now:
                return None, at - now
            del self._due[storage_id]
            self._writing = storage_id
            self._last_write[storage_id] = now
            return storage_id, 0

    def _run(self) -> None:
        while True:
            storage_id, wait = self._next()
            if wait is None:
                return
            if storage_id is None:
                self._wake.wait(min(wait, 1.0))
                self._wake.clear()
                continue
            try:
                storage = tables.export_storage_model().objects.filter(id=storage_id).first()
                if storage is None:
                    pending_for_id(storage_id).delete()
                    continue
                result = flush(storage)
                if result.left:
                    self.follow_up(storage_id, result)
                else:
                    with self._lock:
                        self._failures.pop(storage_id, None)
            except Exception:
                logger.exception('Pachyderm storage %s: writing the export failed', storage_id)
                self.later(storage_id, retry_seconds(), True)
            finally:
                connection.close()
                with self._lock:
                    self._writing = None

    def stop(self, timeout: float = 30.0) -> None:
        """Stop writing in this process (tests, shutdown); pending rows stay in the outbox."""
        with self._lock:
            self._stopping = True
            self._due.clear()
            self._failures.clear()
            self._last_write.clear()
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join(timeout)
        with self._lock:
            self._stopping = False


_writer = _WriterThread()


def _new_writer_in_forked_child() -> None:
    # A forked child (an RQ work-horse, a pre-forking web server) has the object but not its
    # thread, and the lock may have been held at the moment of the fork.
    global _writer
    _writer = _WriterThread()


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_new_writer_in_forked_child)


def retry_is_scheduled(storage_id: int) -> bool:
    """Whether this process's writer thread has a try of ``storage_id`` coming (or running)."""
    return _writer.has(storage_id)


def retry_soon(storage) -> None:
    """Have this process's writer thread write the storage's rows (the outbox sweep hands them over)."""
    _writer.soon(storage.id)


def retry_later(storage, result: FlushResult) -> None:
    """Make sure rows left over by ``result`` are tried again in this process (inline mode)."""
    if result.left:
        _writer.follow_up(storage.id, result)


def write_soon(storage) -> None:
    """Inline mode, after a change was recorded: wake this process's writer thread, and return.

    The request never writes to pachd itself (an annotator would wait for a whole commit,
    or for a frozen pachd). A target whose pachd failed moments ago waits for its back-off:
    a burst of submits does not make the writer dial a dead pachd once per submit.
    """
    _writer.soon(storage.id, not_before=_unreachable_until.get(target_key(storage), 0.0))


def wait_until_written(timeout: float = 60.0) -> bool:
    """Wait until this process's writer has written every change it was handed (a test, a shutdown).

    True when it is idle before ``timeout``: nothing being written, no change waiting for its
    window (a retry waiting out a back-off does not count).
    """
    deadline = time.monotonic() + timeout
    while not _writer.idle():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def stop_retries(timeout: float = 30.0) -> None:
    _writer.stop(timeout)
