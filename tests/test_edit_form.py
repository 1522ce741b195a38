"""What the storage edit form is given: whether a token is stored, never the token.

Label Studio's wizard masks every secret field of a storage it edits; the plugin's page
script empties the field when ``auth_token_set`` is false (web/tests/token-mask.test.ts).
Real Label Studio API against a real local PFS server.
"""
import pytest

from conftest import TOKEN
from test_import import PNG, create, put

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def images(pfs_client):
    pfs_client.create_repo('default', 'images')
    put(pfs_client, 'images', {'a.png': PNG})


def _listings(api, project, sid, kind=''):
    base = f'/api/storages/{kind}pachyderm'
    return [api.get(f'{base}/{sid}'), api.get(f'{base}?project={project.id}'),
            api.get(f'/api/storages/{kind.rstrip("/")}?project={project.id}')]


@pytest.mark.parametrize('kind', ['', 'export/'])
def test_a_storage_without_a_token_says_so(api, project, pfs, pfs_client, images, kind):
    pfs_client.create_repo('default', 'labels')
    body = {'project': project.id, 'title': 't', 'pachd_address': pfs.address, 'repo': 'labels' if kind else 'images'}
    created = api.post(f'/api/storages/{kind}pachyderm', body, format='json')
    assert created.status_code == 201, created.content
    assert created.json()['auth_token_set'] is False
    for response in _listings(api, project, created.json()['id'], kind):
        assert response.status_code == 200, response.content
        items = response.json() if isinstance(response.json(), list) else [response.json()]
        assert [s['auth_token_set'] for s in items if s.get('type') == 'pachyderm'] == [False], response.content


@pytest.mark.pfs_auth
def test_a_storage_with_a_token_says_so_and_never_returns_it(api, project, pfs):
    from label_studio_pachyderm import pachd

    authed = pachd.PachdClient(pfs.address, auth_token=TOKEN)
    authed.create_repo('default', 'images')
    put(authed, 'images', {'a.png': PNG})
    created = create(api, project, pfs, use_blob_urls=True, auth_token=TOKEN)
    assert created.status_code == 201, created.content
    sid = created.json()['id']
    # An edit that leaves the field alone (the form sends no token) keeps it stored.
    patched = api.patch(f'/api/storages/pachyderm/{sid}', {'title': 'renamed'}, format='json')
    assert patched.status_code == 200, patched.content
    for response in [created, patched, *_listings(api, project, sid)]:
        assert TOKEN not in response.content.decode()
        items = response.json() if isinstance(response.json(), list) else [response.json()]
        assert [s['auth_token_set'] for s in items if s.get('type') == 'pachyderm'] == [True], response.content
