"""Task versions: which task holds the current version of a file, and what became of the others.

A source storage with ``changed_files='new_version'`` makes a new task when a file
changes; the task of the previous version stays, with its annotations. The lineage
lives in each task's ``meta['pachyderm']`` (next to project/repo/commit/path/row):

* ``previous_task``: on the new task, the id of the task of the previous version;
* ``superseded_by`` / ``superseded_in``: on the old task, the new task's id and the
  commit that changed the file;
* ``deleted_in``: the commit of the sync that found the file (or the row) gone;
  cleared when the file comes back.

The import storage link of a file always belongs to the task of its current version:
an old version's task keeps its data and meta, not the link.

Stale tasks (superseded, or whose file is gone) leave the labeling queue
(``current_only``, used by ``labeling``): they stay in the project, with their
lineage and annotations, open by id and list in the Data Manager.
"""
from __future__ import annotations

from typing import Callable, Iterable

from django.db.models import BooleanField, Case, Q, Value, When
from tasks.models import Task

CURRENT, SUPERSEDED, DELETED = 'current', 'superseded', 'deleted'
_CHUNK = 500

# A stale task: a newer task holds its file's current version, or its file is gone.
STALE = Q(meta__pachyderm__has_key='superseded_by') | Q(meta__pachyderm__has_key='deleted_in')


def describe(meta) -> str:
    """A task's version in words, from its ``meta``: ``current``, ``superseded by #N (commit)``,
    ``deleted in <commit>``, or '' for a task that is not from a Pachyderm storage."""
    lineage = (meta or {}).get('pachyderm') if isinstance(meta, dict) else None
    if not isinstance(lineage, dict):
        return ''
    if lineage.get('superseded_by'):
        return f'{SUPERSEDED} by #{lineage["superseded_by"]} ({lineage.get("superseded_in") or "?"})'
    if lineage.get('deleted_in'):
        return f'{DELETED} in {lineage["deleted_in"]}'
    return CURRENT


def current_only(tasks):
    """``tasks`` without the stale ones; tasks that are not Pachyderm's (no lineage) stay.

    Not ``exclude(STALE)``: on PostgreSQL a key test on a task without ``meta.pachyderm`` is
    NULL, and ``NOT NULL`` would drop that task too. A CASE turns "not stale" into a plain
    true or false on both databases.
    """
    return tasks.filter(Case(When(STALE, then=Value(False)), default=Value(True), output_field=BooleanField()))


def _update_lineage(task_ids: Iterable[int], change: Callable[[int, dict], bool]) -> int:
    """Apply ``change(task_id, lineage)`` to each task's ``meta['pachyderm']``; save those it changed."""
    ids = list(task_ids)
    changed = 0
    for start in range(0, len(ids), _CHUNK):
        dirty = []
        for task in Task.objects.filter(id__in=ids[start:start + _CHUNK]).only('id', 'meta'):
            meta = task.meta if isinstance(task.meta, dict) else {}
            lineage = dict(meta['pachyderm']) if isinstance(meta.get('pachyderm'), dict) else {}
            if change(task.id, lineage):
                task.meta = {**meta, 'pachyderm': lineage}
                dirty.append(task)
        if dirty:
            Task.objects.bulk_update(dirty, ['meta'])
            changed += len(dirty)
    return changed


def mark_deleted(task_ids: Iterable[int], commit: str) -> int:
    """Name ``commit`` as where these tasks' files disappeared (tasks already marked keep theirs)."""
    def change(_, lineage):
        if lineage.get('deleted_in'):
            return False
        lineage['deleted_in'] = commit
        return True

    return _update_lineage(task_ids, change)


def clear_deleted(task_ids: Iterable[int]) -> int:
    """These tasks' files are back."""
    return _update_lineage(task_ids, lambda _, lineage: lineage.pop('deleted_in', None) is not None)


def mark_superseded(pairs: Iterable[tuple[int, int]], commit: str) -> int:
    """(old task id, new task id) pairs: the old task's file changed in ``commit``."""
    newer = dict(pairs)

    def change(task_id, lineage):
        lineage.update(superseded_by=newer[task_id], superseded_in=commit)
        lineage.pop('deleted_in', None)
        return True

    return _update_lineage(newer, change)
