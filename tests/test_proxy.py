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
    # an empty file has no byte to send: every range is unsatisfiable (not "bytes 0--1/0")
    ('empty.png', None, 200, None, b''),
    ('empty.png', 'bytes=0-', 416, 'bytes */0', b''),
    ('empty.png', 'bytes=0-0', 416, 'bytes */0', b''),
    ('empty.png', 'bytes=0-99', 416, 'bytes */0', b''),
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
