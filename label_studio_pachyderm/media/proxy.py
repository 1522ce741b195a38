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

Both paths that stream ``pfs://`` media (the view below and the lean path in ``media.py``)
stream through ``PfsProxy``: Label Studio's ``proxy_data_from_storage`` (headers, ETag, 304),
with the client's own ``Range`` (read by ``ranges``, not Label Studio's parser), the first read
done before the status line, and a body that is cut, not quietly ended, when pachd stalls.
"""
from __future__ import annotations

import base64
import json
import logging
import sys
import time
from urllib.parse import unquote

from django.conf import settings
from django.http import StreamingHttpResponse
from io_storages.proxy_api import ProjectResolveStorageUri, ResolveStorageUriAPIMixin, TaskResolveStorageUri
from projects.models import Project
from rest_framework import status
from rest_framework.response import Response
from tasks.models import Task

from .. import pachd, tables, uri
from ..access import is_project_member

logger = logging.getLogger(__name__)


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
        pk__in=tables.import_link_model().objects.filter(
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


# ----------------------------------------------------------------------------- streaming
class _Opened:
    """The storage, for Label Studio's proxy code: ``get_bytes_stream`` opens the file, keeps the
    stream, and turns a pachd failure into a None stream (remembered in ``error``)."""

    def __init__(self, storage):
        self._storage = storage
        self.stream = None
        self.error = None

    def get_bytes_stream(self, uri_str, range_header=None):
        try:
            self.stream, content_type, metadata = self._storage.get_bytes_stream(uri_str, range_header=range_header)
        except pachd.PachdError as exc:
            self.error = exc
            return None, None, {}
        return self.stream, content_type, metadata

    def __str__(self):
        return str(self._storage)


class _FirstPieceRead:
    """A stream whose first piece has been read: pachd answered before the response was made."""

    def __init__(self, stream, chunk_size: int):
        self._stream = stream
        self._chunks = iter(stream.iter_chunks(chunk_size=chunk_size))
        try:
            self._first = next(self._chunks, b'')
        except BaseException:
            stream.close()
            raise

    def iter_chunks(self, chunk_size=None):  # the pieces' size was fixed by the first read
        if self._first:
            first, self._first = self._first, b''
            yield first
        yield from self._chunks

    def close(self):
        self._stream.close()


class StreamCut(Exception):
    """A proxied body stopped at Label Studio's time limit, before its end."""


def _close_connection_after_response():
    """Make a wsgiref-based server end the keep-alive connection after this response.

    After an exception in the body, wsgiref (Django's runserver, which ``label-studio start`` runs)
    only logs it and keeps the connection for the next request: the client, told
    ``Content-Length``, would wait for the missing bytes forever. Its handler points back at the
    connection's request handler, whose ``close_connection`` ends the connection once the response
    is over; that handler is the one iterating this body, up the stack. Servers such as gunicorn
    and uWSGI close the connection on the exception itself and have no such handler.
    """
    from wsgiref.handlers import BaseHandler

    frame = sys._getframe(1)
    while frame is not None:
        handler = frame.f_locals.get('self')
        if isinstance(handler, BaseHandler):
            request_handler = getattr(handler, 'request_handler', None)
            if request_handler is not None and hasattr(request_handler, 'close_connection'):
                request_handler.close_connection = True
            return
        frame = frame.f_back


class PfsProxy(ResolveStorageUriAPIMixin):
    """Label Studio's ``proxy_data_from_storage`` for a Pachyderm storage, with three changes.

    * The storage reads the client's ``Range`` itself (``ranges``): Label Studio's rewrite turns
      ``bytes=-100`` into ``bytes=0-``.
    * The first piece of the body is read before the response is returned, so a pachd that does
      not answer is a 424 with the reason, not a 200 whose body never comes (Label Studio would
      send the status line and then end the body empty, on a connection kept open).
    * Label Studio's time-limited body swallows a failed read and ends the body early; here the
      failure (or the time limit, ``RESOLVER_PROXY_TIMEOUT``) cuts the response: the WSGI server
      aborts it and the client sees a body shorter than ``Content-Length``.
    """

    def override_range_header(self, request):
        return request.headers.get('Range')

    def proxy_data_from_storage(self, request, uri, project, storage):
        opened = _Opened(storage)
        response = super().proxy_data_from_storage(request, uri, project, opened)
        if isinstance(response, StreamingHttpResponse):
            try:
                first_read = _FirstPieceRead(opened.stream, settings.RESOLVER_PROXY_BUFFER_SIZE)
            except pachd.PachdError as exc:
                return self._failed(uri, exc)
            # Label Studio's generator over the stream has not started (and never will): the body
            # is this one, over the stream whose first piece has been read.
            response.streaming_content = self._body(first_read)
            return response
        if opened.stream is not None:  # a 304: nothing will read the stream
            opened.stream.close()
        return self._failed(uri, opened.error) if opened.error is not None else response

    @staticmethod
    def _failed(uri, exc):
        logger.warning('Pachyderm proxy could not read %s: %s', uri, exc)
        return Response({'error': 'Storage stream failed while proxying data', 'detail': str(exc)},
                        status=status.HTTP_424_FAILED_DEPENDENCY)

    @staticmethod
    def _body(stream):
        limit = settings.RESOLVER_PROXY_TIMEOUT
        deadline = time.monotonic() + limit
        try:
            for chunk in stream.iter_chunks():
                if time.monotonic() >= deadline:
                    raise StreamCut(f'the time limit of {limit} s (RESOLVER_PROXY_TIMEOUT) was reached')
                yield chunk
        except Exception as exc:  # not GeneratorExit: a client that went away needs no cut
            logger.warning('Pachyderm proxy cut a response short: %s', exc)
            _close_connection_after_response()
            raise
        finally:
            stream.close()


class _PachydermChecks:
    def resolve(self, request, fileuri, instance):
        wanted = decode_fileuri(fileuri or '').strip()
        if not wanted.startswith(f'{uri.SCHEME}://'):
            return super().resolve(request, fileuri, instance)
        refused = pfs_refusal(request.user, instance, wanted)
        if refused is not None:
            return Response(status=refused)
        return super().resolve(request, fileuri, instance)

    def proxy_data_from_storage(self, request, uri, project, storage):
        if isinstance(storage, tables.import_storage_model()):
            return PfsProxy().proxy_data_from_storage(request, uri, project, storage)
        return super().proxy_data_from_storage(request, uri, project, storage)


class TaskResolvePachydermAware(_PachydermChecks, TaskResolveStorageUri):
    pass


class ProjectResolvePachydermAware(_PachydermChecks, ProjectResolveStorageUri):
    pass
