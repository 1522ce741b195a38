"""One writer per branch, whatever the address spelling, and no good commit ever dropped.

Two projects export to one branch through storages whose pachd address is spelled
two ways (``127.0.0.1:PORT`` and ``grpc://localhost:PORT``): one lease, one writer at
a time, nothing lost. A writer that finds an open commit drops it only when it is
provably a dead writer's. A commit dropped after FinishCommit is not counted as written.
Runs on SQLite and on the PostgreSQL lane.
"""
import json

import pytest
from label_studio_pachyderm import leases, pachd
from label_studio_pachyderm.exports import outbox
from label_studio_pachyderm.models import PachydermExportStorage

from conftest import make_project
from test_export import commits, create_export, labels, make_tasks  # noqa: F401  (labels is a fixture)
from test_outbox import _submit_together
from test_rq import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize('one, other', [
    ('127.0.0.1:650', 'grpc://localhost:650'),
    ('GRPC://LOCALHOST:650', 'http://[::1]:650'),
    ('pachd.example.com', 'grpc://PACHD.example.com:30650'),
    ('grpcs://10.0.0.1:650', 'https://10.0.0.1:650'),
    ('[0:0:0:0:0:ffff:a00:1]:650', '[::ffff:a00:1]:650'),
])
def test_one_pachd_has_one_identity(one, other):
    assert pachd.address_identity(one) == pachd.address_identity(other)


@pytest.mark.parametrize('one, other', [
    ('127.0.0.1:650', '127.0.0.1:651'),
    ('grpc://h:650', 'grpcs://h:650'),  # where a token may be sent depends on TLS
    ('pachd-a:650', 'pachd-b:650'),
    ('10.0.0.1:650', '10.0.0.2:650'),
])
def test_two_pachds_have_two_identities(one, other):
    assert pachd.address_identity(one) != pachd.address_identity(other)


def test_an_invalid_address_is_its_own_identity():
    assert pachd.address_identity('  not an address  ') == 'not an address'
    assert pachd.address_identity('') == ''


def test_two_spellings_of_one_branch_share_one_lease(api, project, user, pfs, labels, settings):
    settings.SYNC_ON_TARGET_STORAGE_CREATION = False
    settings.PACHYDERM_ALLOWED_HOSTS = ['127.0.0.1', 'localhost']
    port = pfs.address.rsplit(':', 1)[1]
    first = create_export(api, project, pfs, pachd_address=f'127.0.0.1:{port}', prefix='a')
    second = create_export(api, make_project(user, title='Other'), pfs, pachd_address=f'grpc://localhost:{port}',
                           prefix='b')
    keys = {outbox.target_key(PachydermExportStorage.objects.get(id=s['id'])) for s in (first, second)}
    assert len(keys) == 1


@pytest.mark.slow
def test_two_projects_on_one_branch_through_two_spellings_lose_nothing(api, project, user, pfs, pfs_client, labels,
                                                                       settings):
    """Each project's annotators submit at once; both storages write labels@master, one spelled
    127.0.0.1:PORT, the other grpc://localhost:PORT. Every annotation of both ends up in the repo."""
    settings.SYNC_ON_TARGET_STORAGE_CREATION = False
    settings.PACHYDERM_ALLOWED_HOSTS = ['127.0.0.1', 'localhost']
    port = pfs.address.rsplit(':', 1)[1]
    other = make_project(user, title='Other')
    storages = [create_export(api, project, pfs, pachd_address=f'127.0.0.1:{port}', prefix='a')['id'],
                create_export(api, other, pfs, pachd_address=f'grpc://localhost:{port}', prefix='b')['id']]
    tasks = {'a': make_tasks(project, 24), 'b': make_tasks(other, 24)}
    done = {}

    import threading

    def team(prefix):
        done[prefix] = _submit_together(user, tasks[prefix], threads=4)

    teams = [threading.Thread(target=team, args=(prefix,)) for prefix in tasks]
    for t in teams:
        t.start()
    for t in teams:
        t.join(300)
    assert set(done) == {'a', 'b'}, 'a team did not finish'

    def files():
        try:
            return {f.path for f in pfs_client.list_files('default', 'labels', 'master')}
        except pachd.PachdNotFound:
            return set()

    wanted = {f'{prefix}/{t.id}.json' for prefix in tasks for t in tasks[prefix]}
    wait_for(lambda: files() >= wanted and not any(outbox.pending_for_id(s).exists() for s in storages),
             timeout=180, what='every annotation of both projects in the repo')
    for prefix in tasks:
        for task in tasks[prefix]:
            body = json.loads(pfs_client.get_file_bytes('default', 'labels', 'master', f'{prefix}/{task.id}.json'))
            assert [a['id'] for a in body['annotations']] == [done[prefix][task.id]]
    history = commits(pfs_client)
    assert all(c.finished for c in history)
    # Every commit an export link names still exists: none was dropped after its rows were deleted.
    alive = {c.id for c in history}
    for sid in storages:
        storage = PachydermExportStorage.objects.get(id=sid)
        assert storage.status not in ('failed', 'completed_with_errors'), storage.traceback
        named = set(storage.links.values_list('commit', flat=True))
        assert named and named <= alive, named - alive
    print(f'\n2 projects x 24 submits on one branch, two address spellings: {len(history)} commits')


def _open_commit(client, marker_holder):
    """An unfinished commit on labels@master whose marker names ``marker_holder``; returns its id."""
    commit = client._pfs.start_commit(branch=client._branch('default', 'labels', 'master'),
                                      description=f'export\n{outbox.MARKER} {marker_holder}')
    return commit.id


def test_an_open_commit_of_a_live_writer_is_never_dropped(api, project, pfs, pfs_client, labels, settings):
    """The marker names a writer whose lease (under another key: another spelling) is alive: the
    commit stays, the rows stay, the storage says why; once that writer is gone the next try
    drops the commit and writes the rows."""
    settings.SYNC_ON_TARGET_STORAGE_CREATION = False
    sid = create_export(api, project, pfs)['id']
    alive = leases.Lease('export:elsewhere', 30)
    assert alive.acquire()
    open_id = _open_commit(pfs_client, alive.holder)
    task = make_tasks(project, 1)[0]
    r = api.post(f'/api/tasks/{task.id}/annotations/', {'result': []}, format='json')
    assert r.status_code == 201
    storage = PachydermExportStorage.objects.get(id=sid)
    result = outbox.flush(storage)
    assert isinstance(result.error, outbox.OpenCommitNotOurs) and 'still running' in str(result.error)
    assert pfs_client.unfinished_head('default', 'labels', 'master').id == open_id
    assert outbox.pending_for_id(sid).count() == 1
    alive.release()  # the other writer is gone now
    result = outbox.flush(storage)
    assert result.error is None and result.commits, result.error
    assert pfs_client.unfinished_head('default', 'labels', 'master') is None
    assert open_id not in {c.id for c in commits(pfs_client)}
    assert not outbox.pending_for_id(sid).exists()


def test_an_open_commit_that_finishes_before_the_drop_is_kept(api, project, pfs, pfs_client, labels, settings,
                                                              monkeypatch):
    """A dead-looking writer's commit is inspected again right before the drop: one that was finished
    in between (a slow writer, not a dead one) is a good commit and stays on the branch."""
    settings.SYNC_ON_TARGET_STORAGE_CREATION = False
    sid = create_export(api, project, pfs)['id']
    open_id = _open_commit(pfs_client, 'a-writer-that-holds-no-lease')
    storage = PachydermExportStorage.objects.get(id=sid)
    client = storage.get_client()
    real_inspect = client.inspect_commit
    calls = []

    def finish_then_inspect(project_name, repo, commit):
        calls.append(commit)
        if commit == open_id:  # the check right before the drop: the slow writer finishes first
            pfs_client._pfs.finish_commit(commit=pachd.client._pfs.Commit(
                repo=pfs_client._repo('default', 'labels'), id=open_id))
            pfs_client._wait_finished(pachd.client._pfs.Commit(repo=pfs_client._repo('default', 'labels'),
                                                               id=open_id))
        return real_inspect(project_name, repo, commit)

    monkeypatch.setattr(client, 'inspect_commit', finish_then_inspect)
    lease = leases.Lease(outbox.target_key(storage), 30)
    assert lease.acquire()
    outbox._clear_dead_writer(client, storage, lease)
    lease.release()
    assert open_id in calls
    assert open_id in {c.id for c in commits(pfs_client)}, 'a finished commit was dropped'


def test_a_commit_dropped_after_it_finished_keeps_its_rows(api, project, pfs, pfs_client, labels, settings,
                                                           monkeypatch):
    """FinishCommit answered, then the commit is gone before pachd reports it finished: its rows are
    not deleted (the writer counts nothing as written) and the next flush writes them."""
    settings.SYNC_ON_TARGET_STORAGE_CREATION = False
    sid = create_export(api, project, pfs)['id']
    storage = PachydermExportStorage.objects.get(id=sid)
    outbox.stop_retries()
    task = make_tasks(project, 1)[0]
    monkeypatch.setattr(outbox, 'write_soon', lambda storage: None)  # the request leaves the row to us
    r = api.post(f'/api/tasks/{task.id}/annotations/', {'result': []}, format='json')
    assert r.status_code == 201 and outbox.pending_for_id(sid).count() == 1
    client = storage.get_client()
    real_wait = client._wait_finished

    def dropped_meanwhile(commit):
        client._drop_commit(commit)  # someone drops it between FinishCommit and the wait
        real_wait(commit)

    monkeypatch.setattr(client, '_wait_finished', dropped_meanwhile)
    monkeypatch.setattr(type(storage), 'get_client', lambda self: client)
    result = outbox.flush(storage)
    assert result.error is not None and 'dropped' in str(result.error), result.error
    assert outbox.pending_for_id(sid).count() == 1
    monkeypatch.setattr(client, '_wait_finished', real_wait)
    result = outbox.flush(storage)
    assert result.error is None and result.commits
    assert f'{task.id}.json' in {f.path for f in pfs_client.list_files('default', 'labels', 'master')}
    assert not outbox.pending_for_id(sid).exists()
