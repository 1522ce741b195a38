"""A "Pachyderm version" filter in Label Studio's Data Manager.

Label Studio builds the Data Manager's columns with the function named by
``DATA_MANAGER_GET_ALL_COLUMNS`` and computes the values it filters and sorts on
with the queryset annotations of ``DATA_MANAGER_ANNOTATIONS_MAP``; both are its
extension points for extra columns. Projects with a Pachyderm source storage get
one more: ``pachyderm_version``, which is ``current``, ``superseded`` or
``deleted`` (see ``versions``), so "Filters -> Pachyderm version -> is ->
superseded" lists the tasks of older versions of changed files.

The cells read ``current``, ``superseded by #N (commit)`` or ``deleted in <commit>``
(the plugin's task list, ``task_list``, adds the field). The column is shown by
default in projects whose source storage makes new task versions.
"""
from __future__ import annotations

from django.db.models import Case, CharField, Q, Value, When
from django.utils.module_loading import import_string

from .. import tables
from . import versions

COLUMN = 'pachyderm_version'
_LS_GET_ALL_COLUMNS = 'data_manager.functions.get_all_columns'


def get_all_columns(project, *args, **kwargs):
    """Label Studio's columns, plus the Pachyderm version filter for projects that have a source storage."""
    result = import_string(_LS_GET_ALL_COLUMNS)(project, *args, **kwargs)
    rules = set(tables.import_storage_model().objects.filter(project=project).values_list('changed_files', flat=True))
    if rules:
        versioned = 'new_version' in rules
        result['columns'].append({
            'id': COLUMN,
            'title': 'Pachyderm version',
            'type': 'String',
            'target': 'tasks',
            'help': f'"{versions.CURRENT}", "{versions.SUPERSEDED} by #<task> (<commit>)": the file changed and a newer '
                    f'task holds the new version, or "{versions.DELETED} in <commit>": the file is gone. Filter on '
                    f'"{versions.CURRENT}", "{versions.SUPERSEDED}" or "{versions.DELETED}".',
            'visibility_defaults': {'explore': versioned, 'labeling': False},
            'project_defined': False,
        })
    return result


def annotate_version(queryset):
    """Each task's version status, computed from ``meta['pachyderm']`` in the database."""
    return queryset.annotate(**{COLUMN: Case(
        When(Q(meta__pachyderm__has_key='superseded_by'), then=Value(versions.SUPERSEDED)),
        When(Q(meta__pachyderm__has_key='deleted_in'), then=Value(versions.DELETED)),
        When(Q(meta__has_key='pachyderm'), then=Value(versions.CURRENT)),
        default=Value(''),
        output_field=CharField(),
    )})


def register() -> None:
    """Add the annotation to Label Studio's map (its module resets the map when it is imported)."""
    from data_manager.managers import update_annotation_map

    update_annotation_map({COLUMN: annotate_version})
