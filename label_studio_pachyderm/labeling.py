"""Label Studio's labeling queue (``/api/projects/<id>/next/``), serving current task versions only.

"Label All Tasks", "Label Tasks As Displayed" and API clients all ask this route which
task comes next. Label Studio picks it from the project's tasks as the Data Manager tab
prepares them (filters, ordering, selection); the plugin takes the stale versions out of
that set first (``imports.versions.current_only``), then lets Label Studio choose as
always: overlap, locks, skip queue and the rest are its own.
"""
from __future__ import annotations

from data_manager.functions import filters_ordering_selected_items_exist, get_prepared_queryset
from projects.api import ProjectNextTaskAPI
from projects.functions.next_task import get_next_task
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from tasks.serializers import NextTaskSerializer

from .imports.versions import current_only


class CurrentVersionsNextTaskAPI(ProjectNextTaskAPI):
    """Label Studio's next-task view with one rule more: a stale task version is never served."""

    def get(self, request, *args, **kwargs):
        project = self.get_object()
        candidates = current_only(get_prepared_queryset(request, project))
        task, queue = get_next_task(request.user, candidates, project, filters_ordering_selected_items_exist(request.data))
        if task is None:
            raise NotFound(f'There are no tasks for {request.user}')
        context = {'request': request, 'project': project, 'resolve_uri': True, 'annotations': False}
        return Response({**NextTaskSerializer(task, context=context).data, 'queue': queue})
