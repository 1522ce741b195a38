"""Import sync: files of one Pachyderm commit become Label Studio tasks.

What it keeps from Label Studio's own sync loop: status transitions and
progress, one task per media file or per JSON row, link objects, sequential
inner ids, project summary counters, TASKS_CREATED webhooks, FSM backfill and
the project's task-state update. What it does differently:

* every file of a sync is read from ONE commit, resolved once (the branch head
  or the pinned commit), and media tasks store a URI naming that commit;
* a re-sync reads only the diff between the last synced commit and the new one
  (added files are imported, deleted ones mark their tasks ``deleted_in``);
* with ``changed_files='new_version'`` a changed file (or JSON row) becomes a new
  task pinned to the new commit, linked to the old one (see ``versions``);
* tasks and links are created in batches, not one transaction per task;
* a bad file is reported (path + reason) and skipped; it never aborts the sync.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Iterator

from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from io_storages.utils import StorageObject
from tasks.models import Task
from webhooks.models import WebhookAction
from webhooks.utils import emit_webhooks_for_instance

from .. import inserts, pachd, uri
from . import predictions, readahead, taskfiles, versions
from ..errors import validation_error

logger = logging.getLogger(__name__)

TASK_FILE_EXTENSIONS = ('.json', '.jsonl')
_KEY_BATCH = 1000
_READ_CHUNK = 1024 * 1024
# Problem rows of one file listed one by one in the storage's traceback; the rest are counted.
_ROW_ERRORS_PER_FILE = 20


@dataclass
class _SyncState:
    commit: str
    skipped: dict
    mode: str
    next_inner_id: int
    tasks_created: int = 0
    tasks_existed: int = 0
    files_seen: int = 0
    links_marked_missing: int = 0
    files_failed: int = 0
    rows_failed: int = 0
    tasks_superseded: int = 0
    tasks_restored: int = 0
    versioned: bool = False  # changed_files == 'new_version'
    errors: list = field(default_factory=list)
    webhook_task_ids: list = field(default_factory=list)
    pending: list = field(default_factory=list)  # [StorageObject]
    # (key, row_index) of a pending object -> the _Link of the version it replaces
    supersedes: dict = field(default_factory=dict)
    predictions: dict = field(default_factory=dict)  # what the predictions step did (when it is on)


@dataclass(frozen=True)
class _Link:
    id: int
    task_id: int
    exists: bool
    commit: str


def selection_signature(storage) -> str:
    """What a sync selects; when it changes, the next sync must list everything again."""
    return json.dumps(
        [storage.project_name, storage.repo, storage.clean_prefix, storage.regex_filter or '',
         bool(storage.recursive_scan), bool(storage.use_blob_urls)]
    )


def import_storage(storage, link_class, full_rescan: bool = False) -> None:
    # Status first: Label Studio's failure handling expects IN_PROGRESS bookkeeping.
    storage.info_set_in_progress()
    try:
        _sync(storage, link_class, full_rescan)
    except pachd.PachdError as exc:
        logger.warning('Pachyderm import sync of storage %s stopped: %s', storage.id, exc)
        error = validation_error(exc, per_field=False)
        error.detail.append(
            'Tasks created before the error are kept; sync again once pachd is reachable to import the rest.'
        )
        raise error from None


def _sync(storage, link_class, full_rescan: bool) -> None:
    client = storage.get_client()
    project = storage.project
    resolved = readable_commit(storage, client)
    commit = resolved.id
    skipped = {'skipped_commits': list(resolved.skipped),
               'skipped_note': skipped_note(resolved) if resolved.skipped else None}
    selection = selection_signature(storage)
    previous = storage.last_synced_commit if storage.last_synced_selection == selection else ''
    if not commit:
        # The branch has no good commit yet (open, or finished with an error): nothing to read.
        storage.info_set_completed(
            last_sync_count=0, tasks_existed=0, commit=None, previous_commit=previous or None,
            sync_mode='waiting', files_seen=0, links_marked_missing=0, files_failed=0,
            note='the branch has no commit finished without error yet; sync again once one is', **skipped,
        )
        return
    if previous and not full_rescan and not _commit_exists(client, storage, previous):
        previous = ''

    last_task = project.tasks.order_by('-inner_id').only('inner_id').first()
    state = _SyncState(
        commit=commit,
        skipped=skipped,
        mode='incremental' if previous and not full_rescan else 'full',
        next_inner_id=(last_task.inner_id or 0) + 1 if last_task else 1,
        versioned=storage.changed_files == 'new_version',
    )

    if state.mode == 'incremental':
        paths = _changed_paths(storage, link_class, client, previous, commit, state)
    else:
        paths = _listed_paths(storage, link_class, client, commit, state)

    for batch in _batched(paths, _KEY_BATCH):
        _process_paths(storage, link_class, client, batch, state)
        storage.info_update_progress(last_sync_count=state.tasks_created, tasks_existed=state.tasks_existed)
    _flush(storage, link_class, state)
    _attach_predictions(storage, link_class, state)
    _finish(storage, link_class, state, previous, selection)


def _attach_predictions(storage, link_class, state) -> None:
    """The predictions that are ready, on every current task that lacks them (``predictions``)."""
    if not storage.predictions_repo:
        return
    outcome = predictions.attach_ready(storage, link_class)
    state.errors.extend(outcome.errors)
    state.predictions = {'predictions_attached': outcome.attached, 'predictions_waiting': outcome.waiting,
                         'predictions_failed_commits': outcome.failed_commits}


@dataclass(frozen=True)
class ReadableCommit:
    """The commit a sync, the files preview and "Check connection" read, and what was passed over."""

    id: str  # '' when the branch has no good commit yet
    skipped: tuple = ()  # ({'commit', 'state': 'open' | 'failed', 'error'}, ...), newest first


_SKIPPED_LISTED = 10


def readable_commit(storage, client) -> ReadableCommit:
    """The newest good commit: the pinned commit, or the branch head or its nearest good ancestor.

    Good means finished without an error. A head that a writer (pachctl put-file, a pipeline)
    still has open shows its files as they arrive; a commit finished with an error (a failed
    upload or pipeline job) holds files nobody vouches for. Reading either would import them and
    record that commit as synced, and the incremental syncs that follow diff *from* it. So the
    sync reads the nearest good ancestor and says which commits it passed over; the next sync picks
    an open commit up once it is finished. A pinned commit that is not good is an error (field
    ``commit``): nothing else may stand in for it. Raises PachdError for pachd's answers.
    """
    from rest_framework.exceptions import ValidationError

    commit = client.resolve_commit(storage.project_name, storage.repo, storage.branch_name, storage.commit or None)
    info = client.inspect_commit(storage.project_name, storage.repo, commit)
    if info.good:
        return ReadableCommit(info.id)
    where = f'{storage.project_name}/{storage.repo}'
    if storage.commit:
        if info.error:
            raise ValidationError({'commit': [
                f'commit {commit} of {where} finished with an error ({info.error}): its files are not a '
                'complete version. Pin another commit.']})
        raise ValidationError({'commit': [
            f'commit {commit} of {where} is not finished yet: its files are still being written. '
            'Sync again once it is finished.']})
    skipped = []
    walked = 0
    while not info.good:
        walked += 1
        if len(skipped) < _SKIPPED_LISTED:
            skipped.append({'commit': info.id, 'state': 'failed' if info.error else 'open', 'error': info.error})
        if not info.parent:
            return ReadableCommit('', tuple(skipped))
        info = client.inspect_commit(storage.project_name, storage.repo, info.parent)
    if walked > len(skipped):
        skipped.append({'commit': None, 'state': f'{walked - len(skipped)} more', 'error': ''})
    return ReadableCommit(info.id, tuple(skipped))


def skipped_note(resolved: ReadableCommit) -> str:
    """One sentence on the commits passed over, for the storage's meta."""
    parts = []
    for entry in resolved.skipped:
        if entry['commit'] is None:
            parts.append(entry['state'])
        elif entry['state'] == 'failed':
            parts.append(f'{entry["commit"]} finished with an error ({entry["error"]})')
        else:
            parts.append(f'{entry["commit"]} is still open')
    target = f'read {resolved.id}' if resolved.id else 'nothing read'
    return f'skipped: {"; ".join(parts)}; {target}'


def _commit_exists(client, storage, commit: str) -> bool:
    try:
        client.inspect_commit(storage.project_name, storage.repo, commit)
        return True
    except pachd.PachdNotFound:
        return False


# ----------------------------------------------------------------------------- what to read
@dataclass(frozen=True)
class _Path:
    path: str
    change: str  # 'added' | 'modified' (a diff) or 'listed' (a full listing)
    hash: str = ''
    size: int = -1  # from the listing or the diff; -1 when unknown
    # Task files a full listing passed over just before this one (not selected), and their
    # bytes; -1 for a diff. Files listed close together are read in one call (``readahead``).
    gap_files: int = -1
    gap_bytes: int = 0


def _listed_paths(storage, link_class, client, commit, state) -> Iterator[_Path]:
    """Every selected file of the commit, streamed; afterwards, tasks of vanished files are marked."""
    # Without live links (a first sync) nothing can have vanished: no set of every path is held
    # (a million paths are ~90 MiB).
    seen = set() if link_class.objects.filter(storage=storage, object_exists=True).exists() else None
    gap_files = gap_bytes = 0
    for entry in client.list_files(
        storage.project_name, storage.repo, commit, storage.clean_prefix, recursive=storage.recursive_scan
    ):
        if storage.path_matches(entry.path):
            state.files_seen += 1
            if seen is not None:
                seen.add(entry.path)
            yield _Path(entry.path, 'listed', entry.hash or '', entry.size, gap_files, gap_bytes)
            gap_files = gap_bytes = 0
        elif entry.path.endswith(TASK_FILE_EXTENSIONS):  # what a run's stream would bring too
            gap_files += 1
            gap_bytes += max(entry.size, 0)
    if seen is not None:
        _mark_missing_except(storage, link_class, seen, state)


def _changed_paths(storage, link_class, client, previous, commit, state) -> Iterator[_Path]:
    """Files added or changed since the last synced commit; deleted ones mark their tasks."""
    deleted = []
    for change in client.diff(storage.project_name, storage.repo, previous, commit, storage.clean_prefix):
        if not storage.path_matches(change.path):
            continue
        if change.change == 'deleted':
            deleted.append(change.path)
            if len(deleted) >= _KEY_BATCH:
                _mark_missing(link_class.objects.filter(storage=storage, key__in=deleted), state)
                deleted = []
            continue
        state.files_seen += 1
        yield _Path(change.path, change.change, change.hash or '', change.size)
    if deleted:
        _mark_missing(link_class.objects.filter(storage=storage, key__in=deleted), state)


def _mark_missing(links, state) -> None:
    """These links' files (or rows) are gone: flag the links, name the commit on their tasks."""
    gone = list(links.filter(object_exists=True).values_list('id', 'task_id'))
    if not gone:
        return
    links.model.objects.filter(id__in=[link_id for link_id, _ in gone]).update(object_exists=False)
    state.links_marked_missing += len(gone)
    versions.mark_deleted([task_id for _, task_id in gone], state.commit)


def _mark_missing_except(storage, link_class, present: set, state) -> None:
    """Mark links whose file is not in ``present`` (chunked: no huge IN lists)."""
    gone = []
    keys = link_class.objects.filter(storage=storage, object_exists=True).values_list('key', flat=True).distinct()
    for key in keys.iterator(chunk_size=2000):
        if key not in present:
            gone.append(key)
    for chunk in _batched(gone, 500):
        _mark_missing(link_class.objects.filter(storage=storage, key__in=chunk), state)


# ----------------------------------------------------------------------------- reading files
def _process_paths(storage, link_class, client, batch, state) -> None:
    links = {}  # key -> {row_index: _Link}
    rows = link_class.objects.filter(storage=storage, key__in=[item.path for item in batch]).values_list(
        'id', 'key', 'row_index', 'task_id', 'object_exists', 'commit')
    for link_id, key, row_index, task_id, exists, commit in rows:
        links.setdefault(key, {})[row_index] = _Link(link_id, task_id, exists, commit)
    restored = []  # links whose file (or row) is back and stays with its task

    if storage.use_blob_urls:
        items = ((item, None) for item in batch)
    else:
        # Small task files are read a few at a time, ahead of this loop (see ``readahead``).
        items = readahead.read_ahead(batch, _readable_size,
                                     lambda item: _open_task_file(storage, client, item, state).read(),
                                     key_of=lambda item: item.path, read_run=_task_file_run(storage, client, state),
                                     continues_run=_listed_together)
    with contextlib.closing(items):  # a failure below stops the reads ahead at once
        _process_items(storage, link_class, client, items, links, restored, state)

    # A file that was deleted and has come back: its tasks' links point at a file again.
    if restored:
        link_class.objects.filter(id__in=[link.id for link in restored]).update(object_exists=True)
        state.tasks_restored += versions.clear_deleted([link.task_id for link in restored])


def _process_items(storage, link_class, client, items, links, restored, state) -> None:
    for item, content in items:
        # Cheap (written at most every few seconds): keeps a slow batch from looking like a dead sync.
        storage.info_update_progress(last_sync_count=state.tasks_created, tasks_existed=state.tasks_existed)
        known = links.get(item.path, {})
        if storage.use_blob_urls:
            link = known.get(None)
            if link is not None and not _media_changed(storage, client, item, link, state):
                # Already a task, pinned to the commit it was made from.
                state.tasks_existed += 1
                if not link.exists:
                    restored.append(link)
                continue
            data = {settings.DATA_UNDEFINED_NAME: uri.build(storage.project_name, storage.repo, state.commit, item.path)}
            obj = StorageObject(task_data=data, key=item.path)
            if link is not None:
                state.supersedes[(obj.key, obj.row_index)] = link
            state.pending.append(obj)
        else:
            _process_task_file(storage, link_class, client, item, content, known, restored, state)
        if len(state.pending) >= settings.PACHYDERM_IMPORT_BATCH_SIZE:
            _flush(storage, link_class, state)


def _media_changed(storage, client, item, link, state) -> bool:
    """Whether a media file with a task is a new version of it (only with changed_files='new_version')."""
    if not state.versioned:
        return False
    if item.change == 'modified':
        return True
    if link.exists or not link.commit or not item.hash:
        return False
    # Deleted, then added again: a new version only if the bytes differ from the task's commit.
    try:
        before = client.inspect_file(storage.project_name, storage.repo, link.commit, item.path)
    except pachd.PachdNotFound:
        return True
    return (before.hash or '') != item.hash


def _process_task_file(storage, link_class, client, item, content, known, restored, state) -> None:
    """Rows of one task file: new rows are tasks; with 'new_version', changed rows are new versions."""
    failures_before = state.files_failed
    # Comparing rows costs a read of their tasks: only for files that changed or came back.
    compare = state.versioned and known and (item.change == 'modified' or any(not l.exists for l in known.values()))
    old_data = dict(Task.objects.filter(id__in=[l.task_id for l in known.values()]).values_list('id', 'data')
                    ) if compare else {}
    seen_rows = set()
    for obj in _read_task_file(storage, client, item, content, state):
        seen_rows.add(obj.row_index)
        link = known.get(obj.row_index)
        if link is not None and not (compare and _task_fields(obj)[0] != old_data.get(link.task_id)):
            state.tasks_existed += 1
            if not link.exists:
                restored.append(link)
            continue
        if link is not None:
            state.supersedes[(obj.key, obj.row_index)] = link
        state.pending.append(obj)
        # One file may hold any number of rows: flush by rows, not only between files,
        # or a 100,000-line JSONL becomes one 100,000-task transaction held in memory.
        if len(state.pending) >= settings.PACHYDERM_IMPORT_BATCH_SIZE:
            _flush(storage, link_class, state)
            storage.info_update_progress(last_sync_count=state.tasks_created, tasks_existed=state.tasks_existed)
    # Rows a changed file no longer has are gone like a deleted file's (only when all of it was read).
    if item.change != 'listed' and state.files_failed == failures_before:
        gone = [l.id for row, l in known.items() if row not in seen_rows and l.exists]
        if gone:
            _mark_missing(link_class.objects.filter(id__in=gone), state)


def max_task_file_bytes() -> int:
    return int(float(settings.PACHYDERM_MAX_TASK_FILE_MB) * 1024 * 1024)


def _readable_size(item) -> int | None:
    """The size of a task file a sync will read whole, or None (unknown, not a task file, over the limit)."""
    if item.size < 0 or os.path.splitext(item.path.lower())[1] not in TASK_FILE_EXTENSIONS:
        return None
    return item.size if item.size <= max_task_file_bytes() else None


# Task files by name, in pachd's glob (case as written: a .JSON file is read on its own).
_TASK_FILES_GLOB = '.{json,jsonl}'
_RUN_GAP_FILES = 8  # a run goes on over at most this many task files that are not selected ...
_RUN_GAP_BYTES = readahead.SMALL_FILE_BYTES  # ... of at most this many bytes


def _task_file_run(storage, client, state):
    """How ``readahead`` reads a run of task files: one GetFileTAR of the selection's task
    files, from the run's first file on. None when the folder's name would read as a glob."""
    folder = storage.clean_prefix
    if any(char in pachd.GLOB_CHARACTERS or char == '\\' for char in folder):  # a backslash: the glob's escape
        return None
    pattern = (f'{folder}/' if folder else '') + ('**' if storage.recursive_scan else '*') + _TASK_FILES_GLOB
    return lambda first: client.read_files(storage.project_name, storage.repo, state.commit, pattern,
                                           start=first.path, max_file_bytes=readahead.SMALL_FILE_BYTES)


def _listed_together(previous, item) -> bool:
    """Whether ``item`` was listed right after ``previous``, or close enough that one stream
    of both costs less than two calls (a diff's files are not: they may be far apart)."""
    return 0 <= item.gap_files <= _RUN_GAP_FILES and item.gap_bytes <= _RUN_GAP_BYTES


def _task_file_entry(storage, client, item, state):
    """The file's entry: from the listing (or the diff), which spares an InspectFile round trip."""
    if item.size >= 0:
        return pachd.FileEntry(path=item.path, size=item.size, hash=item.hash, commit=state.commit)
    return client.inspect_file(storage.project_name, storage.repo, state.commit, item.path)


def _open_task_file(storage, client, item, state, entry=None):
    entry = entry or _task_file_entry(storage, client, item, state)
    return client.read_file(storage.project_name, storage.repo, state.commit, item.path, entry=entry)


def _read_task_file(storage, client, item, content, state) -> Iterator[StorageObject]:
    """The good rows of one .json/.jsonl file, streamed; every problem is recorded, none raised.

    Only a pachd error propagates (it stops the sync). The file's size is checked before
    any of it is read; rows are parsed as the bytes arrive (see ``taskfiles``). ``content``
    is the file read ahead (a Future of its bytes), or None to stream it here.
    """
    path = item.path
    ext = os.path.splitext(path.lower())[1]
    if ext not in TASK_FILE_EXTENSIONS:
        _file_failed(state, f'{path}: not a .json or .jsonl file, skipped. To import media files, set the '
                            'storage\'s import method to "Files" (use_blob_urls).')
        return
    if content is not None:
        chunks, stream = iter([content.result()]), None  # a pachd error of the read raises here
    else:
        entry = _task_file_entry(storage, client, item, state)
        if entry.size > max_task_file_bytes():
            _file_failed(state, f'{path}: {entry.size} bytes, more than the '
                                f'{settings.PACHYDERM_MAX_TASK_FILE_MB:g} MiB a task file may have '
                                '(PACHYDERM_MAX_TASK_FILE_MB), skipped unread. Split it into smaller files.')
            return
        stream = _open_task_file(storage, client, item, state, entry)
        chunks = stream.iter_chunks(_READ_CHUNK)
    bad_rows = 0
    try:
        for row in taskfiles.parse_task_file(chunks, path):
            if isinstance(row, taskfiles.RowError):
                bad_rows += 1
                if bad_rows <= _ROW_ERRORS_PER_FILE:
                    where = 'the file' if row.row_index is None else f'row {row.row_index}'
                    state.errors.append(f'{path} ({where}): {row.reason}, skipped')
                continue
            yield row
    except taskfiles.TaskFileError as exc:
        state.errors.append(f'{path}: cannot load tasks ({exc}); the rest of the file is skipped')
        state.files_failed += 1
    else:
        if bad_rows:
            state.files_failed += 1
    finally:
        if stream is not None:
            stream.close()
        if bad_rows:
            state.rows_failed += bad_rows
            if bad_rows > _ROW_ERRORS_PER_FILE:
                state.errors.append(f'{path}: {bad_rows - _ROW_ERRORS_PER_FILE} more rows with problems, skipped')


def _file_failed(state, message: str) -> None:
    state.errors.append(message)
    state.files_failed += 1


# ----------------------------------------------------------------------------- creating tasks
def _task_fields(obj: StorageObject):
    """Split a task dict as Label Studio's add_task does: (data, allow_skip, has_extras)."""
    raw = obj.task_data
    allow_skip = raw.get('allow_skip', True)
    has_extras = bool(raw.get('predictions') or raw.get('annotations'))
    data = raw['data'] if isinstance(raw.get('data'), dict) else raw
    return data, allow_skip, has_extras


def _lineage(storage, commit, obj, previous: _Link | None) -> dict:
    lineage = {
        'project': storage.project_name,
        'repo': storage.repo,
        'commit': commit,
        'path': obj.key,
        'row': obj.row_index,
    }
    if previous is not None:
        lineage['previous_task'] = previous.task_id
    return {'pachyderm': lineage}


def _flush(storage, link_class, state) -> None:
    if not state.pending:
        return
    project = storage.project
    overlap = project.maximum_annotations
    plain, rich = [], []
    for obj in state.pending:
        data, allow_skip, has_extras = _task_fields(obj)
        previous = state.supersedes.pop((obj.key, obj.row_index), None)
        (rich if has_extras else plain).append((obj, data, allow_skip, previous))
    state.pending = []

    created_ids = []
    if plain:
        with transaction.atomic():
            rows = []
            for obj, data, allow_skip, previous in plain:
                rows.append({'data': data, 'inner_id': state.next_inner_id, 'allow_skip': allow_skip,
                             'meta': _lineage(storage, state.commit, obj, previous)})
                state.next_inner_id += 1
            task_ids = inserts.insert(Task, {'project_id': project.id, 'overlap': overlap,
                                             'is_labeled': overlap <= 0}, rows)
            # A new version takes its file's link over from the old version's task (one link per file row).
            replaced = [(previous, task_id) for task_id, (_, _, _, previous) in zip(task_ids, plain) if previous]
            if replaced:
                link_class.objects.filter(id__in=[previous.id for previous, _ in replaced]).delete()
                state.tasks_superseded += versions.mark_superseded(
                    [(previous.task_id, task_id) for previous, task_id in replaced], state.commit)
            inserts.insert(link_class, {'storage_id': storage.id, 'commit': state.commit},
                           [{'task_id': task_id, 'key': obj.key, 'row_index': obj.row_index, 'row_group': obj.row_group}
                            for task_id, (obj, _, _, _) in zip(task_ids, plain)])
            # No post_save is sent: update the data-column counters the signal would have.
            if hasattr(project, 'summary'):
                project.summary.update_data_columns(rows)
        created_ids.extend(task_ids)

    # Tasks that carry predictions or annotations go through Label Studio's own path, which validates them.
    for obj, _, _, previous in rich:
        try:
            with transaction.atomic():
                if previous:
                    link_class.objects.filter(id=previous.id).delete()
                task = storage.add_task(project, overlap, state.next_inner_id, storage, obj, link_class=link_class)
                if previous:
                    state.tasks_superseded += versions.mark_superseded([(previous.task_id, task.id)], state.commit)
        except (OperationalError, InterfaceError):
            raise  # the database, not the row
        except Exception as exc:  # noqa: BLE001 - LS's validation of this row's predictions/annotations
            reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
            state.errors.append(f'{obj.key} (row {obj.row_index}): {reason}, skipped')
            state.rows_failed += 1
            continue
        link_class.objects.filter(task_id=task.id).update(commit=state.commit)
        Task.objects.filter(id=task.id).update(meta=_lineage(storage, state.commit, obj, previous))
        state.next_inner_id += 1
        created_ids.append(task.id)

    state.tasks_created += len(created_ids)
    state.webhook_task_ids.extend(created_ids)
    while len(state.webhook_task_ids) >= settings.WEBHOOK_BATCH_SIZE:
        batch = state.webhook_task_ids[: settings.WEBHOOK_BATCH_SIZE]
        state.webhook_task_ids = state.webhook_task_ids[settings.WEBHOOK_BATCH_SIZE:]
        emit_webhooks_for_instance(project.organization, project, WebhookAction.TASKS_CREATED, batch)


def _finish(storage, link_class, state, previous, selection) -> None:
    from fsm.functions import backfill_fsm_states_for_tasks

    project = storage.project
    if state.webhook_task_ids:
        emit_webhooks_for_instance(project.organization, project, WebhookAction.TASKS_CREATED, state.webhook_task_ids)
        state.webhook_task_ids = []
    backfill_fsm_states_for_tasks(storage.id, state.tasks_created, link_class)
    project.update_tasks_states(
        maximum_annotations_changed=False, overlap_cohort_percentage_changed=False, tasks_number_changed=True
    )

    storage.last_synced_commit = state.commit
    storage.last_synced_selection = selection
    storage.save(update_fields=['last_synced_commit', 'last_synced_selection'])
    summary = dict(
        tasks_existed=state.tasks_existed,
        commit=state.commit,
        previous_commit=previous or None,
        sync_mode=state.mode,
        files_seen=state.files_seen,
        links_marked_missing=state.links_marked_missing,
        tasks_superseded=state.tasks_superseded,
        tasks_deleted=state.links_marked_missing,
        tasks_restored=state.tasks_restored,
        files_failed=state.files_failed,
        rows_failed=state.rows_failed,
        **state.skipped,
        **state.predictions,
    )
    if state.errors:
        storage.info_set_completed_with_errors(
            last_sync_count=state.tasks_created, validation_errors=state.errors, **summary
        )
    else:
        storage.info_set_completed(last_sync_count=state.tasks_created, **summary)
    logger.info('Pachyderm import sync of storage %s: %s', storage.id, summary)


def _batched(iterable, n):
    it = iter(iterable)
    while batch := list(itertools.islice(it, n)):
        yield batch
