"""Label Studio's storage proxy, with the plugin's checks for Pachyderm URIs.

Label Studio OSS lets any user of the instance through its proxy (it assumes one
organization), and streams any URI a storage of the project can read. For
``pfs://`` URIs the plugin also requires:

* membership of the project's organization, as on its own endpoints (else 403);
* that the URI is one the request's task holds (``/tasks/<id>/resolve/``), or one a
  task of the project holds (``/projects/<id>/resolve/``); else 404, Label Studio's
  answer for a URI no storage of the project serves. A source storage reads a whole
  repo folder at any commit or branch; this confines the proxy to the exact files,
  commits included, the project's tasks were made from.

Every other URI is handled exactly as Label Studio does.
"""
from __future__ import annotations

import base64
import json
from urllib.parse import unquote

from io_storages.proxy_api import ProjectResolveStorageUri, TaskResolveStorageUri
from projects.models import Project
from rest_framework import status
from rest_framework.response import Response
from tasks.models import Task

from . import uri
from .models import PachydermImportStorageLink, is_project_member


def decode_fileuri(fileuri: str) -> str:
    # The same two readings Label Studio's proxy tries.
    try:
        return base64.urlsafe_b64decode(fileuri.encode()).decode()
    except Exception:
        return unquote(fileuri)


def _string_holds(value: str, wanted: str) -> bool:
    """Whether Label Studio would send ``wanted`` to the proxy for this string value.

    Label Studio resolves a value that is the URI itself (stripped), or a URI quoted
    inside it (``<img src="pfs://...">``; ``io_storages.utils.get_uri_via_regex``).
    """
    return value.strip() == wanted or f'"{wanted}"' in value or f"'{wanted}'" in value


def data_holds(data, wanted: str, _depth: int = 0) -> bool:
    """Whether ``wanted`` is one of the values of task data (nested lists and dicts too)."""
    if isinstance(data, str):
        return _string_holds(data, wanted)
    if _depth > 64:  # task data is JSON from the database; no real task nests this deep
        return False
    if isinstance(data, dict):
        return any(data_holds(v, wanted, _depth + 1) for v in data.values())
    if isinstance(data, (list, tuple)):
        return any(data_holds(v, wanted, _depth + 1) for v in data)
    return False


def _json_text_needle(wanted: str) -> str:
    """A substring of the database's JSON text of any task value holding ``wanted``.

    The longest ASCII start of the URI, JSON-escaped: SQLite stores JSON with non-ASCII
    characters escaped, PostgreSQL does not, and both escape quotes and backslashes alike.
    """
    end = next((i for i, ch in enumerate(wanted) if not ch.isascii()), len(wanted))
    return json.dumps(wanted[:end])[1:-1]


def project_holds(project, wanted: str) -> bool:
    """Whether a task of ``project`` holds ``wanted``.

    First the tasks a sync created from that very file (an indexed lookup of the
    plugin's links by path); then the project's tasks whose JSON text contains the URI
    (one query, filtered in the database), each checked exactly.
    """
    parsed = uri.parse(wanted)
    if parsed is None:
        return False
    linked = Task.objects.filter(
        project=project,
        pk__in=PachydermImportStorageLink.objects.filter(
            storage__project=project, key=parsed.path).values('task_id'),
    ).values_list('data', flat=True)
    if any(data_holds(data, wanted) for data in linked[:100]):
        return True
    candidates = Task.objects.filter(project=project, data__icontains=_json_text_needle(wanted))
    return any(data_holds(data, wanted) for data in candidates.values_list('data', flat=True).iterator())


def pfs_refusal(user, instance, wanted: str) -> int | None:
    """The status for a pfs:// URI ``user`` may not read through ``instance`` (a task or a project), else None.

    The plugin's rules on top of Label Studio's: 403 without membership of the project's
    organization, 404 for a URI the task (or no task of the project) holds. Both the proxy view
    below and the lean media path (``media.py``) apply exactly this.
    """
    project = instance if isinstance(instance, Project) else instance.project
    if not is_project_member(user, project):
        return status.HTTP_403_FORBIDDEN
    held = project_holds(project, wanted) if isinstance(instance, Project) else data_holds(instance.data, wanted)
    return None if held else status.HTTP_404_NOT_FOUND


class _PachydermChecks:
    def resolve(self, request, fileuri, instance):
        wanted = decode_fileuri(fileuri or '').strip()
        if not wanted.startswith(f'{uri.SCHEME}://'):
            return super().resolve(request, fileuri, instance)
        refused = pfs_refusal(request.user, instance, wanted)
        if refused is not None:
            return Response(status=refused)
        return super().resolve(request, fileuri, instance)


class TaskResolvePachydermAware(_PachydermChecks, TaskResolveStorageUri):
    pass


class ProjectResolvePachydermAware(_PachydermChecks, ProjectResolveStorageUri):
    pass
