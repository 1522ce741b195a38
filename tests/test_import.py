"""Source storage: REST API + sync + proxy against real Label Studio and a local PFS over gRPC."""
import base64
import json

import pytest
from label_studio_pachyderm import pachd, uri
from label_studio_pachyderm.models import PachydermImportStorage, PachydermImportStorageLink
from tasks.models import Task

pytestmark = pytest.mark.django_db(transaction=True)

PNG = b'\x89PNG\r\n\x1a\n' + bytes(range(256)) * 40  # 10 KiB+ of bytes with a PNG signature


def put(client, repo, files, branch='master', deletes=()):
    ops = [pachd.FileOp.put(p, d if isinstance(d, bytes) else d.encode()) for p, d in files.items()]
    ops += [pachd.FileOp.remove(p) for p in deletes]
    return client.write_commit('default', repo, branch, ops)


def create(api, project, pfs, **fields):
    body = {'project': project.id, 'title': 'src', 'pachd_address': pfs.address, 'repo': 'images', **fields}
    return api.post('/api/storages/pachyderm', body, format='json')


def sync(api, storage_id, **body):
    response = api.post(f'/api/storages/pachyderm/{storage_id}/sync', body, format='json')
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def images(pfs_client):
    pfs_client.create_repo('default', 'images')
    commit = put(pfs_client, 'images', {'a.png': PNG, 'b.png': PNG, 'sub/c.png': PNG, 'notes.txt': 'x'})
    return commit


# ----------------------------------------------------------------------------- blob mode
def test_blob_sync_creates_commit_pinned_tasks(api, project, pfs, images):
    r = create(api, project, pfs, use_blob_urls=True, regex_filter=r'\.png$')
    assert r.status_code == 201, r.content
    storage = sync(api, r.json()['id'])
    assert storage['status'] == 'completed', storage
    assert storage['last_sync_count'] == 3
    assert storage['last_synced_commit'] == images
    assert storage['meta']['commit'] == images and storage['meta']['sync_mode'] == 'full'

    tasks = Task.objects.filter(project=project).order_by('inner_id')
    assert [t.inner_id for t in tasks] == [1, 2, 3]
    uris = sorted(t.data['$undefined$'] if '$undefined$' in t.data else t.data['image'] for t in tasks)
    assert uris == [f'pfs://default/images@{images}/{p}' for p in ('a.png', 'b.png', 'sub/c.png')]
    link = PachydermImportStorageLink.objects.get(key='sub/c.png')
    assert link.commit == images and link.task.meta['pachyderm']['commit'] == images
    project.refresh_from_db()
    assert project.tasks.count() == 3
    # The data-column counters LS's post_save signal keeps (bulk_create sends none): one column, 3 tasks.
    assert list(project.summary.all_data_columns.values()) == [3], project.summary.all_data_columns


def test_resync_is_incremental_and_never_duplicates(api, project, pfs, pfs_client, images):
    sid = create(api, project, pfs, use_blob_urls=True, regex_filter=r'\.png$').json()['id']
    sync(api, sid)
    second = put(pfs_client, 'images', {'d.png': PNG, 'a.png': PNG + b'changed'}, deletes=['b.png'])
    storage = sync(api, sid)
    assert storage['meta']['sync_mode'] == 'incremental'
    assert storage['meta']['previous_commit'] == images and storage['meta']['commit'] == second
    assert storage['last_sync_count'] == 1  # d.png only; a.png stays pinned to its first commit
    assert Task.objects.filter(project=project).count() == 4
    assert not PachydermImportStorageLink.objects.get(key='b.png').object_exists
    a_task = PachydermImportStorageLink.objects.get(key='a.png').task
    assert images in json.dumps(a_task.data)
    # Same head again: nothing new, nothing duplicated.
    assert sync(api, sid)['last_sync_count'] == 0
    # A forced full rescan finds everything already imported.
    storage = sync(api, sid, full_rescan=True)
    assert storage['meta']['sync_mode'] == 'full' and storage['last_sync_count'] == 0
    assert Task.objects.filter(project=project).count() == 4


def test_full_rescan_marks_the_tasks_of_files_gone_since(api, project, pfs, pfs_client, images):
    sid = create(api, project, pfs, use_blob_urls=True, regex_filter=r'\.png$').json()['id']
    assert sync(api, sid)['meta']['links_marked_missing'] == 0  # a first sync: nothing to compare with
    put(pfs_client, 'images', {}, deletes=['a.png'])
    storage = sync(api, sid, full_rescan=True)  # a full listing, not the diff, has to notice it
    assert storage['meta']['sync_mode'] == 'full' and storage['meta']['links_marked_missing'] == 1
    assert not PachydermImportStorageLink.objects.get(key='a.png').object_exists
    assert PachydermImportStorageLink.objects.get(key='b.png').object_exists


def test_prefix_recursive_off_and_pinned_commit(api, project, pfs, pfs_client, images):
    put(pfs_client, 'images', {'sub/deeper/e.png': PNG, 'sub/f.png': PNG})
    sid = create(api, project, pfs, use_blob_urls=True, prefix='sub', recursive_scan=False).json()['id']
    assert sync(api, sid)['last_sync_count'] == 2  # sub/c.png, sub/f.png; not sub/deeper/e.png
    keys = set(PachydermImportStorageLink.objects.values_list('key', flat=True))
    assert keys == {'sub/c.png', 'sub/f.png'}

    other = create(api, project, pfs, use_blob_urls=True, commit=images, regex_filter=r'\.png$').json()['id']
    storage = sync(api, other)
    assert storage['meta']['commit'] == images and storage['last_sync_count'] == 3


# ----------------------------------------------------------------------------- commits finished with an error
def failed_commit(pfs, repo, files, error='upload failed half-way'):
    """A commit finished with an error (FinishCommit.error), as a failed upload or pipeline job leaves it."""
    from pachyderm_sdk import Client
    from pachyderm_sdk.api import pfs as pfs_api

    sdk = Client(host='127.0.0.1', port=pfs.port)
    commit = sdk.pfs.start_commit(branch=pfs_api.Branch.from_uri(f'{repo}@master'))
    for path, data in files.items():
        sdk.pfs.put_file_from_bytes(commit=commit, path='/' + path, data=data)
    sdk.pfs.finish_commit(commit=commit, error=error)
    info = sdk.pfs.inspect_commit(commit=commit, wait=pfs_api.CommitState.FINISHED)
    assert info.error == error  # the server keeps the error
    return commit.id


def test_commit_finished_with_an_error_is_never_imported_nor_recorded(api, project, pfs, pfs_client, images):
    sid = create(api, project, pfs, use_blob_urls=True, regex_filter=r'\.png$').json()['id']
    bad = failed_commit(pfs, 'images', {'half.png': PNG})
    info = pfs_client.inspect_commit('default', 'images', bad)
    assert info.finished and info.error == 'upload failed half-way' and not info.good

    storage = sync(api, sid)
    assert storage['status'] == 'completed', storage
    assert storage['last_synced_commit'] == images and storage['meta']['commit'] == images
    assert storage['meta']['skipped_commits'] == [
        {'commit': bad, 'state': 'failed', 'error': 'upload failed half-way'}]
    assert f'{bad} finished with an error (upload failed half-way)' in storage['meta']['skipped_note']
    assert not PachydermImportStorageLink.objects.filter(key='half.png').exists()
    assert storage['last_sync_count'] == 3

    # The next good commit builds on the last good one; the incremental sync diffs from it.
    good = put(pfs_client, 'images', {'d.png': PNG})
    storage = sync(api, sid)
    assert storage['meta']['sync_mode'] == 'incremental' and storage['meta']['previous_commit'] == images
    assert storage['last_synced_commit'] == good and storage['meta']['skipped_commits'] == []
    assert storage['last_sync_count'] == 1
    assert sorted(PachydermImportStorageLink.objects.values_list('key', flat=True)) == [
        'a.png', 'b.png', 'd.png', 'sub/c.png']


def test_a_branch_whose_only_commit_failed_imports_nothing(api, project, pfs, pfs_client):
    pfs_client.create_repo('default', 'images')
    bad = failed_commit(pfs, 'images', {'a.png': PNG})
    sid = PachydermImportStorage.objects.create(project=project, pachd_address=pfs.address, repo='images',
                                                use_blob_urls=True).id
    storage = sync(api, sid)
    assert storage['status'] == 'completed' and storage['meta']['sync_mode'] == 'waiting', storage
    assert storage['last_synced_commit'] == '' and storage['last_sync_count'] == 0
    assert storage['meta']['skipped_commits'][0]['commit'] == bad
    assert Task.objects.filter(project=project).count() == 0


def test_a_pinned_commit_that_failed_is_refused(api, project, pfs, pfs_client, images):
    bad = failed_commit(pfs, 'images', {'half.png': PNG}, error='job 42 failed')
    r = create(api, project, pfs, use_blob_urls=True, commit=bad)
    assert r.status_code == 400, r.content
    assert 'finished with an error (job 42 failed)' in r.json()['validation_errors']['commit'][0]
    sid = PachydermImportStorage.objects.create(project=project, pachd_address=pfs.address, repo='images',
                                                use_blob_urls=True, commit=bad).id
    storage = sync(api, sid)
    assert storage['status'] == 'failed' and 'job 42 failed' in storage['traceback'], storage
    assert storage['last_synced_commit'] == '' and Task.objects.filter(project=project).count() == 0


# ----------------------------------------------------------------------------- preview and check read what sync reads
def open_commit(pfs, repo, files):
    """A head commit a writer still has open (its files are visible by commit id)."""
    from pachyderm_sdk import Client
    from pachyderm_sdk.api import pfs as pfs_api

    sdk = Client(host='127.0.0.1', port=pfs.port)
    commit = sdk.pfs.start_commit(branch=pfs_api.Branch.from_uri(f'{repo}@master'))
    for path, data in files.items():
        sdk.pfs.put_file_from_bytes(commit=commit, path='/' + path, data=data)
    return commit.id


def files_preview(api, project, pfs, **fields):
    body = {'project': project.id, 'pachd_address': pfs.address, 'repo': 'images', 'use_blob_urls': True, **fields}
    r = api.post('/api/storages/pachyderm/files', body, format='json')
    assert r.status_code == 200, r.content
    return r.json()['files']


@pytest.mark.parametrize('make_head', ['open', 'failed'])
def test_preview_and_check_read_the_commit_sync_reads(api, project, pfs, pfs_client, images, make_head):
    if make_head == 'open':
        head = open_commit(pfs, 'images', {'new.png': PNG})
    else:
        head = failed_commit(pfs, 'images', {'new.png': PNG})
    assert pfs_client.branch_head('default', 'images', 'master') == head

    files = files_preview(api, project, pfs, regex_filter=r'\.png$')
    assert [f['key'] for f in files] == ['a.png', 'b.png', 'sub/c.png']
    assert {f['commit'] for f in files} == {images}

    # A filter only the head's file matches: the check refuses it, as the sync would import nothing.
    body = {'project': project.id, 'pachd_address': pfs.address, 'repo': 'images', 'regex_filter': r'new\.png$'}
    r = api.post('/api/storages/pachyderm/validate', body, format='json')
    assert r.status_code == 400, r.content
    assert f'No files matching' in r.json()['validation_errors']['prefix'][0]
    assert images in r.json()['validation_errors']['prefix'][0]

    sid = create(api, project, pfs, use_blob_urls=True, regex_filter=r'\.png$').json()['id']
    storage = sync(api, sid)
    assert storage['last_synced_commit'] == images and storage['last_sync_count'] == len(files)


def test_check_refuses_a_branch_without_a_finished_commit(api, project, pfs, pfs_client):
    pfs_client.create_repo('default', 'images')
    head = open_commit(pfs, 'images', {'a.png': PNG})
    body = {'project': project.id, 'pachd_address': pfs.address, 'repo': 'images'}
    r = api.post('/api/storages/pachyderm/validate', body, format='json')
    assert r.status_code == 400, r.content
    message = r.json()['validation_errors']['branch'][0]
    assert 'has no commit finished without error yet' in message and f'{head} is still open' in message
    assert files_preview(api, project, pfs) == []


@pytest.mark.slow
def test_files_check_scans_past_ten_thousand_files(api, project, pfs, pfs_client):
    pfs_client.create_repo('default', 'images')
    commit = put(pfs_client, 'images', {f'n/{i:05d}.txt': b'' for i in range(10_050)})
    body = {'project': project.id, 'pachd_address': pfs.address, 'repo': 'images', 'regex_filter': r'\.png$'}
    r = api.post('/api/storages/pachyderm/validate', body, format='json')
    assert r.status_code == 400, r.content
    assert r.json()['validation_errors']['prefix'] == [
        f"No files matching {body['regex_filter']!r} under the repo root in default/images@{commit} "
        '(10050 files listed, none selected)']
    late = put(pfs_client, 'images', {'n/zz.png': PNG})  # the only match, after every other file
    r = api.post('/api/storages/pachyderm/validate', body, format='json')
    assert r.status_code == 200, r.content
    assert late


# ----------------------------------------------------------------------------- task (JSON) mode
def test_json_array_and_jsonl_tasks_with_bad_files_reported(api, text_project, pfs, pfs_client):
    pfs_client.create_repo('default', 'tasks')
    put(pfs_client, 'tasks', {
        'one.json': json.dumps({'text': 'single'}),
        'many.json': json.dumps([{'text': 'a1'}, {'data': {'text': 'a2'}}]),
        'lines.jsonl': '{"text": "l1"}\n{"text": "l2"}\n{"text": "l3"}\n',
        'broken.json': '{"text": ',
        'image.png': PNG,
    })
    r = create(api, text_project, pfs, repo='tasks')
    assert r.status_code == 201, r.content
    storage = sync(api, r.json()['id'])
    assert storage['status'] == 'completed_with_errors'
    assert storage['last_sync_count'] == 6
    assert 'broken.json' in storage['traceback'] and 'image.png' in storage['traceback']
    texts = sorted(t.data['text'] for t in Task.objects.filter(project=text_project))
    assert texts == ['a1', 'a2', 'l1', 'l2', 'l3', 'single']
    rows = dict(PachydermImportStorageLink.objects.filter(key='lines.jsonl').values_list('row_index', 'key'))
    assert set(rows) == {0, 1, 2}

    # Appending lines to the JSONL imports the new rows only.
    put(pfs_client, 'tasks', {'lines.jsonl': '{"text": "l1"}\n{"text": "l2"}\n{"text": "l3"}\n{"text": "l4"}\n'})
    storage = sync(api, r.json()['id'])
    assert storage['last_sync_count'] == 1
    assert Task.objects.filter(project=text_project, data__text='l4').count() == 1


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize('fields, field, words', [
    ({'repo': 'nope'}, 'repo', 'nope'),
    ({'branch': 'dev'}, 'branch', 'dev'),
    ({'commit': 'f' * 32}, 'commit', 'f' * 32),
    ({'regex_filter': '(['}, 'regex_filter', 'Invalid regular expression'),
    ({'prefix': 'missing'}, 'prefix', 'missing'),
    ({'regex_filter': r'\.tiff$'}, 'prefix', 'No files'),
    ({'pachd_address': 'grpc://127.0.0.1:1'}, 'pachd_address', 'pachd'),
    ({'pachd_address': 'ftp://x:1'}, 'pachd_address', 'ftp'),
    ({'pachd_address': ''}, 'pachd_address', 'required'),
])
def test_validate_names_the_field_to_fix(api, project, pfs, images, fields, field, words):
    body = {'project': project.id, 'pachd_address': pfs.address, 'repo': 'images', **fields}
    r = api.post('/api/storages/pachyderm/validate', body, format='json')
    assert r.status_code == 400, r.content
    errors = r.json()['validation_errors'] if 'validation_errors' in r.json() else r.json()
    assert field in errors, errors
    assert words.lower() in json.dumps(errors).lower()
    # Same through the explicit layout.
    r2 = api.post('/api/storages/pachyderm/import/validate/', body, format='json')
    assert r2.status_code == 400


def test_validate_with_id_does_not_save(api, project, pfs, images):
    sid = create(api, project, pfs, use_blob_urls=True).json()['id']
    r = api.post('/api/storages/pachyderm/validate', {'id': sid, 'project': project.id, 'repo': 'nope',
                                                      'pachd_address': pfs.address}, format='json')
    assert r.status_code == 400
    assert PachydermImportStorage.objects.get(id=sid).repo == 'images'
    ok = api.post('/api/storages/pachyderm/validate', {'id': sid, 'project': project.id, 'prefix': 'sub',
                                                       'pachd_address': pfs.address, 'repo': 'images'}, format='json')
    assert ok.status_code == 200, ok.content
    assert PachydermImportStorage.objects.get(id=sid).prefix == ''


@pytest.mark.slow
def test_sync_of_unreachable_pachd_fails_readably(api, project, pfs, images):
    sid = create(api, project, pfs, use_blob_urls=True).json()['id']
    pfs.stop()
    r = api.post(f'/api/storages/pachyderm/{sid}/sync', format='json')
    assert r.status_code == 200  # the storage, failed with the reason (tests/test_dial.py)
    assert r.json()['status'] == 'failed' and 'cannot reach pachd' in r.json()['traceback']


# ----------------------------------------------------------------------------- secrets
def test_auth_token_is_write_only_and_kept(api, project, tmp_path, pfs_client):
    from label_studio_pachyderm.localpfs import start_server

    token = 'secret-token-do-not-leak'
    with start_server('127.0.0.1', 0, str(tmp_path / 'authpfs'), auth_token=token) as server:
        authed = pachd.PachdClient(server.address, auth_token=token)
        authed.create_repo('default', 'images')
        put(authed, 'images', {'a.png': PNG})
        bad = create(api, project, server, use_blob_urls=True, auth_token='wrong')
        assert bad.status_code == 400 and 'auth_token' in json.dumps(bad.json())
        assert 'wrong' not in bad.content.decode()
        r = create(api, project, server, use_blob_urls=True, auth_token=token)
        assert r.status_code == 201, r.content
        sid = r.json()['id']
        for expected, response in (
            (201, r), (200, api.get(f'/api/storages/pachyderm/{sid}')),
            (200, api.get(f'/api/storages/pachyderm/?project={project.id}')),
            (200, api.get(f'/api/storages/?project={project.id}')),
            (200, api.patch(f'/api/storages/pachyderm/{sid}', {'title': 'renamed', 'auth_token': ''}, format='json')),
            (200, api.post(f'/api/storages/pachyderm/{sid}/sync')),
        ):
            assert token not in response.content.decode()
            assert response.status_code == expected, response.content
        storage = PachydermImportStorage.objects.get(id=sid)
        assert storage.auth_token == token and storage.title == 'renamed'
        assert storage.status == 'completed' and token not in json.dumps(storage.meta) + (storage.traceback or '')

        # The stored token never follows the storage to another address (it would be sent there).
        same = server.address.split('://')[-1]  # the same address, written without its scheme
        assert api.patch(f'/api/storages/pachyderm/{sid}', {'pachd_address': same}, format='json').status_code == 200
        for route, body in ((f'/api/storages/pachyderm/{sid}', {'pachd_address': pfs_client.address.target}),
                            ('/api/storages/pachyderm/validate', {'id': sid, 'pachd_address': '127.0.0.1:1'})):
            moved = api.patch(route, body, format='json') if 'validate' not in route else api.post(
                route, body, format='json')
            assert moved.status_code == 400, moved.content
            assert 'Enter the auth token again' in moved.json()['validation_errors']['auth_token'][0]
        assert PachydermImportStorage.objects.get(id=sid).pachd_address == same


# ----------------------------------------------------------------------------- proxy
def _proxy(api, task, headers=None):
    fileuri = next(v for v in task.data.values() if isinstance(v, str) and v.startswith('pfs://'))
    encoded = base64.urlsafe_b64encode(fileuri.encode()).decode()
    return api.get(f'/tasks/{task.id}/resolve/?fileuri={encoded}', headers=headers or {})


def test_proxy_streams_full_file_and_ranges(api, project, pfs, images):
    sid = create(api, project, pfs, use_blob_urls=True, regex_filter=r'a\.png$').json()['id']
    sync(api, sid)
    task = Task.objects.get(project=project)
    full = _proxy(api, task)
    assert full.status_code == 200
    assert b''.join(full.streaming_content) == PNG
    assert full['Content-Type'] == 'image/png' and full['Content-Length'] == str(len(PNG))
    part = _proxy(api, task, {'Range': 'bytes=100-199'})
    assert part.status_code == 206
    assert b''.join(part.streaming_content) == PNG[100:200]
    assert part['Content-Range'] == f'bytes 100-199/{len(PNG)}'
    tail = _proxy(api, task, {'Range': f'bytes={len(PNG) - 10}-'})
    assert b''.join(tail.streaming_content) == PNG[-10:]


def test_storage_resolves_only_its_own_repo_and_prefix(project, images):
    storage = PachydermImportStorage(project=project, repo='images', prefix='sub', pachd_address='x:1')
    good = f'pfs://default/images@{images}/sub/c.png'
    assert storage.can_resolve_url(good)
    for bad in [
        f'pfs://default/other@{images}/sub/c.png', f'pfs://proj2/images@{images}/sub/c.png',
        f'pfs://default/images@{images}/a.png', f'pfs://default/images@{images}/sub/../a.png',
        's3://bucket/sub/c.png', '', None, 42, {'a': 1}, ['x'], 'pfs://', 'pfs://default/images/sub/c.png',
        '\x00', 'pfs://default/images@' + 'a' * 5000,
    ]:
        assert storage.can_resolve_url(bad) is False, bad
    assert uri.parse(good).path == 'sub/c.png'


def test_proxy_refuses_uri_of_another_repo(api, project, pfs, pfs_client, images):
    pfs_client.create_repo('default', 'secret')
    other_commit = put(pfs_client, 'secret', {'s.png': PNG})
    sid = create(api, project, pfs, use_blob_urls=True, regex_filter=r'a\.png$').json()['id']
    sync(api, sid)
    task = Task.objects.get(project=project)
    crafted = base64.urlsafe_b64encode(f'pfs://default/secret@{other_commit}/s.png'.encode()).decode()
    r = api.get(f'/tasks/{task.id}/resolve/?fileuri={crafted}')
    assert r.status_code == 404


# ----------------------------------------------------------------------------- API surface
def test_type_listed_and_files_preview(api, project, pfs, images):
    types = api.get('/api/storages/types').json()
    assert {'name': 'pachyderm', 'title': 'Pachyderm'} in types
    assert {t['name'] for t in types} >= {'s3', 'gcs', 'azure', 'redis', 'pachyderm'}
    export_types = api.get('/api/storages/export/types').json()
    assert 'pachyderm' in {t['name'] for t in export_types}
    r = api.post('/api/storages/pachyderm/files', {'project': project.id, 'pachd_address': pfs.address,
                                                   'repo': 'images', 'limit': 2}, format='json')
    assert r.status_code == 200, r.content
    files = r.json()['files']
    assert [f['key'] for f in files[:2]] == ['a.png', 'b.png'] and files[2]['key'] is None
    assert files[0]['size'] == len(PNG) and files[0]['commit'] == images
    sid = create(api, project, pfs, use_blob_urls=True).json()['id']
    listed = api.get(f'/api/storages/?project={project.id}').json()
    assert any(s['type'] == 'pachyderm' and s['id'] == sid for s in listed)
    assert api.get('/api/storages/pachyderm/form').status_code == 200


def test_outsider_cannot_see_or_use_storage(api, outsider_api, project, pfs, images):
    sid = create(api, project, pfs, use_blob_urls=True).json()['id']
    assert outsider_api.get(f'/api/storages/pachyderm/{sid}').status_code == 403
    assert outsider_api.post(f'/api/storages/pachyderm/{sid}/sync').status_code == 403
    assert outsider_api.get(f'/api/storages/pachyderm/?project={project.id}').status_code == 403
    r = outsider_api.post('/api/storages/pachyderm/validate', {'id': sid}, format='json')
    assert r.status_code == 403, r.content
    # The media proxy too: the owner gets the bytes, a user of another organization does not.
    sync(api, sid)
    task = Task.objects.filter(project=project).first()
    assert _proxy(api, task).status_code == 200
    denied = _proxy(outsider_api, task)
    assert denied.status_code == 403
    assert PNG not in (b''.join(denied.streaming_content) if denied.streaming else denied.content)


@pytest.mark.parametrize('recursive', [True, False])
def test_task_files_listed_together_are_read_in_one_stream(api, text_project, pfs, pfs_client, monkeypatch,
                                                            recursive):
    """A full sync reads a folder of task files through one GetFileTAR per batch; the files the
    stream does not bring whole (a .JSON name, one over the read-ahead size) are read one by one,
    the selection and folder depth are kept, and every task is exact."""
    from label_studio_pachyderm.imports import readahead

    pfs_client.create_repo('default', 'tasks')
    files = {f'in/{i:03d}.json': json.dumps({'text': f't{i}'}) for i in range(120)}
    files.update({f'in/{i:03d}-skip.json': json.dumps({'text': 'not selected'}) for i in range(0, 120, 10)})
    files['in/050-big.json'] = json.dumps({'text': 'big', 'pad': 'x' * (readahead.SMALL_FILE_BYTES + 10)})
    files['in/060.JSON'] = json.dumps({'text': 'upper'})
    files['in/070.jsonl'] = '\n'.join(json.dumps({'text': f'row{r}'}) for r in range(3))
    files['in/sub/deep.json'] = json.dumps({'text': 'deep'})
    files['in/cat.png'] = PNG
    put(pfs_client, 'tasks', files)
    streams, singles = [], []
    real_read_files, real_read_file = pachd.PachdClient.read_files, pachd.PachdClient.read_file

    def read_files(self, *args, **kwargs):
        streams.append(args[3])
        return real_read_files(self, *args, **kwargs)

    def read_file(self, project, repo, commit, path, *args, **kwargs):
        singles.append(path)
        return real_read_file(self, project, repo, commit, path, *args, **kwargs)

    monkeypatch.setattr(pachd.PachdClient, 'read_files', read_files)
    monkeypatch.setattr(pachd.PachdClient, 'read_file', read_file)
    sid = create(api, text_project, pfs, repo='tasks', prefix='in', recursive_scan=recursive,
                 regex_filter=r'^(?!.*skip).*\.(json|jsonl|JSON)$').json()['id']
    storage = sync(api, sid)
    assert storage['status'] == 'completed', storage
    texts = sorted(Task.objects.filter(project=text_project).values_list('data__text', flat=True))
    expected = sorted([f't{i}' for i in range(120)] + ['big', 'upper', 'row0', 'row1', 'row2']
                      + (['deep'] if recursive else []))
    assert texts == expected
    # two runs: the big file (streamed by itself) cuts the listing in two
    assert streams == [f'in/{"**" if recursive else "*"}.{{json,jsonl}}'] * 2
    assert sorted(singles) == ['in/050-big.json', 'in/060.JSON']  # the rest came in the stream


def test_a_stream_pachd_refuses_falls_back_to_single_reads(api, text_project, pfs, pfs_client, monkeypatch):
    pfs_client.create_repo('default', 'tasks')
    put(pfs_client, 'tasks', {f'{i:02d}.json': json.dumps({'text': f't{i}'}) for i in range(20)})

    def refused(self, *args, **kwargs):
        raise pachd.PachdError('GetFileTAR is not implemented by this pachd')
        yield  # a generator, like the real one

    monkeypatch.setattr(pachd.PachdClient, 'read_files', refused)
    storage = sync(api, create(api, text_project, pfs, repo='tasks').json()['id'])
    assert storage['status'] == 'completed', storage
    assert Task.objects.filter(project=text_project).count() == 20


@pytest.mark.slow
def test_pachd_freezing_when_a_run_starts_ends_the_sync_within_the_bound(api, text_project, pfs, pfs_client,
                                                                         settings, monkeypatch):
    """The stream of a run and the single reads after it are each bounded: a pachd that stops
    answering just as a run's stream opens fails the sync in a few timeouts, with the reason."""
    import time

    from tcp_proxy import FreezingProxy

    settings.PACHYDERM_GRPC_TIMEOUT = 2
    pfs_client.create_repo('default', 'tasks')
    put(pfs_client, 'tasks', {f'{i:02d}.json': json.dumps({'text': f't{i}'}) for i in range(20)})
    proxy = FreezingProxy(pfs.address)
    real_read_files = pachd.PachdClient.read_files

    def freezing_read_files(self, *args, **kwargs):
        proxy.freeze()
        return real_read_files(self, *args, **kwargs)

    monkeypatch.setattr(pachd.PachdClient, 'read_files', freezing_read_files)
    try:
        sid = create(api, text_project, pfs, repo='tasks', pachd_address=proxy.address).json()['id']
        started = time.monotonic()
        storage = sync(api, sid)
        elapsed = time.monotonic() - started
        assert storage['status'] == 'failed' and 'pachd' in storage['traceback'], storage
        assert elapsed < 3 * 2 + 8, f'the sync took {elapsed:.1f}s with a frozen pachd'
        assert Task.objects.filter(project=text_project).count() == 0

        proxy.thaw()  # pachd answers again: the next sync imports everything
        monkeypatch.setattr(pachd.PachdClient, 'read_files', real_read_files)
        storage = sync(api, sid)
        assert storage['status'] == 'completed', storage['traceback']
        assert Task.objects.filter(project=text_project).count() == 20
    finally:
        proxy.thaw()
        proxy.close()


@pytest.mark.slow
def test_pachd_killed_mid_sync_then_resync_yields_exact_tasks(api, text_project, tmp_path, monkeypatch, settings):
    from label_studio_pachyderm.imports import sync as importer
    from label_studio_pachyderm.localpfs import start_server

    data_dir = str(tmp_path / 'pfs-killed')
    server = start_server('127.0.0.1', 0, data_dir)
    client = pachd.PachdClient(server.address)
    client.create_repo('default', 'tasks')
    put(client, 'tasks', {f'{i:04d}.json': json.dumps({'text': f't{i}'}) for i in range(300)})
    settings.PACHYDERM_IMPORT_BATCH_SIZE = 50
    # Files are read in batches of 50 too, so a batch after the kill asks pachd again (one
    # batch's files come in one stream, which may arrive whole before the kill).
    monkeypatch.setattr(importer, '_KEY_BATCH', 50)
    sid = create(api, text_project, server, repo='tasks').json()['id']

    real_flush, flushes = importer._flush, []

    def flush_then_kill(storage, link_class, state):
        real_flush(storage, link_class, state)
        flushes.append(1)
        if len(flushes) == 2:
            server.stop()  # pachd goes away in the middle of the sync

    monkeypatch.setattr(importer, '_flush', flush_then_kill)
    storage = sync(api, sid)
    assert storage['status'] == 'failed', storage
    assert 'cannot reach pachd' in storage['traceback'] and 'sync again' in storage['traceback']
    partial = Task.objects.filter(project=text_project).count()
    assert 0 < partial < 300
    monkeypatch.setattr(importer, '_flush', real_flush)

    with start_server('127.0.0.1', server.port, data_dir):
        storage = sync(api, sid)
    assert storage['status'] == 'completed', storage
    texts = list(Task.objects.filter(project=text_project).values_list('data__text', flat=True))
    assert len(texts) == 300 and set(texts) == {f't{i}' for i in range(300)}
    assert PachydermImportStorageLink.objects.filter(storage_id=sid).count() == 300


def test_concurrent_sync_requests_never_duplicate(api, project, pfs, pfs_client, user):
    import threading

    from django.db import connection
    from rest_framework.test import APIClient

    pfs_client.create_repo('default', 'images')
    put(pfs_client, 'images', {f'{i:04d}.png': PNG for i in range(400)})
    sid = create(api, project, pfs, use_blob_urls=True).json()['id']
    statuses, errors = [], []

    def request_sync():
        try:
            client = APIClient()
            client.force_authenticate(user)
            r = client.post(f'/api/storages/pachyderm/{sid}/sync')
            statuses.append(r.status_code)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=request_sync) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and statuses == [200] * 4, (statuses, errors)
    sync(api, sid)  # and once more after they all finished
    keys = list(PachydermImportStorageLink.objects.filter(storage_id=sid).values_list('key', flat=True))
    assert len(keys) == 400 and len(set(keys)) == 400
    assert Task.objects.filter(project=project).count() == 400


def test_server_pachctl_context_only_when_operator_allows(api, project, pfs, images, tmp_path, monkeypatch, settings):
    config = tmp_path / 'config.json'
    config.write_text(json.dumps({'v2': {
        'active_context': 'local',
        'contexts': {'local': {'pachd_address': pfs.address, 'session_token': ''}},
    }}))
    monkeypatch.setenv('PACH_CONFIG', str(config))
    body = {'project': project.id, 'pachd_address': '', 'repo': 'images', 'use_blob_urls': True}
    settings.PACHYDERM_USE_SERVER_CONFIG = False
    refused = api.post('/api/storages/pachyderm/validate', body, format='json')
    assert refused.status_code == 400 and 'pachd_address' in json.dumps(refused.json())
    settings.PACHYDERM_USE_SERVER_CONFIG = True
    assert api.post('/api/storages/pachyderm/validate', body, format='json').status_code == 200
    sid = api.post('/api/storages/pachyderm', body, format='json').json()['id']
    assert sync(api, sid)['last_sync_count'] == 4


@pytest.mark.slow
def test_token_never_in_logs_at_debug(api, project, tmp_path, caplog):
    import logging

    from label_studio_pachyderm.localpfs import start_server

    token = 'tok-in-logs-would-be-bad-42'
    caplog.set_level(logging.DEBUG)
    with start_server('127.0.0.1', 0, str(tmp_path / 'logpfs'), auth_token=token) as server:
        client = pachd.PachdClient(server.address, auth_token=token)
        client.create_repo('default', 'images')
        put(client, 'images', {'a.png': PNG})
        # Error paths: a wrong token, a missing repo, then a good storage synced and proxied.
        create(api, project, server, use_blob_urls=True, auth_token=token + 'x')
        create(api, project, server, use_blob_urls=True, auth_token=token, repo='missing')
        sid = create(api, project, server, use_blob_urls=True, auth_token=token).json()['id']
        sync(api, sid)
        task = Task.objects.get(project=project)
        b''.join(_proxy(api, task).streaming_content)
    # pachd gone: the failure paths log too.
    api.post(f'/api/storages/pachyderm/{sid}/sync')
    logged = '\n'.join(f'{r.getMessage()} {r.exc_text or ""} {r.args}' for r in caplog.records)
    assert caplog.records and token not in logged
    storage = PachydermImportStorage.objects.get(id=sid)
    assert token not in (storage.traceback or '') + json.dumps(storage.meta)


def test_proxy_refuses_crafted_fileuris_without_server_errors(api, project, pfs, images):
    sid = create(api, project, pfs, use_blob_urls=True, prefix='sub').json()['id']
    sync(api, sid)
    task = Task.objects.get(project=project)

    def b64(text):
        return base64.urlsafe_b64encode(text.encode()).decode()

    crafted = [
        b64(f'pfs://default/images@{images}/sub/../a.png'),  # climbs out of the prefix
        b64(f'pfs://default/images@{images}/a.png'),  # outside the prefix
        b64(f'pfs://default/images@{images}//etc/passwd'),
        b64('file:///etc/passwd'), b64('s3://bucket/key'), b64('pfs://'),
        b64(f'pfs://default/images@{"0" * 32}/sub/c.png'),  # unknown commit: nothing to stream
        '!!!not-base64!!!', '', '%00', 'A' * 5000,
    ]
    for fileuri in crafted:
        r = api.get(f'/tasks/{task.id}/resolve/?fileuri={fileuri}')
        assert r.status_code in (400, 403, 404, 424), (fileuri[:60], r.status_code)
        body = b''.join(r.streaming_content) if r.streaming else r.content
        assert PNG not in body


def test_http_options_answers_on_every_layout(api, project, pfs, images):
    sid = create(api, project, pfs, use_blob_urls=True).json()['id']
    for route in (f'/api/storages/pachyderm/{sid}/sync', f'/api/storages/pachyderm/import/{sid}/sync/',
                  f'/api/storages/pachyderm/{sid}', '/api/storages/pachyderm/validate'):
        assert api.options(route).status_code == 200, route
