"""Label Studio's labeling queue, serving current task versions only.

Label Studio hands out the next task to label in two places: the Data Manager's hidden
``next_task`` action (``POST /api/dm/actions?id=next_task``, what "Label All Tasks" and
"Label Tasks As Displayed" call) and ``GET /api/projects/<id>/next/`` (API clients). Both
pick from the project's tasks as a Data Manager tab prepares them (filters, ordering,
selection). The plugin takes the stale versions out of that set first
(``imports.versions.current_only``) and then calls Label Studio's own ``next_task``:
overlap, locks, the skip queue and the rest stay Label Studio's.
"""
from __future__ import annotations

from data_manager.actions import next_task as ls_next_task_module
from data_manager.actions import register_action
from data_manager.functions import get_prepared_queryset
from projects.api import ProjectNextTaskAPI
from rest_framework.response import Response

from .imports.versions import current_only

_ACTION = next(a for a in ls_next_task_module.actions if a['entry_point'] is ls_next_task_module.next_task)


def next_task(project, queryset, **kwargs):
    """The Data Manager action: Label Studio's, on the tab's tasks without stale versions."""
    return ls_next_task_module.next_task(project, current_only(queryset), **kwargs)


def register() -> None:
    """Put ``next_task`` in Label Studio's action table in place of its own (same id, same permission)."""
    register_action(**{**_ACTION, 'entry_point': next_task})


class CurrentVersionsNextTaskAPI(ProjectNextTaskAPI):
    """``/api/projects/<id>/next/``: the same choice as the action, for API clients."""

    def get(self, request, *args, **kwargs):
        project = self.get_object()
        return Response(next_task(project, get_prepared_queryset(request, project), request=request))
