"""Target storage writes: annotations into Pachyderm, always one commit per write.

Layouts (setting ``PACHYDERM_EXPORT_LAYOUT``):

* ``task`` (default): ``<prefix>/<task_id>.json`` holds the task with all its
  annotations, as Label Studio writes with ``FUTURE_SAVE_TASK_TO_STORAGE``;
* ``annotation``: ``<prefix>/<annotation_id>.json`` holds one annotation,
  Label Studio's default annotation serializer output.

A manual sync streams every file into ONE commit (pipelines downstream fire
once). If the write fails part-way, the client layer drops the commit, so the
branch head stays where it was, and the storage says FAILED with the reason.
Problems with single annotations are collected and end in
COMPLETED_WITH_ERRORS instead of being swallowed.
"""
from __future__ import annotations

import json
import logging
from typing import Iterable

from core.utils.common import load_func
from django.conf import settings
from django.utils import timezone
from tasks.models import Annotation, Task

from .. import inserts, pachd
from ..errors import validation_error
from .task_json import fetch_tasks, task_serialiser

logger = logging.getLogger(__name__)

_PROGRESS_EVERY = 200
_CHUNK = 200  # tasks or annotations serialised together


def layout() -> str:
    value = getattr(settings, 'PACHYDERM_EXPORT_LAYOUT', 'task') or 'task'
    return value if value in ('task', 'annotation') else 'task'


def task_path(storage, task_id: int) -> str:
    return _join(storage.clean_prefix, f'{task_id}.json')


def annotation_path(storage, annotation_id: int) -> str:
    return _join(storage.clean_prefix, f'{annotation_id}.json')


def _join(prefix: str, name: str) -> str:
    return f'{prefix}/{name}' if prefix else name


class _Export:
    """One export run: yields file operations and remembers what it wrote."""

    def __init__(self, storage, annotation_qs, created_before=None):
        self.storage = storage
        self.created_before = created_before  # a task file holds only annotations created by then
        self.project = storage.project
        self.annotation_qs = annotation_qs
        self.written = []  # [(annotation_id, path)]
        self.errors = []
        self.files = 0
        self.source_commits = set()
        self.predictions_commits = set()  # the output commits whose predictions pre-labeled these tasks
        # Before any annotation is read: a link says "exported as of this moment", so an annotation
        # saved after it is newer than its link (what the outbox sweep's reconcile looks for).
        self.read_at = timezone.now()

    # -- serialisation, one place per layout
    def _serialise_chunk(self, serialiser, objects, **options):
        """[(obj, body or None)] for a chunk: one many=True pass, so fields are built once.

        If the chunk fails as a whole, its objects are serialised one by one so a single
        bad one is reported without losing the others.
        """
        try:
            rows = serialiser(objects, many=True, **options).data
            return [(obj, json.dumps(row, ensure_ascii=False).encode()) for obj, row in zip(objects, rows)]
        except Exception:
            pairs = []
            for obj in objects:
                try:
                    pairs.append((obj, json.dumps(serialiser(obj, **options).data, ensure_ascii=False).encode()))
                except Exception as exc:
                    kind = 'task' if isinstance(obj, Task) else 'annotation'
                    self.errors.append(f'{kind} {obj.id}: cannot serialise ({exc})')
                    pairs.append((obj, None))
            return pairs

    def _task_ops(self):
        serialiser = task_serialiser()
        ids = list(self.annotation_qs.values_list('task_id', flat=True).distinct().order_by('task_id'))
        options = dict(context={'project': self.project},
                       expand=['annotations.reviews', 'annotations.completed_by'])
        for start in range(0, len(ids), _CHUNK):
            tasks = fetch_tasks(self.project, ids[start:start + _CHUNK], self.created_before)
            for task, body in self._serialise_chunk(serialiser, tasks, **options):
                if body is None:
                    continue
                path = task_path(self.storage, task.id)
                self._note_source(task)
                self.written.extend((a.id, path) for a in task.exported_annotations)
                self.files += 1
                yield pachd.FileOp.put(path, body)
                self._progress()

    def _annotation_ops(self):
        serialiser = load_func(settings.STORAGE_ANNOTATION_SERIALIZER)
        # The nested task serializer lists the task's comment authors: one query per
        # annotation unless prefetched (iterator() prefetches per chunk).
        queryset = self.annotation_qs.select_related('task', 'completed_by').prefetch_related(
            'task__comment_authors').order_by('id')
        chunk = []
        for annotation in queryset.iterator(chunk_size=_CHUNK):
            chunk.append(annotation)
            if len(chunk) >= _CHUNK:
                yield from self._annotation_chunk(serialiser, chunk)
                chunk = []
        if chunk:
            yield from self._annotation_chunk(serialiser, chunk)

    def _annotation_chunk(self, serialiser, annotations):
        for annotation, body in self._serialise_chunk(serialiser, annotations, context={'project': self.project}):
            if body is None:
                continue
            path = annotation_path(self.storage, annotation.id)
            self._note_source(annotation.task)
            self.written.append((annotation.id, path))
            self.files += 1
            yield pachd.FileOp.put(path, body)
            self._progress()

    def ops(self) -> Iterable[pachd.FileOp]:
        return self._task_ops() if layout() == 'task' else self._annotation_ops()

    def _note_source(self, task):
        lineage = (task.meta or {}).get('pachyderm') if isinstance(task.meta, dict) else None
        if lineage and lineage.get('commit'):
            self.source_commits.add(f"{lineage.get('project')}/{lineage.get('repo')}@{lineage['commit']}")
        if lineage and lineage.get('predictions_commit') and lineage.get('predictions_repo'):
            self.predictions_commits.add(f"{lineage['predictions_repo']}@{lineage['predictions_commit']}")

    def _progress(self):
        if self.track and self.files % _PROGRESS_EVERY == 0:
            self.storage.info_update_progress(last_sync_count=len(self.written), files_written=self.files)

    track = False

    removed = 0
    formats_written = ()  # format names this commit replaces under <prefix>/formats/
    formats_failed = ()  # format names left out of it (their errors are in ``errors``)

    def description(self, reason: str) -> str:
        written = f'{_count(len(self.written), "annotation")} in {_count(self.files, "file")} ({layout()} layout)'
        if self.removed:
            written += f', {_count(self.removed, "file")} removed'
        lines = [
            f'Label Studio export ({reason}): project {self.project.id} "{self.project.title}", '
            f'target storage {self.storage.id}'
            + (f' "{self.storage.title}"' if self.storage.title else ''),
            written,
        ]
        if self.formats_written:
            lines.append('formats: ' + ', '.join(self.formats_written))
        if self.formats_failed:
            lines.append('formats not written (conversion failed): ' + ', '.join(self.formats_failed))
        if self.source_commits:
            lines.append('source commits: ' + ', '.join(sorted(self.source_commits)))
        if self.predictions_commits:
            lines.append('predictions: ' + ', '.join(sorted(self.predictions_commits)))
        return '\n'.join(lines)


def _count(n: int, noun: str) -> str:
    return f'{n} {noun}' + ('' if n == 1 else 's')


def export_annotations(storage, queryset=None, annotation_ids=None, reason='sync', track_status=False,
                       removals=(), marker='', errors=None, formats=False, created_before=None) -> str:
    """Write the given annotations, and remove the files ``removals``, in one commit.

    ``created_before``: annotations created after it stay out of the files (a labeling round's cut).

    With ``formats`` the commit also replaces ``<prefix>/formats/<FORMAT>/`` for each of the
    storage's ``export_formats`` (``formats.Conversion``, run before the commit starts); a format
    whose conversion fails is left out and reported like an annotation that cannot be serialised.

    Returns the commit id ('' when there was nothing to write). Called by the
    target's one writer (``outbox``), which holds the branch's lease; ``marker``
    goes into the commit description so an unfinished commit can be recognised.
    With ``track_status`` (manual syncs) progress and outcome go to the storage status.
    Annotations that cannot be serialised are skipped and reported: in the status
    (``track_status``), in ``errors`` when given, else by a ValueError after the commit.
    """
    if queryset is None:
        queryset = Annotation.objects.filter(id__in=list(annotation_ids or []), project=storage.project)
    run = _Export(storage, queryset, created_before)
    run.track = track_status
    removals = sorted(set(removals))
    if track_status:
        storage.info_set_in_progress()
    conversion = None
    try:
        client = storage.get_client()
        commit = ''
        ops = run.ops()
        first = next(ops, None)
        if first is not None or removals:
            conversion = _convert_formats(storage, run) if formats else None

            def all_ops():
                if first is not None:
                    yield first
                    yield from ops
                for path in removals:
                    run.removed += 1
                    yield pachd.FileOp.remove(path)
                if conversion is not None:
                    yield from conversion.ops()

            commit = client.write_commit(
                storage.project_name, storage.repo, storage.branch_name, all_ops(),
                description=lambda: run.description(reason), marker=marker,
            )
    except pachd.PachdError as exc:
        logger.warning('Pachyderm export of storage %s failed: %s', storage.id, exc)
        raise validation_error(exc, per_field=False) from None
    finally:
        if conversion is not None:
            conversion.close()

    if commit and conversion is not None:
        from . import formats as formats_module

        formats_module.mark_written(storage, conversion.started_at)
    if commit:
        _save_links(storage, run.written, commit, run.read_at)
        type(storage).objects.filter(id=storage.id).update(last_exported_commit=commit)
        storage.last_exported_commit = commit
    if track_status:
        summary = dict(
            # Label Studio's storage card shows "<last_sync_count> (<total_annotations> total)".
            total_annotations=queryset.count(),
            commit=commit or None, files_written=run.files, annotations_exported=len(run.written),
            source_commits=sorted(run.source_commits), layout=layout(),
        )
        if formats and (run.formats_written or run.formats_failed):
            summary.update(formats_written=list(run.formats_written), formats_failed=list(run.formats_failed))
        if run.errors:
            storage.info_set_completed_with_errors(
                last_sync_count=len(run.written), validation_errors=run.errors, **summary
            )
        else:
            storage.info_set_completed(last_sync_count=len(run.written), **summary)
    elif run.errors and errors is not None:
        errors.extend(run.errors)
    elif run.errors:
        raise ValueError('; '.join(run.errors))
    return commit


def _convert_formats(storage, run):
    """The storage's formats converted (a ``formats.Conversion`` to close), or None when it lists none."""
    from . import formats as formats_module

    names = list(type(storage).objects.filter(id=storage.id).values_list('export_formats', flat=True).first() or [])
    if not names:
        return None
    conversion = formats_module.Conversion(storage, names)
    try:
        conversion.convert()
    except Exception as exc:  # the tasks could not be read or serialised: no format this time
        logger.warning('Pachyderm storage %s: formats not converted: %s', storage.id, exc)
        run.formats_failed = tuple(names)
        run.errors.extend(
            formats_module.FormatProblem(f'format {name}: not converted ({type(exc).__name__}: {exc})')
            for name in names)
        return None
    run.formats_written = tuple(conversion.written)
    run.formats_failed = tuple(name for name in names if name not in conversion.written)
    run.errors.extend(conversion.errors)
    return conversion


def _save_links(storage, written, commit, read_at) -> None:
    """Create or refresh one link per exported annotation (batched), as of ``read_at``.

    A re-export mostly rewrites the same paths: those links are refreshed with one
    UPDATE per batch; only links whose path changed need a per-row update.
    ``updated_at`` is when the writer read the annotations, not now.
    """
    link_model = storage.links.model
    now = read_at
    for start in range(0, len(written), 1000):
        paths = dict(written[start:start + 1000])
        existing = dict(
            link_model.objects.filter(storage=storage, annotation_id__in=list(paths)).values_list('annotation_id', 'path')
        )
        same_path = [aid for aid, path in existing.items() if path == paths[aid]]
        link_model.objects.filter(storage=storage, annotation_id__in=same_path).update(
            commit=commit, updated_at=now, object_exists=True)
        moved = [aid for aid, path in existing.items() if path != paths[aid]]
        for aid in moved:
            link_model.objects.filter(storage=storage, annotation_id=aid).update(
                path=paths[aid], commit=commit, updated_at=now, object_exists=True)
        # An annotation deleted while the commit was written has no link to make (its removal
        # waits in the outbox for the writer's next commit).
        new = [aid for aid in paths if aid not in existing]
        alive = set(Annotation.objects.filter(id__in=new).values_list('id', flat=True))
        inserts.insert(link_model, {'storage_id': storage.id, 'commit': commit, 'object_exists': True,
                                    'updated_at': now},
                       [{'annotation_id': aid, 'path': paths[aid]} for aid in new if aid in alive])
