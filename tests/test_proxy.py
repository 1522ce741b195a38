"""Label Studio's storage proxy for pfs:// URIs: HTTP Range answers and task confinement.

Every request goes through Label Studio's own routes and proxy views (with the plugin's
checks) to a local PFS server over gRPC.
"""
from __future__ import annotations

import base64

import pytest
from label_studio_pachyderm import pachd
from label_studio_pachyderm.models import PachydermImportStorage
from tasks.models import Task

from conftest import make_project

pytestmark = pytest.mark.django_db

DATA = bytes(range(256)) * 4  # 1,024 bytes
SIZE = len(DATA)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ['django.contrib.auth.hashers.MD5PasswordHasher']


@pytest.fixture
def files(pfs_client):
    """images@master holds data.bin (1,024 bytes), empty.png (0 bytes) and other/s.png."""
    pfs_client.create_repo('default', 'images')
    return pfs_client.write_commit('default', 'images', 'master', [
        pachd.FileOp.put('data.bin', DATA), pachd.FileOp.put('empty.png', b''),
        pachd.FileOp.put('other/s.png', b'secret-bytes-of-another-path')])


@pytest.fixture
def storage(project, pfs, files):
    return PachydermImportStorage.objects.create(
        project=project, title='src', pachd_address=pfs.address, repo='images', use_blob_urls=True)


def _uri(commit, path):
    return f'pfs://default/images@{commit}/{path}'


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


def _get(api, route, fileuri, headers=None):
    return api.get(f'{route}?fileuri={_b64(fileuri)}', headers=headers or {})


def _body(response) -> bytes:
    return b''.join(response.streaming_content) if getattr(response, 'streaming', False) else response.content


# ----------------------------------------------------------------------------- Range (RFC 9110)
@pytest.mark.parametrize('path, range_header, status, content_range, body', [
    ('data.bin', None, 200, None, DATA),
    ('data.bin', 'bytes=0-0', 206, f'bytes 0-0/{SIZE}', DATA[:1]),
    ('data.bin', 'bytes=100-199', 206, f'bytes 100-199/{SIZE}', DATA[100:200]),
    ('data.bin', f'bytes={SIZE - 1}-', 206, f'bytes {SIZE - 1}-{SIZE - 1}/{SIZE}', DATA[-1:]),
    ('data.bin', f'bytes=1000-{SIZE * 9}', 206, f'bytes 1000-{SIZE - 1}/{SIZE}', DATA[1000:]),
    # unsatisfiable: 416 and the current length, never a 206 with nothing in it
    ('data.bin', 'bytes=500-100', 416, f'bytes */{SIZE}', b''),
    ('data.bin', f'bytes={SIZE}-', 416, f'bytes */{SIZE}', b''),
    ('data.bin', f'bytes={SIZE + 5}-{SIZE + 9}', 416, f'bytes */{SIZE}', b''),
    # suffix ranges: the last n bytes, the whole file when it is shorter, none for -0
    ('data.bin', 'bytes=-100', 206, f'bytes {SIZE - 100}-{SIZE - 1}/{SIZE}', DATA[-100:]),
    ('data.bin', f'bytes=-{SIZE * 5}', 206, f'bytes 0-{SIZE - 1}/{SIZE}', DATA),
    ('data.bin', 'bytes=-0', 416, f'bytes */{SIZE}', b''),
    # several ranges, or a header that does not parse: the Range is ignored
    ('data.bin', 'bytes=0-1,5-6', 200, None, DATA),
    ('data.bin', 'bytes=abc', 200, None, DATA),
    # an empty file has no byte to send: every range is unsatisfiable (not "bytes 0--1/0")
    ('empty.png', None, 200, None, b''),
    ('empty.png', 'bytes=0-', 416, 'bytes */0', b''),
    ('empty.png', 'bytes=0-0', 416, 'bytes */0', b''),
    ('empty.png', 'bytes=0-99', 416, 'bytes */0', b''),
    ('empty.png', 'bytes=-5', 200, None, b''),  # a 206 cannot name zero bytes: the whole (empty) file
], ids=lambda value: repr(value)[:40])
def test_range_answers_follow_http(api, storage, files, path, range_header, status, content_range, body):
    fileuri = _uri(files, path)
    task = Task.objects.create(project=storage.project, data={'image': fileuri})
    headers = {'Range': range_header} if range_header else {}
    response = _get(api, f'/tasks/{task.id}/resolve/', fileuri, headers)
    assert response.status_code == status, (response.status_code, _body(response)[:100])
    assert response.get('Content-Range') == content_range
    assert _body(response) == body
    assert response['Content-Length'] == str(len(body))
    assert response['Accept-Ranges'] == 'bytes'


def test_an_empty_range_answer_is_what_goes_on_the_wire(api, storage, files):
    """416 and an empty 200 carry Content-Length: 0 through Label Studio's response handling."""
    fileuri = _uri(files, 'empty.png')
    task = Task.objects.create(project=storage.project, data={'image': fileuri})
    refused = _get(api, f'/tasks/{task.id}/resolve/', fileuri, {'Range': 'bytes=0-'})
    assert refused.status_code == 416 and refused['Content-Range'] == 'bytes */0'
    assert refused['Content-Length'] == '0' and _body(refused) == b''
    # The same URI on the project route answers the same (the project's task holds it).
    again = _get(api, f'/projects/{storage.project.id}/resolve/', fileuri, {'Range': 'bytes=7-3'})
    assert again.status_code == 416 and again['Content-Range'] == 'bytes */0'


# ----------------------------------------------------------------------------- confinement to the task
NASTY = 'dir/a "q" \\b.png'  # quotes and a backslash: JSON-escaped in the database's text


@pytest.fixture
def versions(pfs_client, files):
    """A second commit on master (data.bin changed) and a branch 'dev'; returns the second commit."""
    pfs_client.write_commit('default', 'images', 'dev', [pachd.FileOp.put('data.bin', b'dev-bytes')])
    return pfs_client.write_commit('default', 'images', 'master', [
        pachd.FileOp.put('data.bin', b'second-version'), pachd.FileOp.put(NASTY, b'nasty-bytes')])


def test_task_route_serves_only_the_uris_the_task_holds(api, storage, files, versions):
    own = _uri(files, 'data.bin')
    nested = _uri(versions, NASTY)
    task = Task.objects.create(project=storage.project, data={
        'image': own, 'more': [{'deep': {'src': nested}}], 'html': f'<img src="{_uri(files, "empty.png")}">'})
    sibling = Task.objects.create(project=storage.project, data={'image': _uri(files, 'other/s.png')})
    route = f'/tasks/{task.id}/resolve/'

    served = _get(api, route, own)
    assert served.status_code == 200 and _body(served) == DATA
    deep = _get(api, route, nested)
    assert deep.status_code == 200 and _body(deep) == b'nasty-bytes'
    assert _get(api, route, _uri(files, 'empty.png')).status_code == 200  # quoted inside a string value

    for refused in (
        _uri('master', 'data.bin'),  # the branch, not the task's commit
        _uri(versions, 'data.bin'),  # another commit of the same file
        _uri('dev', 'data.bin'),  # another branch
        _uri(files, 'other/s.png'),  # another path of the same commit: another task's file
        f'pfs://default/images@{files}/data.bi',  # a prefix of a held URI
        ' ' + _uri('master', 'data.bin'),  # padding does not change which file is read
    ):
        response = _get(api, route, refused)
        assert response.status_code == 404, (refused, response.status_code)
        assert _body(response) == b''
    # The sibling task serves its own file, and not the first task's.
    assert _get(api, f'/tasks/{sibling.id}/resolve/', _uri(files, 'other/s.png')).status_code == 200
    assert _get(api, f'/tasks/{sibling.id}/resolve/', own).status_code == 404


def test_project_route_serves_only_uris_of_its_own_tasks(api, user, storage, files, versions, pfs):
    project = storage.project
    other_project = make_project(user, title='Other project')  # same organization, same member
    PachydermImportStorage.objects.create(
        project=other_project, title='src', pachd_address=pfs.address, repo='images', use_blob_urls=True)
    mine = _uri(files, 'data.bin')
    nasty = _uri(versions, NASTY)
    Task.objects.create(project=project, data={'image': mine, 'list': [nasty]})
    theirs = _uri(files, 'other/s.png')
    other_task = Task.objects.create(project=other_project, data={'image': theirs})
    route = f'/projects/{project.id}/resolve/'

    assert _body(_get(api, route, mine)) == DATA
    assert _body(_get(api, route, nasty)) == b'nasty-bytes'
    for refused in (_uri('master', 'data.bin'), _uri(versions, 'data.bin'), _uri('dev', 'data.bin'), theirs,
                    _uri(files, NASTY)):
        response = _get(api, route, refused)
        assert response.status_code == 404, (refused, response.status_code)
        assert _body(response) == b''
    # The other project serves its task's file, never this project's.
    assert _get(api, f'/projects/{other_project.id}/resolve/', theirs).status_code == 200
    assert _get(api, f'/projects/{other_project.id}/resolve/', mine).status_code == 404
    assert _get(api, f'/tasks/{other_task.id}/resolve/', mine).status_code == 404


@pytest.mark.django_db(transaction=True)
def test_synced_tasks_are_served_on_both_routes(api, project, pfs, files, versions):
    """Tasks made by a sync (found through the plugin's links) are served; other commits are not."""
    storage = PachydermImportStorage.objects.create(
        project=project, title='src', pachd_address=pfs.address, repo='images', use_blob_urls=True,
        regex_filter=r'data\.bin$')
    response = api.post(f'/api/storages/pachyderm/{storage.id}/sync')
    assert response.status_code == 200 and response.json()['status'] == 'completed', response.content
    task = Task.objects.get(project=project)
    synced = _uri(versions, 'data.bin')
    assert synced in task.data.values()
    for route in (f'/tasks/{task.id}/resolve/', f'/projects/{project.id}/resolve/'):
        assert _body(_get(api, route, synced)) == b'second-version'
        assert _get(api, route, _uri(files, 'data.bin')).status_code == 404  # the file's older version


@pytest.mark.django_db(transaction=True)
def test_range_answers_on_the_wire(live_server, user, storage, files):
    """The same answers through a real HTTP server (Django's WSGI handler), as a browser gets them."""
    import urllib.error
    import urllib.request

    from rest_framework.authtoken.models import Token

    jwt = user.active_organization.jwt
    jwt.legacy_api_tokens_enabled = True  # Label Studio's API token ("Token <key>"), as curl would use
    jwt.save()
    auth = f'Token {Token.objects.get_or_create(user=user)[0].key}'
    empty, data = _uri(files, 'empty.png'), _uri(files, 'data.bin')
    task = Task.objects.create(project=storage.project, data={'image': empty, 'data': data})

    def fetch(fileuri, byte_range=None):
        request = urllib.request.Request(f'{live_server.url}/tasks/{task.id}/resolve/?fileuri={_b64(fileuri)}',
                                         headers={'Authorization': auth, **({'Range': byte_range} if byte_range else {})})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    status, headers, body = fetch(empty, 'bytes=0-')
    assert (status, headers.get('Content-Range'), headers.get('Content-Length'), body) == (
        416, 'bytes */0', '0', b'')
    status, headers, body = fetch(data, 'bytes=500-100')
    assert (status, headers.get('Content-Range'), body) == (416, f'bytes */{SIZE}', b'')
    status, headers, body = fetch(empty)
    assert (status, headers.get('Content-Length'), body) == (200, '0', b'')
    status, headers, body = fetch(data, 'bytes=10-19')
    assert (status, headers.get('Content-Range'), body) == (206, f'bytes 10-19/{SIZE}', DATA[10:20])


@pytest.mark.parametrize('header, size, max_length, expected', [
    (None, 10, None, (200, 0, 10)),
    ('', 10, None, (200, 0, 10)),
    ('bytes=2-5', 10, None, (206, 2, 4)),
    ('bytes=2-', 10, None, (206, 2, 8)),
    ('bytes=2-99', 10, None, (206, 2, 8)),
    ('bytes=-3', 10, None, (206, 7, 3)),
    ('bytes=-30', 10, None, (206, 0, 10)),
    ('bytes=-0', 10, None, (416, 0, 0)),
    ('bytes=10-', 10, None, (416, 0, 0)),
    ('bytes=5-4', 10, None, (416, 0, 0)),
    ('bytes=0-', 0, None, (416, 0, 0)),
    ('bytes=-4', 0, None, (200, 0, 0)),
    (f'bytes={"9" * 5000}-', 10, None, (416, 0, 0)),  # more digits than int() takes
    (f'bytes=3-{"9" * 5000}', 10, None, (206, 3, 7)),
    # whitespace: around the header and the commas, never inside a range
    ('  bytes=2-5  ', 10, None, (206, 2, 4)),
    ('BYTES=2-5', 10, None, (206, 2, 4)),
    ('bytes=2-5, ', 10, None, (206, 2, 4)),  # an empty list element is ignored
    ('bytes=2 - 5', 10, None, (200, 0, 10)),
    # several ranges: the whole file
    ('bytes=0-1,5-6', 10, None, (200, 0, 10)),
    ('bytes=0-1 , -2', 10, None, (200, 0, 10)),
    # garbage: ignored
    ('bytes=abc', 10, None, (200, 0, 10)),
    ('bytes=-', 10, None, (200, 0, 10)),
    ('bytes=1-2-3', 10, None, (200, 0, 10)),
    ('bytes=+1-2', 10, None, (200, 0, 10)),
    ('bytes=,', 10, None, (200, 0, 10)),
    ('bytes 1-2', 10, None, (200, 0, 10)),
    ('items=1-2', 10, None, (200, 0, 10)),
    ('bytes=\u0661-2', 10, None, (200, 0, 10)),  # a non-ASCII digit
    # Label Studio's cap on one response, except bytes=0- (how media elements first ask)
    ('bytes=0-', 10, 4, (206, 0, 10)),
    ('bytes=0-9', 10, 4, (206, 0, 4)),
    ('bytes=2-', 10, 4, (206, 2, 4)),
    ('bytes=-8', 10, 4, (206, 2, 4)),
    (None, 10, 4, (200, 0, 10)),
], ids=repr)
def test_range_parser(header, size, max_length, expected):
    from label_studio_pachyderm.media import ranges

    assert tuple(ranges.answer(header, size, max_length)) == expected


@pytest.fixture(params=['lean', 'view'])
def proxy_path(request, monkeypatch):
    """Which path serves pfs:// URIs: the lean middleware, or Label Studio's view (the middleware steps aside).

    Returns the list of URIs Label Studio's view was asked for."""
    from io_storages.proxy_api import ResolveStorageUriAPIMixin
    from label_studio_pachyderm.media.middleware import PfsMediaMiddleware

    seen = []
    original = ResolveStorageUriAPIMixin.resolve

    def spy(self, request, fileuri, instance):
        seen.append(fileuri)
        return original(self, request, fileuri, instance)

    monkeypatch.setattr(ResolveStorageUriAPIMixin, 'resolve', spy)
    if request.param == 'view':
        monkeypatch.setattr(PfsMediaMiddleware, '__call__', lambda self, req: self.get_response(req))
    return request.param, seen


@pytest.mark.django_db(transaction=True)
def test_range_forms_on_the_wire(live_server, user, storage, files, proxy_path, settings):
    """Every form of Range over real HTTP, on both paths, as the plugin answers it (not Label Studio's parser)."""
    import requests
    from rest_framework.authtoken.models import Token

    jwt = user.active_organization.jwt
    jwt.legacy_api_tokens_enabled = True
    jwt.save()
    session = requests.Session()
    session.headers['Authorization'] = f'Token {Token.objects.get_or_create(user=user)[0].key}'
    empty, data = _uri(files, 'empty.png'), _uri(files, 'data.bin')
    task = Task.objects.create(project=storage.project, data={'image': empty, 'data': data})

    def fetch(fileuri, byte_range=None):
        response = session.get(f'{live_server.url}/tasks/{task.id}/resolve/?fileuri={_b64(fileuri)}',
                               headers={'Range': byte_range} if byte_range else {}, timeout=30)
        assert response.headers['Content-Length'] == str(len(response.content))
        return response.status_code, response.headers.get('Content-Range'), response.content

    last = SIZE - 1
    for byte_range, expected in [
        ('bytes=-100', (206, f'bytes {SIZE - 100}-{last}/{SIZE}', DATA[-100:])),  # suffix
        (f'bytes=-{SIZE + 1}', (206, f'bytes 0-{last}/{SIZE}', DATA)),  # suffix longer than the file
        ('bytes=-0', (416, f'bytes */{SIZE}', b'')),
        ('bytes=1000-', (206, f'bytes 1000-{last}/{SIZE}', DATA[1000:])),  # open-ended
        ('bytes=0-', (206, f'bytes 0-{last}/{SIZE}', DATA)),
        ('bytes=10-19', (206, f'bytes 10-19/{SIZE}', DATA[10:20])),
        ('bytes=0-1,5-6', (200, None, DATA)),  # multi-range: the whole file
        ('bytes=0-1, 5-6', (200, None, DATA)),
        ('bytes=nonsense', (200, None, DATA)),  # invalid: ignored
        ('bytes=5', (200, None, DATA)),
        ('pages=1-2', (200, None, DATA)),
        ('bytes=10-19 ,', (206, f'bytes 10-19/{SIZE}', DATA[10:20])),
        (f'bytes={SIZE}-', (416, f'bytes */{SIZE}', b'')),  # beyond the end
        (f'bytes={SIZE + 10}-{SIZE + 20}', (416, f'bytes */{SIZE}', b'')),
    ]:
        assert fetch(data, byte_range) == expected, byte_range
    # An empty file: no int-range has a byte; a suffix range gets the whole (empty) file.
    assert fetch(empty, 'bytes=0-') == (416, 'bytes */0', b'')
    assert fetch(empty, 'bytes=-10') == (200, None, b'')
    assert fetch(empty) == (200, None, b'')
    # Label Studio's cap on one response applies to the plugin's ranges too, suffixes included.
    settings.RESOLVER_PROXY_MAX_RANGE_SIZE = 100
    assert fetch(data, 'bytes=-500') == (206, f'bytes {SIZE - 500}-{SIZE - 401}/{SIZE}', DATA[-500:-400])
    assert fetch(data, 'bytes=0-') == (206, f'bytes 0-{last}/{SIZE}', DATA)
    name, seen = proxy_path
    assert bool(seen) == (name == 'view'), (name, len(seen))


# ----------------------------------------------------------------------------- the lean path (media.py)
@pytest.fixture
def small_ranges(monkeypatch):
    """Ranges of a few hundred bytes count as resumable (the real floor is 1 MiB)."""
    from label_studio_pachyderm.media.middleware import RangeReader

    RangeReader.close_all()
    monkeypatch.setattr(RangeReader, 'MIN_RESUMABLE', 1)
    yield RangeReader
    RangeReader.close_all()


def test_pfs_media_do_not_need_label_studios_view(api, storage, files, monkeypatch):
    """pfs:// URIs are served by the lean path; any other URI still reaches Label Studio's view."""
    from io_storages.proxy_api import TaskResolveStorageUri

    seen = []
    original = TaskResolveStorageUri.get

    def spy(self, request, *args, **kwargs):
        seen.append(request.GET.get('fileuri'))
        return original(self, request, *args, **kwargs)

    monkeypatch.setattr(TaskResolveStorageUri, 'get', spy)
    fileuri = _uri(files, 'data.bin')
    task = Task.objects.create(project=storage.project, data={'image': fileuri, 'other': 's3://bucket/x.png'})
    served = _get(api, f'/tasks/{task.id}/resolve/', fileuri, {'Range': 'bytes=10-19'})
    assert served.status_code == 206 and _body(served) == DATA[10:20]
    assert seen == []
    # No S3 storage in the project: Label Studio's own answer, from its own view.
    assert _get(api, f'/tasks/{task.id}/resolve/', 's3://bucket/x.png').status_code == 404
    assert seen == [_b64('s3://bucket/x.png')]
    # A refusal is also Label Studio's view answering (the lean path only serves).
    assert _get(api, f'/tasks/{task.id}/resolve/', _uri(files, 'other/s.png')).status_code == 404
    assert len(seen) == 2


def test_consecutive_ranges_continue_one_stream(api, storage, files, small_ranges):
    fileuri = _uri(files, 'data.bin')
    task = Task.objects.create(project=storage.project, data={'image': fileuri})
    route = f'/tasks/{task.id}/resolve/'
    received = b''
    for start in range(0, SIZE, 300):
        end = min(SIZE, start + 300) - 1
        response = _get(api, route, fileuri, {'Range': f'bytes={start}-{end}'})
        assert response.status_code == 206 and response['Content-Range'] == f'bytes {start}-{end}/{SIZE}'
        body = _body(response)  # read to the end, which closes the response
        assert len(body) == end - start + 1 == int(response['Content-Length'])
        received += body
        # Delivered whole and short of the end: the stream waits exactly where the next range starts.
        parked = [key[-1] for key in small_ranges._parked]
        assert parked == ([end + 1] if end + 1 < SIZE else []), (start, parked)
    assert received == DATA


def test_a_seek_or_a_cut_short_range_never_serves_wrong_bytes(api, storage, files, small_ranges):
    fileuri = _uri(files, 'data.bin')
    task = Task.objects.create(project=storage.project, data={'image': fileuri})
    route = f'/tasks/{task.id}/resolve/'
    first = _get(api, route, fileuri, {'Range': 'bytes=0-99'})
    assert _body(first) == DATA[:100]
    # A seek elsewhere opens its own stream; the parked one is left for whoever continues at 100.
    seek = _get(api, route, fileuri, {'Range': 'bytes=700-799'})
    assert _body(seek) == DATA[700:800]
    assert sorted(key[-1] for key in small_ranges._parked) == [100, 800]
    # A response abandoned after its first piece is not parked (nobody knows where the next starts).
    cut = _get(api, route, fileuri, {'Range': 'bytes=100-899'})
    piece = next(iter(cut.streaming_content))
    assert piece and DATA[100:900].startswith(piece)
    cut._iterator.close()  # the client goes away: the test client's wrapper closes the response
    assert sorted(key[-1] for key in small_ranges._parked) == [800]
    again = _get(api, route, fileuri, {'Range': 'bytes=100-199'})
    assert _body(again) == DATA[100:200]


def test_the_lean_path_applies_label_studios_session_rules(user, storage, files):
    """A session cookie is honoured, and Label Studio's inactivity rule still logs stale sessions out."""
    import time

    from django.conf import settings as django_settings
    from django.test import Client

    fileuri = _uri(files, 'data.bin')
    task = Task.objects.create(project=storage.project, data={'image': fileuri})
    url = f'/tasks/{task.id}/resolve/?fileuri={_b64(fileuri)}'
    browser = Client()
    browser.force_login(user)  # no 'last_login' stamp: Label Studio's middleware treats it as expired
    refused = browser.get(url, HTTP_RANGE='bytes=0-9')
    assert refused.status_code in (401, 403) and DATA[:10] not in _body(refused)
    browser.force_login(user)
    session = browser.session
    session['last_login'] = time.time()  # what Label Studio's login view stamps
    session.save()
    browser.cookies[django_settings.SESSION_COOKIE_NAME] = session.session_key
    served = browser.get(url, HTTP_RANGE='bytes=0-9')
    assert served.status_code == 206 and _body(served) == DATA[:10]
