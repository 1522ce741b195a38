"""The media proxy when pachd freezes: every response ends within a bound, never a hang.

Label Studio's own HTTP server (Django's WSGI server, as ``label-studio start`` runs it) serves
``/tasks/<id>/resolve/`` on both of the plugin's paths: the lean middleware (``media.py``) and
Label Studio's proxy view (``proxy.py``). pachd sits behind a TCP proxy that freezes: sockets stay
open, no byte moves (``tcp_proxy.py``). The HTTP client has a read timeout far above the bound, so
a hang shows up as a failed test, not as a test that waits forever.

A frozen read must end as an error status with a readable reason when no byte of the body has gone
out yet, or as a cut connection (a body shorter than its ``Content-Length``) when it stalls part-way.
"""
from __future__ import annotations

import base64
import os
import time
from types import SimpleNamespace

import pytest
import requests
from label_studio_pachyderm import pachd
from label_studio_pachyderm.models import PachydermImportStorage
from tasks.models import Task

from conftest import make_project
from tcp_proxy import FreezingProxy

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT = 2.0  # PACHYDERM_GRPC_TIMEOUT of the server under test
# An inspect or a read that gets no answer fails after one timeout; the rest is slack for a loaded
# 2-CPU machine. A hang would take the client's read timeout (60 s) instead.
BOUND = 3 * TIMEOUT + 4
CLIENT_READ_TIMEOUT = float(os.environ.get('LSP_TEST_READ_TIMEOUT', 60))
MiB = 1024 * 1024
SMALL = bytes(range(74))  # the reviewer's 74-byte image


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ['django.contrib.auth.hashers.MD5PasswordHasher']


@pytest.fixture
def frozen(pfs, settings):
    """A freezing TCP proxy in front of the local PFS server; the server dials pachd through it."""
    settings.PACHYDERM_GRPC_TIMEOUT = TIMEOUT
    proxy = FreezingProxy(pfs.address)
    yield proxy
    proxy.thaw()
    proxy.close()


@pytest.fixture(params=['lean', 'view'])
def path(request, monkeypatch):
    """Which of the two paths serves pfs:// URIs: the lean middleware, or Label Studio's view."""
    from io_storages.proxy_api import ResolveStorageUriAPIMixin
    from label_studio_pachyderm.media.middleware import PfsMediaMiddleware

    served_by_view = []
    original = ResolveStorageUriAPIMixin.resolve

    def spy(self, request, fileuri, instance):
        served_by_view.append(fileuri)
        return original(self, request, fileuri, instance)

    monkeypatch.setattr(ResolveStorageUriAPIMixin, 'resolve', spy)
    if request.param == 'view':  # the middleware steps aside: the request goes down the whole stack
        monkeypatch.setattr(PfsMediaMiddleware, '__call__', lambda self, req: self.get_response(req))
    return request.param, served_by_view


@pytest.fixture
def site(live_server, user, pfs_client, frozen, path):
    """images@master (small.png, big.bin of 48 MiB), a storage dialing through the proxy, one task."""
    from rest_framework.authtoken.models import Token

    pfs_client.create_repo('default', 'images')
    big = os.urandom(48 * MiB)
    commit = pfs_client.write_commit('default', 'images', 'master', [
        pachd.FileOp.put('small.png', SMALL), pachd.FileOp.put('new.png', SMALL[::-1]),
        pachd.FileOp.put('big.bin', big)])
    project = make_project(user)
    PachydermImportStorage.objects.create(project=project, title='src', pachd_address=f'grpc://{frozen.address}',
                                          repo='images', use_blob_urls=True)
    uris = {name: f'pfs://default/images@{commit}/{name}' for name in ('small.png', 'new.png', 'big.bin')}
    task = Task.objects.create(project=project, data={'image': uris['small.png'], 'other': uris['new.png'],
                                                      'video': uris['big.bin']})
    jwt = user.active_organization.jwt
    jwt.legacy_api_tokens_enabled = True
    jwt.save()
    session = requests.Session()
    session.headers['Authorization'] = f'Token {Token.objects.get_or_create(user=user)[0].key}'

    def url(name):
        fileuri = base64.urlsafe_b64encode(uris[name].encode()).decode()
        return f'{live_server.url}/tasks/{task.id}/resolve/?fileuri={fileuri}'

    return SimpleNamespace(url=url, session=session, big=big, path=path[0], served_by_view=path[1])


def _get(site, name, **kwargs):
    return site.session.get(site.url(name), timeout=(5, CLIENT_READ_TIMEOUT), **kwargs)


def _check_path(site):
    """The request went through the path under test."""
    if site.path == 'view':
        assert site.served_by_view, 'the view did not serve'
    else:
        assert not site.served_by_view, 'the lean path did not serve'


def _assert_error_status(response, started):
    elapsed = time.monotonic() - started
    assert elapsed < BOUND, f'answered after {elapsed:.1f} s'
    assert response.status_code == 424, (response.status_code, response.content[:200])
    body = response.json()
    assert 'pachd' in body['detail'], body  # the reason, readable: which pachd, what happened
    return elapsed


@pytest.mark.slow
def test_a_file_read_before_the_freeze_fails_with_a_status(site, frozen):
    """(a) The file's inspect is cached: the first read itself must fail, before the status line."""
    first = _get(site, 'small.png')
    assert first.status_code == 200 and first.content == SMALL
    frozen.freeze()
    started = time.monotonic()
    elapsed = _assert_error_status(_get(site, 'small.png'), started)
    _check_path(site)
    print(f'{site.path}: cached inspect, frozen pachd: 424 after {elapsed:.1f} s')
    frozen.thaw()
    _served_again(site, 'small.png', SMALL)


@pytest.mark.slow
def test_a_file_never_read_fails_with_a_status(site, frozen):
    """(b) Nothing cached: the inspect fails within the bound."""
    frozen.freeze()
    started = time.monotonic()
    elapsed = _assert_error_status(_get(site, 'new.png'), started)
    _check_path(site)
    print(f'{site.path}: new file, frozen pachd: 424 after {elapsed:.1f} s')
    frozen.thaw()
    _served_again(site, 'new.png', SMALL[::-1])


@pytest.mark.slow
def test_a_large_file_frozen_mid_stream_is_cut(site, frozen):
    """(c) Bytes flow, then pachd freezes: the response is cut within the bound (short body)."""
    size = len(site.big)
    response = _get(site, 'big.bin', stream=True)
    assert response.status_code == 200 and int(response.headers['Content-Length']) == size
    chunks = response.iter_content(64 * 1024)
    received = len(next(chunks))
    frozen.freeze()
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ChunkedEncodingError):  # urllib3: the body ended short
        for chunk in chunks:
            received += len(chunk)
    elapsed = time.monotonic() - started
    _check_path(site)
    assert received < size
    assert elapsed < BOUND, f'cut after {elapsed:.1f} s'
    print(f'{site.path}: frozen after the first bytes: cut after {elapsed:.1f} s, {received} of {size} bytes')
    frozen.thaw()
    _served_again(site, 'small.png', SMALL)


def _served_again(site, name, expected):
    """After the thaw the same URI is served again (the channel may take a moment to come back)."""
    deadline = time.monotonic() + 30
    while True:
        response = _get(site, name)
        if response.status_code == 200:
            assert response.content == expected
            return
        assert time.monotonic() < deadline, (response.status_code, response.content[:200])
        time.sleep(0.2)
