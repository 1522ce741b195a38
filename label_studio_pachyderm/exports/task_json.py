"""Label Studio's export JSON of a project's tasks, read in a handful of queries.

Both the writer (one JSON file per task) and the formats (the converter's input)
serialise tasks with Label Studio's own export serializer; this module feeds it
relations fetched for many tasks at once.
"""
from __future__ import annotations

import functools

from tasks.models import Annotation, Task


# What the task serializer reads besides the task row, as plain lists on each task.
_TASK_RELATIONS = {
    'annotations': 'exported_annotations',
    'drafts': 'exported_drafts',
    'predictions': 'exported_predictions',
    'comment_authors': 'exported_comment_authors',
}


def fetch_tasks(project, ids: list, created_before=None) -> list:
    """The tasks ``ids`` (ascending) with their relations attached as lists, in five queries.

    ``created_before``: only the annotations created by then (a labeling round's cut).

    Django's prefetch builds a queryset per task and relation and compiles an
    ``IN (...)`` of every id for each relation; together that cost about as much as
    Label Studio's serializer. Ids of a full export are dense, so an id range (then a
    membership test) selects the same rows; sparse ids use ``IN``. Rows come in id
    order, as the relations' unordered querysets return them.
    """
    from tasks.models import AnnotationDraft, Prediction
    from users.models import User

    dense = ids[-1] - ids[0] < 2 * len(ids)
    span = dict(task_id__gte=ids[0], task_id__lte=ids[-1]) if dense else dict(task_id__in=ids)
    task_span = dict(id__gte=ids[0], id__lte=ids[-1]) if dense else dict(id__in=ids)
    wanted = set(ids)
    tasks = [task for task in Task.objects.filter(project=project, **task_span).select_related('file_upload')
             .order_by('id') if task.id in wanted]
    by_id = {task.id: task for task in tasks}
    for task in tasks:
        for attribute in _TASK_RELATIONS.values():
            setattr(task, attribute, [])

    def attach(rows, attribute, task_of=lambda row: row.task_id, value=lambda row: row):
        for row in rows:
            task = by_id.get(task_of(row))
            if task is not None:
                getattr(task, attribute).append(value(row))

    annotations = Annotation.objects.filter(**span)
    if created_before is not None:
        annotations = annotations.filter(created_at__lte=created_before)
    attach(annotations.select_related('completed_by').order_by('id'), 'exported_annotations')
    attach(AnnotationDraft.objects.filter(**span).order_by('id'), 'exported_drafts')
    attach(Prediction.objects.filter(**span).order_by('id'), 'exported_predictions')
    # Only the authors' ids are serialized (PrimaryKeyRelatedField).
    attach(Task.comment_authors.through.objects.filter(**span).order_by('id').values_list('task_id', 'user_id'),
           'exported_comment_authors', task_of=lambda row: row[0], value=lambda row: User(id=row[1]))
    return tasks


@functools.cache
def task_serialiser():
    """Label Studio's export serializer, reading the relations from the attached lists.

    Only each field's ``source`` changes, so fields, their order and their output are
    Label Studio's own (the tests compare the bytes with the original serializer).
    """
    from data_export.serializers import ExportDataSerializer

    class PrefetchedExportDataSerializer(ExportDataSerializer):
        def get_fields(self):
            fields = super().get_fields()
            for name, attribute in _TASK_RELATIONS.items():
                if name in fields:
                    fields[name].source = attribute
            return fields

    return PrefetchedExportDataSerializer
