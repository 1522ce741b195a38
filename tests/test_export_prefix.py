"""The export folder (prefix) is checked against pachd's rules for file paths before it is saved.

pachd 2.x writes only paths of printable ASCII without glob characters (* ? [ ] { } ! ( ) @ + ^)
and without "." / ".." elements; a folder outside those rules would make every export fail.
Real Label Studio models and API, the local PFS server (which applies pachd's rule) over gRPC.
"""
import json

import pytest
from label_studio_pachyderm.models import PachydermExportStorage
from tasks.models import Task

pytestmark = pytest.mark.django_db(transaction=True)

RESULT = [{'from_name': 'label', 'to_name': 'image', 'type': 'rectanglelabels', 'id': 'r1',
           'value': {'x': 1, 'y': 2, 'width': 3, 'height': 4, 'rotation': 0, 'rectanglelabels': ['Cat']}}]


@pytest.fixture
def labels(pfs_client):
    pfs_client.create_repo('default', 'labels')


def body(project, pfs, prefix):
    return {'project': project.id, 'title': 'labels', 'pachd_address': pfs.address, 'repo': 'labels',
            'prefix': prefix}


@pytest.mark.parametrize('prefix, words', [
    ('out(1)', "'(' is not allowed: pachd refuses the glob characters"),
    ('données', "'é' is not allowed: pachd accepts only printable ASCII"),
    ('a*b', "'*' is not allowed"),
    ('x/../y', '"." and ".." are not allowed'),
    ('tab\there', "'\\t' is not allowed"),
])
def test_a_folder_pachd_refuses_is_a_400_on_prefix(api, project, pfs, labels, prefix, words):
    for route in ('/api/storages/export/pachyderm/validate', '/api/storages/export/pachyderm'):
        r = api.post(route, body(project, pfs, prefix), format='json')
        assert r.status_code == 400, r.content
        errors = r.json()['validation_errors']
        assert list(errors) == ['prefix'], errors
        assert words in errors['prefix'][0] and 'every export would fail' in errors['prefix'][0], errors
    assert not PachydermExportStorage.objects.exists()

    good = api.post('/api/storages/export/pachyderm', body(project, pfs, 'labels'), format='json')
    assert good.status_code == 201, good.content
    r = api.patch(f'/api/storages/export/pachyderm/{good.json()["id"]}', {'prefix': prefix}, format='json')
    assert r.status_code == 400 and 'prefix' in r.json()['validation_errors'], r.content
    assert PachydermExportStorage.objects.get().prefix == 'labels'


def test_a_folder_with_characters_pachd_accepts_exports(api, project, pfs, pfs_client, labels):
    prefix = "team a/v#2%,=~'$&;"  # space and punctuation outside pachd's glob set
    r = api.post('/api/storages/export/pachyderm', body(project, pfs, prefix), format='json')
    assert r.status_code == 201, r.content
    task = Task.objects.create(project=project, data={'image': '/img/1.png'})
    a = api.post(f'/api/tasks/{task.id}/annotations/', {'result': RESULT}, format='json')
    assert a.status_code == 201, a.content
    path = f'{prefix}/{task.id}.json'
    assert [f.path for f in pfs_client.list_files('default', 'labels', 'master')] == [path]
    exported = json.loads(pfs_client.get_file_bytes('default', 'labels', 'master', path))
    assert [x['id'] for x in exported['annotations']] == [a.json()['id']]
    storage = api.post(f'/api/storages/export/pachyderm/{r.json()["id"]}/sync').json()
    assert storage['status'] == 'completed', storage
