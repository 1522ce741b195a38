"""The time a listing gives each file, as pachd 2.12 gives it, and what the files preview says of it.

pachd builds every FileInfo of ListFile / WalkFile / InspectFile from the commit it was asked
about: ``file.commit`` is that commit and ``committed`` its ``finishing`` time
(src/server/pfs/server/source.go), for a file changed in that commit and for one committed long
before alike. The local PFS server answers the same, and the preview's ``last_modified`` is that
commit's time, with the commit named beside it (the wizard words it "in commit X, finished ...",
web/tests/touch-ups.test.ts). Real local PFS server over gRPC, real Label Studio API.
"""
import datetime
import time

import pytest
from pachyderm_sdk.api import pfs as pfs_api

from test_import import PNG, create, put

pytestmark = pytest.mark.django_db(transaction=True)


def _finishing(sdk_client, commit_id):
    info = sdk_client.pfs.inspect_commit(commit=pfs_api.Commit.from_uri(f'images@{commit_id}'))
    return info.finishing


@pytest.fixture
def two_commits(pfs_client):
    """old.png in a first commit, new.png in a second one, a little later."""
    pfs_client.create_repo('default', 'images')
    first = put(pfs_client, 'images', {'old.png': PNG})
    time.sleep(1.1)  # the two commits' times differ by at least a second, whatever the load
    second = put(pfs_client, 'images', {'new.png': PNG})
    return first, second


def test_every_file_of_a_listing_gets_the_listed_commits_finishing_time(sdk_client, two_commits):
    first, second = two_commits
    head = _finishing(sdk_client, second)
    assert head > _finishing(sdk_client, first)
    listed = {info.file.path: info for info in
              sdk_client.pfs.list_file(file=pfs_api.File.from_uri(f'images@{second}:/'))}
    assert set(listed) == {'/old.png', '/new.png'}
    for info in listed.values():
        # The file committed in the first commit too: pachd names the listed commit and its time.
        assert info.file.commit.id == second and info.committed == head, info
    old_at_head = sdk_client.pfs.inspect_file(file=pfs_api.File.from_uri(f'images@{second}:/old.png'))
    assert (old_at_head.file.commit.id, old_at_head.committed) == (second, head)
    old_at_first = sdk_client.pfs.inspect_file(file=pfs_api.File.from_uri(f'images@{first}:/old.png'))
    assert (old_at_first.file.commit.id, old_at_first.committed) == (first, _finishing(sdk_client, first))


def test_the_preview_gives_each_file_the_listed_commit_and_its_time(api, project, pfs, sdk_client, two_commits):
    _, second = two_commits
    body = {'project': project.id, 'pachd_address': pfs.address, 'repo': 'images', 'use_blob_urls': True}
    response = api.post('/api/storages/pachyderm/files', body, format='json')
    assert response.status_code == 200, response.content
    files = {f['key']: f for f in response.json()['files']}
    head = _finishing(sdk_client, second)
    assert set(files) == {'old.png', 'new.png'}
    for entry in files.values():
        # The same instant (the plugin's client and the sdk may round the nanoseconds apart by a microsecond).
        off = abs(datetime.datetime.fromisoformat(entry['last_modified']) - head)
        assert entry['commit'] == second and off < datetime.timedelta(milliseconds=1), (entry, head)
    assert create(api, project, pfs, use_blob_urls=True).status_code == 201
