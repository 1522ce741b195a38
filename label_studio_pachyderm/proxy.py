"""Label Studio's storage proxy, with the plugin's membership check for Pachyderm URIs.

Label Studio OSS lets any user of the instance through its proxy (it assumes one
organization). For ``pfs://`` URIs the plugin also requires membership of the
project's organization, as on its own endpoints; every other URI is handled
exactly as Label Studio does.
"""
from __future__ import annotations

import base64
from urllib.parse import unquote

from io_storages.proxy_api import ProjectResolveStorageUri, TaskResolveStorageUri
from projects.models import Project
from rest_framework import status
from rest_framework.response import Response

from . import uri
from .models import is_project_member


def _decoded(fileuri: str) -> str:
    # The same two readings Label Studio's proxy tries.
    try:
        return base64.urlsafe_b64decode(fileuri.encode()).decode()
    except Exception:
        return unquote(fileuri)


class _MembersOnlyForPachyderm:
    def resolve(self, request, fileuri, instance):
        project = instance if isinstance(instance, Project) else instance.project
        if _decoded(fileuri or '').strip().startswith(f'{uri.SCHEME}://') and not is_project_member(
            request.user, project
        ):
            return Response(status=status.HTTP_403_FORBIDDEN)
        return super().resolve(request, fileuri, instance)


class TaskResolvePachydermAware(_MembersOnlyForPachyderm, TaskResolveStorageUri):
    pass


class ProjectResolvePachydermAware(_MembersOnlyForPachyderm, ProjectResolveStorageUri):
    pass
