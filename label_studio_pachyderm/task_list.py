"""Label Studio's task list (``/api/tasks/``, the Data Manager's rows) with the Pachyderm version filled in.

Label Studio's Data Manager draws a column's cells from the field of the same name in
each task of this list, and its serializer returns only Label Studio's own fields. The
plugin's list is Label Studio's view with one field more, ``pachyderm_version``: a
task's version in words (``imports.versions.describe``). Filtering and sorting on the
column use the queryset annotation of ``imports.datamanager``.
"""
from __future__ import annotations

from data_manager.serializers import DataManagerTaskSerializer
from rest_framework import serializers
from tasks.api import TaskListAPI

from .imports.versions import describe


class VersionedTaskSerializer(DataManagerTaskSerializer):
    # Named as the column (imports.datamanager.COLUMN): the Data Manager matches them by name.
    pachyderm_version = serializers.SerializerMethodField(
        help_text='"current", "superseded by #<task> (<commit>)" or "deleted in <commit>"; empty for a task '
                  'that is not from a Pachyderm storage')

    class Meta(DataManagerTaskSerializer.Meta):
        ref_name = 'pachyderm_data_manager_task_serializer'

    def get_pachyderm_version(self, task) -> str:
        return describe(task.meta)


class VersionedTaskListAPI(TaskListAPI):
    task_serializer_class = VersionedTaskSerializer
