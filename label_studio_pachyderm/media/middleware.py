"""The lean path for ``pfs://`` media behind Label Studio's own proxy URLs.

Label Studio's proxy view costs ~30 ms per request before a byte moves (its whole
middleware stack, DRF's view machinery, a query per storage table), and every
request opens a new ``GetFile`` on pachd. An audio or video element asks in 8 MiB
``Range`` requests, so that fixed cost, not pachd, set the speed.

``PfsMediaMiddleware`` sits near the top of ``MIDDLEWARE`` and takes a request only
when all of this holds: ``GET`` on ``/tasks/<id>/resolve/``, ``/projects/<id>/resolve/``
(or their ``/presign/`` twins), a ``fileuri`` that decodes to a well-formed ``pfs://``
URI, and every check Label Studio's view and the plugin's ``proxy.py`` would make
passes. It runs only the middleware that decide who is asking (from ``MIDDLEWARE``,
in order: sessions, API keys, authentication, JWT, the inactivity timeout), then
DRF's own authenticators, then: ``Task``/``Project.has_permission``,
``proxy.pfs_refusal`` (organization membership, the URI held by the task or project), the
project's Pachyderm storage that ``can_resolve_url``. It streams with Label Studio's
own ``proxy_data_from_storage`` (headers, ETag, 304) through ``proxy.PfsProxy``, as the view
does (the client's Range read by ``ranges``, the first read before the status line, a stalled
body cut), from ``get_bytes_stream``. A pachd failure after every check passed is answered
here (424 and the reason, what the view would answer after one more timeout). In every other
case, a refusal included, the request continues down the normal stack to Label Studio's view,
which gives today's answer: this path can only serve what that view would serve.

Consecutive ranges continue one ``GetFile`` stream (``RangeReader``) instead of
opening a new one per request.
"""
from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict

from django.conf import settings
from django.utils.module_loading import import_string

from .. import pachd, tables, uri

_ROUTE = re.compile(r'^/(?P<kind>tasks|projects)/(?P<pk>\d+)/(?:resolve|presign)/$')

# The middleware of MIDDLEWARE that decide who the user is (or log them out); the
# lean path runs these, in MIDDLEWARE's order, and no others.
AUTH_MIDDLEWARE = (
    'django.contrib.sessions.middleware.SessionMiddleware',
    'core.middleware.XApiKeySupportMiddleware',
    'django.contrib.auth.middleware.AuthenticationMiddleware',
    'jwt_auth.middleware.JWTAuthenticationMiddleware',
    'core.middleware.InactivitySessionTimeoutMiddleWare',
)


def _pfs_uri(request):
    """The decoded ``fileuri`` when it is a well-formed pfs:// URI, else None."""
    from .proxy import decode_fileuri

    fileuri = request.GET.get('fileuri')
    if not fileuri:
        return None
    wanted = decode_fileuri(fileuri)
    # Padded URIs and anything uri.parse refuses go to the normal stack. A parsed URI has
    # no empty path segment, so no other scheme's "x://" can appear in it: no other
    # provider's storage can claim it.
    if wanted != wanted.strip() or uri.parse(wanted) is None:
        return None
    return wanted


class PfsMediaMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        handler = self._serve
        for path in reversed([m for m in settings.MIDDLEWARE if m in AUTH_MIDDLEWARE]):
            handler = import_string(path)(handler)
        self._authenticated_serve = handler

    def __call__(self, request):
        if request.method != 'GET':
            return self.get_response(request)
        match = _ROUTE.match(request.path_info)
        if match is None:
            return self.get_response(request)
        wanted = _pfs_uri(request)
        if wanted is None:
            return self.get_response(request)
        request._pfs_media = (match['kind'], int(match['pk']), wanted)
        return self._authenticated_serve(request)

    def _serve(self, request):
        response = None
        try:
            response = serve(request, *request._pfs_media)
        except Exception:  # the normal stack answers (and logs) whatever went wrong here
            response = None
        return response if response is not None else self.get_response(request)


def serve(request, kind: str, pk: int, wanted: str):
    """The streaming response, or None when Label Studio's view must answer instead."""
    from django.http import JsonResponse, StreamingHttpResponse
    from projects.models import Project
    from rest_framework.request import Request
    from rest_framework.settings import api_settings
    from tasks.models import Task

    from .proxy import PfsProxy, pfs_refusal

    # The authenticators Label Studio's proxy view uses (DRF's defaults, as its settings set them).
    drf_request = Request(request, authenticators=[a() for a in api_settings.DEFAULT_AUTHENTICATION_CLASSES])
    user = drf_request.user  # an AuthenticationFailed propagates: the normal stack answers it
    if not (user and user.is_authenticated):
        return None
    if kind == 'tasks':
        # [:1], not .first(): no ORDER BY to compile for a primary-key lookup.
        instance = next(iter(Task.objects.select_related('project__organization').filter(pk=pk)[:1]), None)
        project = instance.project if instance is not None else None
    else:
        instance = project = next(iter(Project.objects.select_related('organization').filter(pk=pk)[:1]), None)
    if instance is None or not instance.has_permission(user) or pfs_refusal(user, instance, wanted) is not None:
        return None
    storage = next((s for s in tables.import_storage_model().objects.filter(project=project) if s.can_resolve_url(wanted)),
                   None)
    if storage is None or storage.presign:
        return None
    response = PfsProxy().proxy_data_from_storage(drf_request, wanted, project, _Resumable(storage))
    if response.status_code == 424 and isinstance(getattr(response, 'data', None), dict):
        # pachd could not be read, after every check passed: the view would only try again (one
        # more timeout with a frozen pachd) to give this same answer.
        return JsonResponse(response.data, status=424)
    return response if isinstance(response, StreamingHttpResponse) or response.status_code == 304 else None


class _Resumable:
    """The storage, with its range streams read through ``RangeReader``."""

    def __init__(self, storage):
        self._storage = storage

    def get_bytes_stream(self, uri_str, range_header=None):
        stream, content_type, metadata = self._storage.get_bytes_stream(uri_str, range_header=range_header)
        if isinstance(stream, pachd.FileStream):
            stream = RangeReader.wrap(self._storage.get_client(), uri.parse(uri_str), stream)
        return stream, content_type, metadata

    def __str__(self):
        return str(self._storage)


# ----------------------------------------------------------------------------- continued reads
class _Cursor:
    """An open GetFile stream to the end of a file, positioned at ``position``."""

    def __init__(self, stream: 'pachd.FileStream', position: int, chunk_size: int):
        self.stream = stream
        self.position = position
        self.chunk_size = chunk_size
        self._chunks = stream.iter_chunks(chunk_size)
        self._leftover = b''
        self.parked_at = 0.0

    def take(self, length: int):
        """Exactly ``length`` bytes (fewer only at the end of the file), in pieces."""
        while length > 0:
            data, self._leftover = (self._leftover, b'') if self._leftover else (next(self._chunks, b''), b'')
            if not data:
                return
            if len(data) > length:
                data, self._leftover = data[:length], data[length:]
            length -= len(data)
            self.position += len(data)
            yield data

    def close(self):
        self.stream.close()


class RangeReader:
    """A range of a file, read from a parked stream that stopped exactly at its start, or a new one.

    A media element asks for consecutive ranges; opening a stream per range pays pachd's
    set-up each time. A range of at least ``MIN_RESUMABLE`` bytes is read from a stream
    opened to the end of the file; when the range was
    delivered whole, the stream is parked under (client, project, repo, commit id, path,
    position) for ``PARK_SECONDS``, and the next range starting there continues it (a
    range to the end of the file too). The
    bytes at a position of a commit never change, and every request has passed all the
    checks before it gets here. At most ``MAX_PARKED`` streams wait; the oldest go first.
    """

    MIN_RESUMABLE = 1024 * 1024
    PARK_SECONDS = 15.0
    MAX_PARKED = 16

    _parked: 'OrderedDict[tuple, _Cursor]' = OrderedDict()
    _lock = threading.Lock()
    _sweeper: 'threading.Thread | None' = None

    def __init__(self, client, parsed, stream):
        self._client = client
        self._parsed = parsed
        self._stream = stream  # the stream get_bytes_stream opened (not started: no RPC yet)
        self._cursor = None
        self._done = False

    @classmethod
    def wrap(cls, client, parsed, stream):
        entry = stream.entry
        # A range to the end of the file is wrapped too: it may continue a parked stream.
        resumable = parsed is not None and pachd.is_commit_id(entry.commit) and stream.length >= cls.MIN_RESUMABLE
        return cls(client, parsed, stream) if resumable else stream

    def _key(self, position: int) -> tuple:
        p = self._parsed
        return id(self._client), p.project, p.repo, self._stream.entry.commit, self._stream.entry.path, position

    def iter_chunks(self, chunk_size: int = 1024 * 1024):
        offset, length = self._stream.offset, self._stream.length
        cursor = self._unpark(self._key(offset))
        if cursor is not None:
            try:
                first = next(cursor.take(min(length, chunk_size)), None) if length else None
            except pachd.PachdError:
                first = None
            if first is None:  # a parked stream that broke (pachd restarted, ...): start afresh
                cursor.close()
                cursor = None
        if cursor is None:
            first = None
            p, entry = self._parsed, self._stream.entry
            opened = self._client.read_file(p.project, p.repo, entry.commit, p.path, offset, None, entry=entry)
            cursor = _Cursor(opened, offset, chunk_size)
        self._cursor = cursor
        remaining = length
        if first is not None:
            remaining -= len(first)
            yield first
        for data in cursor.take(remaining):
            yield data
        self._done = cursor.position == offset + length

    def close(self):
        cursor, self._cursor = self._cursor, None
        self._stream.close()
        if cursor is None:
            return
        if self._done and cursor.position < self._stream.entry.size:
            self._park(self._key(cursor.position), cursor)
        else:  # cut short (time limit, client gone): nobody knows where the next range starts
            cursor.close()

    @classmethod
    def _unpark(cls, key):
        with cls._lock:
            cursor = cls._parked.pop(key, None)
        return cursor

    @classmethod
    def _park(cls, key, cursor):
        cursor.parked_at = time.monotonic()
        evicted = []
        with cls._lock:
            old = cls._parked.pop(key, None)
            if old is not None:
                evicted.append(old)
            cls._parked[key] = cursor
            while len(cls._parked) > cls.MAX_PARKED:
                evicted.append(cls._parked.popitem(last=False)[1])
            if cls._sweeper is None or not cls._sweeper.is_alive():
                cls._sweeper = threading.Thread(target=cls._sweep, name='pfs-media-parked', daemon=True)
                cls._sweeper.start()
        for stale in evicted:
            stale.close()

    @classmethod
    def _sweep(cls):
        """Close streams parked longer than PARK_SECONDS; ends when none is left."""
        while True:
            time.sleep(min(1.0, cls.PARK_SECONDS))
            now, expired = time.monotonic(), []
            with cls._lock:
                for key, cursor in list(cls._parked.items()):
                    if now - cursor.parked_at >= cls.PARK_SECONDS:
                        expired.append(cls._parked.pop(key))
                if not cls._parked:
                    cls._sweeper = None
                    done = True
                else:
                    done = False
            for cursor in expired:
                cursor.close()
            if done:
                return

    @classmethod
    def close_all(cls):
        """Close every parked stream (tests; a process about to fork)."""
        with cls._lock:
            parked, cls._parked = list(cls._parked.values()), OrderedDict()
        for cursor in parked:
            cursor.close()
