"""Every plugin endpoint refuses anonymous users and users of another organization.

The routes and methods come from the plugin's URL conf (both layouts), plus Label Studio's
storage proxy for pfs:// URIs. For each one: the project's member gets through (so the
request is a real one), an anonymous user gets 401, and a user of another organization gets
403/404: never 2xx, never 5xx, never the other organization's data, and nothing changes.
Then the SSRF policy for the pachd addresses storages dial.
"""
from __future__ import annotations

import base64
import json

import pytest
from label_studio_pachyderm import pachd, urls
from label_studio_pachyderm.models import PachydermExportStorage, PachydermImportStorage
from tasks.models import Task

from conftest import make_project, make_user
from test_openapi import ROUTES

pytestmark = pytest.mark.django_db

TOKEN = 'victim-pachd-token-0b7e'  # the pachd token stored in the member's storages
TITLE = 'victim-storage-title-5c1d'
PNG = b'\x89PNG\r\n\x1a\n' + b'victim-image-bytes' * 8


def _plugin_routes():
    """(path template, method) of every plugin storage route, from the URL conf."""
    routes = []
    for pattern in urls.storage_patterns:
        view = pattern.callback.view_class
        template = '/api/storages/' + str(pattern.pattern).replace('<int:pk>', '{id}')
        for method in ('get', 'post', 'put', 'patch', 'delete'):
            if hasattr(view, method):
                routes.append((template, method))
    return routes


PLUGIN_ROUTES = _plugin_routes()
# Label Studio's storage proxy, which the plugin wraps with its membership check for pfs:// URIs.
PROXY_ROUTES = [
    ('/tasks/{task}/resolve/', 'get'), ('/projects/{project}/resolve/', 'get'),
    ('/tasks/{task}/presign/', 'get'), ('/projects/{project}/presign/', 'get'),
]
ALL_ROUTES = PLUGIN_ROUTES + PROXY_ROUTES
IDS = [f'{method.upper()} {path}' for path, method in ALL_ROUTES]


def test_every_documented_route_is_enumerated():
    enumerated = set(PLUGIN_ROUTES)
    for path, methods in ROUTES.items():
        for method in methods:
            assert (path, method) in enumerated, (path, method)


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Each test makes two users; the default hasher spends most of the test's time on them.
    settings.PASSWORD_HASHERS = ['django.contrib.auth.hashers.MD5PasswordHasher']


@pytest.fixture(scope='module')
def authed_pfs(tmp_path_factory):
    """A local PFS server that requires the member's token (shared: tests only add commits)."""
    from label_studio_pachyderm.localpfs import start_server

    with start_server('127.0.0.1', 0, str(tmp_path_factory.mktemp('pfs')), auth_token=TOKEN) as server:
        client = pachd.PachdClient(server.address, auth_token=TOKEN)
        client.create_repo('default', 'images')
        client.create_repo('default', 'labels')
        commit = client.write_commit('default', 'images', 'master', [pachd.FileOp.put('a.png', PNG)])
        server.commit = commit
        yield server


@pytest.fixture
def world(user, project, authed_pfs):
    """The member's project: a source storage, a target storage and a task with a pfs:// URI."""
    source = PachydermImportStorage.objects.create(
        project=project, title=TITLE, pachd_address=authed_pfs.address, auth_token=TOKEN, repo='images',
        use_blob_urls=True)
    target = PachydermExportStorage.objects.create(
        project=project, title=TITLE, pachd_address=authed_pfs.address, auth_token=TOKEN, repo='labels',
        prefix='ls', branch='staging', promote_to='master')  # labeling rounds on, so a member's promote works
    fileuri = f'pfs://default/images@{authed_pfs.commit}/a.png'
    task = Task.objects.create(project=project, data={'image': fileuri})
    return {'project': project, 'source': source, 'target': target, 'task': task, 'fileuri': fileuri,
            'pfs': authed_pfs}


def _client(user=None):
    from rest_framework.test import APIClient

    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def outsider(db):
    """A user of another organization, with a project of their own."""
    other = make_user('outsider@example.com', org_title='Other org')
    make_project(other, title='Outsider project')
    return other


def _request(client, world, path, method):
    export = '/export' in path
    storage = world['target' if export else 'source']
    url = path.format(id=storage.id, task=world['task'].id, project=world['project'].id)
    if url.startswith(('/tasks/', '/projects/')):
        encoded = base64.urlsafe_b64encode(world['fileuri'].encode()).decode()
        return client.get(f'{url}?fileuri={encoded}')
    if method == 'get':
        return client.get(url, {'project': world['project'].id} if '{id}' not in path else None)
    body = {}
    if not url.rstrip('/').endswith('sync'):
        # Everything right, token included: only who is asking is wrong.
        body = {'project': world['project'].id, 'title': 'changed', 'pachd_address': world['pfs'].address,
                'auth_token': TOKEN, 'repo': 'labels' if export else 'images'}
        if url.rstrip('/').endswith(('validate', 'files')):
            body['id'] = storage.id
    return getattr(client, method)(url, body, format='json')


def _content(response) -> bytes:
    return b''.join(response.streaming_content) if getattr(response, 'streaming', False) else response.content


def _snapshot(world):
    rows = []
    for model in (PachydermImportStorage, PachydermExportStorage):
        rows += list(model.objects.order_by('id').values())
    return json.dumps(rows, default=str), Task.objects.count()


# ----------------------------------------------------------------------------- the member gets through
@pytest.mark.parametrize('path, method', ALL_ROUTES, ids=IDS)
def test_member_is_served(world, user, path, method):
    """Control: the same request succeeds for a member, so the refusals below are about who asks."""
    response = _request(_client(user), world, path, method)
    assert 200 <= response.status_code < 300, (response.status_code, _content(response)[:300])


# ----------------------------------------------------------------------------- anonymous
@pytest.mark.parametrize('path, method', ALL_ROUTES, ids=IDS)
def test_anonymous_is_refused(world, path, method):
    before = _snapshot(world)
    response = _request(_client(), world, path, method)
    assert response.status_code == 401, (response.status_code, _content(response)[:300])
    _assert_nothing_leaked(response)
    assert _snapshot(world) == before


# ----------------------------------------------------------------------------- another organization
@pytest.mark.parametrize('path, method', ALL_ROUTES, ids=IDS)
def test_user_of_another_organization_is_refused(world, outsider, path, method):
    before = _snapshot(world)
    response = _request(_client(outsider), world, path, method)
    if path.endswith(('/form', '/form-layout/')):
        # The form layout is the same static file for everyone; it holds no organization's data.
        assert response.status_code == 200
    else:
        assert response.status_code in (403, 404), (response.status_code, _content(response)[:300])
    _assert_nothing_leaked(response)
    assert _snapshot(world) == before


def _assert_nothing_leaked(response):
    body = _content(response)
    for secret in (TOKEN.encode(), TITLE.encode(), PNG):
        assert secret not in body, secret[:20]


# ----------------------------------------------------------------------------- specific cross-organization moves
def test_create_with_another_storage_id_never_lends_its_token(world, outsider, monkeypatch):
    """An "id" in a create body must not make the connection check use that storage's token."""
    tokens = []
    real_get_client = pachd.get_client

    def spy(address, token=None, *args, **kwargs):
        tokens.append(token)
        return real_get_client(address, token, *args, **kwargs)

    monkeypatch.setattr(pachd, 'get_client', spy)
    own_project = outsider.active_organization.projects.first()
    for path in ('/api/storages/pachyderm/import/', '/api/storages/export/pachyderm'):
        storage = world['target' if 'export' in path else 'source']
        body = {'id': storage.id, 'project': own_project.id, 'pachd_address': world['pfs'].address,
                'repo': 'labels' if 'export' in path else 'images'}
        response = _client(outsider).post(path, body, format='json')
        assert response.status_code == 400, response.content  # the token is missing, and stays missing
        assert 'auth_token' in response.json()['validation_errors'], response.content
    assert TOKEN not in tokens


def test_update_cannot_move_a_storage_into_another_organization(world, outsider):
    """A user's own storage cannot be re-attached to a project of another organization."""
    own_project = outsider.active_organization.projects.first()
    mine = PachydermImportStorage.objects.create(
        project=own_project, title='mine', pachd_address=world['pfs'].address, auth_token=TOKEN, repo='images')
    for method in ('patch', 'put'):
        response = getattr(_client(outsider), method)(
            f'/api/storages/pachyderm/import/{mine.id}/',
            {'project': world['project'].id, 'repo': 'images', 'pachd_address': world['pfs'].address},
            format='json')
        assert response.status_code == 403, response.content
        mine.refresh_from_db()
        assert mine.project_id == own_project.id


def test_checks_of_another_organizations_project_are_refused(world, outsider):
    body = {'project': world['project'].id, 'pachd_address': world['pfs'].address, 'auth_token': TOKEN,
            'repo': 'images'}
    for path in ('/api/storages/pachyderm/validate', '/api/storages/pachyderm/files',
                 '/api/storages/export/pachyderm/validate'):
        response = _client(outsider).post(path, body, format='json')
        assert response.status_code == 403, (path, response.content)


def test_proxy_refuses_crafted_uris_of_the_other_organization(world, outsider):
    """An outsider's own task cannot be used to read the member's repo through the proxy either."""
    own_project = outsider.active_organization.projects.first()
    own_task = Task.objects.create(project=own_project, data={'image': 'x'})
    encoded = base64.urlsafe_b64encode(world['fileuri'].encode()).decode()
    for url in (f'/tasks/{own_task.id}/resolve/', f'/projects/{own_project.id}/resolve/'):
        response = _client(outsider).get(f'{url}?fileuri={encoded}')
        assert response.status_code in (403, 404), (url, response.status_code)
        assert PNG not in _content(response)


# ----------------------------------------------------------------------------- SSRF policy for pachd addresses
@pytest.fixture
def images(pfs_client):
    pfs_client.create_repo('default', 'images')
    pfs_client.write_commit('default', 'images', 'master', [pachd.FileOp.put('a.png', PNG)])


def _validate(api, project, address):
    body = {'project': project.id, 'pachd_address': address, 'repo': 'images'}
    return api.post('/api/storages/pachyderm/validate', body, format='json')


@pytest.mark.parametrize('allowed, address, ok', [
    ([], '127.0.0.1:{port}', False),  # loopback is refused by default
    ([], 'localhost:{port}', False),  # so is a name that resolves to it
    (['127.0.0.1:{port}'], '127.0.0.1:{port}', True),
    (['127.0.0.1:{port}'], 'grpc://127.0.0.1:{port}', True),
    (['127.0.0.1'], '127.0.0.1:{port}', True),  # no port: any port
    (['127.0.0.1:*'], '127.0.0.1:{port}', True),
    (['127.0.0.1:1'], '127.0.0.1:{port}', False),  # another port
    (['localhost:{port}'], '127.0.0.1:{port}', False),  # matched on the host as written, not as resolved
    (['localhost:{port}'], 'localhost:{port}', True),
], ids=lambda value: repr(value))
def test_ssrf_allowlist(api, project, pfs, images, settings, allowed, address, ok):
    settings.PACHYDERM_ALLOWED_HOSTS = [entry.format(port=pfs.port) for entry in allowed]
    response = _validate(api, project, address.format(port=pfs.port))
    if ok:
        assert response.status_code == 200, response.content
    else:
        assert response.status_code == 400, response.content
        message = json.dumps(response.json()['validation_errors']['pachd_address'])
        assert 'SSRF' in message and 'PACHYDERM_ALLOWED_HOSTS' in message, message


def test_ssrf_follows_label_studio_settings(api, project, pfs, images, settings):
    settings.PACHYDERM_ALLOWED_HOSTS = []
    address = f'127.0.0.1:{pfs.port}'
    settings.SSRF_PROTECTION_ENABLED = False  # Label Studio's switch turns the check off
    assert _validate(api, project, address).status_code == 200
    settings.SSRF_PROTECTION_ENABLED = True
    settings.USE_DEFAULT_BANNED_SUBNETS = False  # Label Studio's banned ranges decide
    assert _validate(api, project, address).status_code == 200
    settings.USER_ADDITIONAL_BANNED_SUBNETS = ['127.0.0.0/8']
    assert _validate(api, project, address).status_code == 400


def test_ssrf_is_checked_on_every_dial_not_only_on_save(api, user, project, pfs, images, settings):
    """A storage saved while its address was allowed cannot sync or stream once it is not."""
    storage = PachydermImportStorage.objects.create(
        project=project, title='src', pachd_address=pfs.address, repo='images', use_blob_urls=True)
    sync = api.post(f'/api/storages/pachyderm/{storage.id}/sync')
    assert sync.status_code == 200, sync.content
    task = Task.objects.filter(project=project).first()
    fileuri = next(v for v in task.data.values() if isinstance(v, str) and v.startswith('pfs://'))
    encoded = base64.urlsafe_b64encode(fileuri.encode()).decode()
    assert _content(api.get(f'/tasks/{task.id}/resolve/?fileuri={encoded}')) == PNG

    settings.PACHYDERM_ALLOWED_HOSTS = []
    refused = api.post(f'/api/storages/pachyderm/{storage.id}/sync')
    # The sync fails before dialling: the storage says so (the UI shows its status, not a runtime error).
    assert refused.status_code == 200, refused.content
    assert refused.json()['status'] == 'failed' and 'SSRF' in refused.json()['traceback'], refused.content
    assert Task.objects.filter(project=project).count() == 1
    proxied = api.get(f'/tasks/{task.id}/resolve/?fileuri={encoded}')
    assert proxied.status_code >= 400 and PNG not in _content(proxied)
