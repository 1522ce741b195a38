"""Exports that never lose or block: the outbox, one writer per target branch, dead writers, frozen pachd.

Real Label Studio API in threads (as a team of annotators submits), the local PFS server
over gRPC, real RQ worker processes in background mode, a real process killed with
SIGKILL while it holds the branch, and a TCP proxy that freezes like a hung pachd.
"""
import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from label_studio_pachyderm import leases, pachd
from label_studio_pachyderm.exports import outbox
from label_studio_pachyderm.models import PachydermExportStorage, PachydermImportStorage
from tasks.models import Annotation

from conftest import restart_pfs
from tcp_proxy import FreezingProxy
from test_export import RESULT, commits, create_export, make_tasks
from test_reliability import two_workers  # noqa: F401  (a fixture)
from test_rq import rq_worker  # noqa: F401  (a fixture)
from waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

ANNOTATORS, SUBMITS = 8, 40


def _submit_together(user, tasks, threads=ANNOTATORS):
    """``threads`` API clients submit one annotation per task, all at once. Returns {task id: annotation id}."""
    from django.db import connection
    from rest_framework.test import APIClient

    done, errors = {}, []
    barrier = threading.Barrier(threads)
    share = [tasks[i::threads] for i in range(threads)]

    def run(mine):
        try:
            client = APIClient()
            client.force_authenticate(user)
            barrier.wait(30)
            for task in mine:
                result = [dict(RESULT[0], value=dict(RESULT[0]['value'], x=task.id % 90))]
                r = client.post(f'/api/tasks/{task.id}/annotations/', {'result': result}, format='json')
                if r.status_code != 201:
                    errors.append((r.status_code, r.content[:200]))
                else:
                    done[task.id] = r.json()['id']
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(repr(exc))
        finally:
            connection.close()

    workers = [threading.Thread(target=run, args=(mine,)) for mine in share]
    for t in workers:
        t.start()
    for t in workers:
        t.join(300)
    assert not any(t.is_alive() for t in workers), 'a submit hung'
    assert not errors, errors
    return done


def _repo_holds(client, tasks, annotation_of):
    """True when the repo's head has one file per task holding exactly its annotation."""
    files = _files(client)
    if files != {f'{t.id}.json' for t in tasks}:
        return False
    for task in tasks:
        body = json.loads(client.get_file_bytes('default', 'labels', 'master', f'{task.id}.json'))
        assert [a['id'] for a in body['annotations']] == [annotation_of[task.id]]
        assert body['annotations'][0]['result'][0]['value']['x'] == task.id % 90
    return True


def _files(client, repo='labels'):
    """Paths at the branch head; none while the branch has no commit yet."""
    try:
        return {f.path for f in client.list_files('default', repo, 'master')}
    except pachd.PachdNotFound:
        return set()


@pytest.fixture
def labels(pfs_client):
    pfs_client.create_repo('default', 'labels')


@pytest.mark.slow
def test_concurrent_submits_inline_all_reach_the_repo(api, project, pfs, pfs_client, user, labels, settings):
    settings.SYNC_ON_TARGET_STORAGE_CREATION = False
    sid = create_export(api, project, pfs)['id']
    tasks = make_tasks(project, SUBMITS)
    annotation_of = _submit_together(user, tasks)
    assert len(annotation_of) == SUBMITS
    # No manual sync: the writers of the submits (and the retry for a busy branch) did it all.
    wait_for(lambda: _repo_holds(pfs_client, tasks, annotation_of), timeout=90, what='all 40 files in the repo')
    wait_for(lambda: not outbox.pending_for_id(sid).exists(), what='the outbox drained')
    storage = PachydermExportStorage.objects.get(id=sid)
    assert storage.status not in ('failed', 'completed_with_errors'), storage.traceback
    history = commits(pfs_client)
    print(f'\n{SUBMITS} submits by {ANNOTATORS} annotators, inline: {len(history)} commits')
    assert all(c.finished for c in history) and len(history) < SUBMITS
    shown = api.get(f'/api/storages/export/pachyderm/{sid}').json()['meta']
    assert shown['pending_exports'] == 0 and shown['last_exported_commit'] == history[0].id == storage.last_exported_commit


@pytest.mark.slow
def test_concurrent_submits_background_mode_two_workers(api, project, pfs, pfs_client, user, labels, settings,
                                                        two_workers):  # noqa: F811
    settings.SYNC_ON_TARGET_STORAGE_CREATION = False
    sid = create_export(api, project, pfs)['id']
    tasks = make_tasks(project, SUBMITS)
    annotation_of = _submit_together(user, tasks)
    wait_for(lambda: _repo_holds(pfs_client, tasks, annotation_of), timeout=120, what='all 40 files in the repo')
    wait_for(lambda: not outbox.pending_for_id(sid).exists(), what='the outbox drained')
    storage = PachydermExportStorage.objects.get(id=sid)
    assert storage.status not in ('failed', 'completed_with_errors'), storage.traceback
    history = commits(pfs_client)
    print(f'\n{SUBMITS} submits, RQ with two workers: {len(history)} commits')
    assert all(c.finished for c in history) and len(history) < SUBMITS


_DEAD_WRITER = textwrap.dedent('''
    import sys, time
    import django
    django.setup()
    from label_studio_pachyderm import pachd
    from label_studio_pachyderm.exports import outbox
    from label_studio_pachyderm.leases import Lease
    from label_studio_pachyderm.models import PachydermExportStorage

    storage = PachydermExportStorage.objects.get(id=int(sys.argv[1]))
    lease = Lease(outbox.target_key(storage), 3)
    assert lease.acquire()
    lease.start_heartbeat()

    def ops():
        yield pachd.FileOp.put('half-written.json', b'{}')
        print('OPEN', flush=True)
        time.sleep(3600)  # killed here, with the commit open and the lease held

    storage.get_client().write_commit(storage.project_name, storage.repo, storage.branch_name, ops(),
                                      description='export', marker=f'{outbox.MARKER} {lease.holder}')
''')


@pytest.mark.slow
def test_writer_killed_mid_commit_is_replaced_and_nothing_is_lost(api, project, pfs, pfs_client, user, labels,
                                                                   settings, tmp_path):
    """A writer holding the lease is killed with SIGKILL while its commit is open. The branch stays
    blocked only until its lease runs out; then the next writer drops the dead commit and exports
    everything the outbox holds."""
    settings.SYNC_ON_TARGET_STORAGE_CREATION = False
    settings.PACHYDERM_LEASE_SECONDS = 3
    settings.PACHYDERM_EXPORT_RETRY_SECONDS = 0.5
    sid = create_export(api, project, pfs)['id']
    env = {**os.environ, 'DJANGO_SETTINGS_MODULE': 'label_studio_pachyderm.settings',
           'DATABASE_NAME': settings.DATABASES['default']['NAME'], 'POSTGRE_NAME': settings.DATABASES['default']['NAME'],
           'PACHYDERM_ALLOWED_HOSTS': '127.0.0.1', 'SENTRY_DSN': ''}
    script = tmp_path / 'dead_writer.py'
    script.write_text(_DEAD_WRITER)
    proc = subprocess.Popen([sys.executable, str(script), str(sid)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        seen, deadline = b'', time.monotonic() + 120
        while not seen.endswith(b'OPEN\n'):
            ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            line = proc.stdout.readline() if ready else b''
            if not line:
                proc.kill()
                pytest.fail('the writer did not start its commit: ' + seen.decode(errors='replace'))
            seen += line
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    dead = pfs_client.unfinished_head('default', 'labels', 'master')
    assert dead is not None and outbox.MARKER in dead.description

    tasks = make_tasks(project, 3)
    annotation_of = {}
    for task in tasks:  # 201 at once: the requests leave their rows to whoever holds the branch
        r = api.post(f'/api/tasks/{task.id}/annotations/', {'result': RESULT}, format='json')
        assert r.status_code == 201
        annotation_of[task.id] = r.json()['id']
    wait_for(lambda: _files(pfs_client)
             == {f'{t.id}.json' for t in tasks}, timeout=60, what='the next writer to take over')
    assert pfs_client.unfinished_head('default', 'labels', 'master') is None
    assert all(c.finished for c in commits(pfs_client)) and dead.id not in {c.id for c in commits(pfs_client)}
    assert not outbox.pending_for_id(sid).exists()


def test_open_commit_of_someone_else_is_named_and_waited_for(api, project, pfs, pfs_client, labels, settings):
    settings.SYNC_ON_TARGET_STORAGE_CREATION = False
    settings.PACHYDERM_EXPORT_RETRY_SECONDS = 0.5
    sid = create_export(api, project, pfs)['id']
    foreign = pfs_client._pfs.start_commit(branch=pfs_client._branch('default', 'labels', 'master'),
                                           description='a pipeline writing')
    task = make_tasks(project, 1)[0]
    r = api.post(f'/api/tasks/{task.id}/annotations/', {'result': RESULT}, format='json')
    assert r.status_code == 201
    storage = PachydermExportStorage.objects.get(id=sid)
    assert storage.status == 'completed_with_errors'
    assert foreign.id in storage.traceback and 'did not start' in storage.traceback
    assert pfs_client.unfinished_head('default', 'labels', 'master').id == foreign.id  # never dropped
    pfs_client._pfs.finish_commit(commit=foreign)
    wait_for(lambda: f'{task.id}.json' in _files(pfs_client),
             what='the export after the other commit finished')
    wait_for(lambda: PachydermExportStorage.objects.get(id=sid).status == 'completed', what='the error cleared')


def test_deleting_a_task_with_four_annotations_is_one_commit(api, project, pfs, pfs_client, user, labels, settings):
    settings.SYNC_ON_TARGET_STORAGE_CREATION = False
    sid = create_export(api, project, pfs, can_delete_objects=True)['id']
    task, other = make_tasks(project, 2)
    for _ in range(4):
        assert api.post(f'/api/tasks/{task.id}/annotations/', {'result': RESULT}, format='json').status_code == 201
    assert api.post(f'/api/tasks/{other.id}/annotations/', {'result': RESULT}, format='json').status_code == 201
    before = len(commits(pfs_client))
    r = api.delete(f'/api/tasks/{task.id}/')
    assert r.status_code == 204, r.content
    assert len(commits(pfs_client)) == before + 1
    assert _files(pfs_client) == {f'{other.id}.json'}
    assert not outbox.pending_for_id(sid).exists()


@pytest.mark.slow
def test_deletes_with_pachd_down_are_done_after_recovery(api, project, pfs, pfs_client, labels, settings):
    settings.SYNC_ON_TARGET_STORAGE_CREATION = False
    settings.PACHYDERM_EXPORT_RETRY_SECONDS = 0.5
    sid = create_export(api, project, pfs, can_delete_objects=True)['id']
    tasks = make_tasks(project, 3)
    ids = [api.post(f'/api/tasks/{t.id}/annotations/', {'result': RESULT}, format='json').json()['id']
           for t in tasks]
    assert len(_files(pfs_client)) == 3
    pfs.stop()
    started = time.monotonic()
    for annotation_id in ids[:2]:
        assert api.delete(f'/api/annotations/{annotation_id}/').status_code == 204
    # A dead pachd is dialled once; the second delete does not wait for it again.
    assert time.monotonic() - started < 15
    assert not Annotation.objects.filter(id__in=ids[:2]).exists()
    assert outbox.pending_for_id(sid).filter(deleted=True).count() == 2
    with restart_pfs(pfs) as again:
        client = pachd.PachdClient(again.address)
        wait_for(lambda: _files(client) == {f'{tasks[2].id}.json'},
                 what='the deleted files removed after pachd came back')
        client.close()


@pytest.mark.slow
def test_delete_during_a_running_export_sync(api, project, pfs, pfs_client, user, labels, settings, monkeypatch):
    """An annotation deleted while a manual sync's commit is open: the sync completes, its links are
    saved, and the deleted annotation's file is removed by the next commit of the same writer."""
    from django.db import connection
    from label_studio_pachyderm.exports import writer as exporter
    from rest_framework.test import APIClient

    settings.SYNC_ON_TARGET_STORAGE_CREATION = False
    sid = create_export(api, project, pfs, can_delete_objects=True)['id']
    tasks = make_tasks(project, 30)
    for task in tasks:
        Annotation.objects.create(task=task, project=project, result=RESULT, completed_by=user)
    doomed = Annotation.objects.get(task=tasks[0])
    real_ops = exporter._Export._task_ops

    def slow_ops(self):
        for op in real_ops(self):
            time.sleep(0.1)  # the fault: a slow export, its commit open long enough for the delete to land
            yield op

    monkeypatch.setattr(exporter._Export, '_task_ops', slow_ops)
    answer = {}

    def manual_sync():
        try:
            client = APIClient()
            client.force_authenticate(user)
            answer['sync'] = client.post(f'/api/storages/export/pachyderm/{sid}/sync').json()
        finally:
            connection.close()

    thread = threading.Thread(target=manual_sync)
    thread.start()
    wait_for(lambda: pfs_client.unfinished_head('default', 'labels', 'master') is not None, timeout=30,
             what='the sync commit to open')
    assert api.delete(f'/api/annotations/{doomed.id}/').status_code == 204
    thread.join(120)
    assert answer['sync']['status'] == 'completed', answer['sync']
    storage = PachydermExportStorage.objects.get(id=sid)
    assert storage.status == 'completed' and storage.last_exported_commit
    files = _files(pfs_client)
    assert files == {f'{t.id}.json' for t in tasks[1:]}
    assert storage.links.count() == 29
    assert not outbox.pending_for_id(sid).exists()


@pytest.mark.slow
def test_frozen_pachd_every_operation_ends_and_pending_exports_after_thaw(api, project, pfs, pfs_client, user,
                                                                          labels, settings):
    """Validate, import sync, export and the media proxy through a pachd that froze: each ends within the
    bound with a readable error; after the thaw the changes saved meanwhile reach the repo."""
    settings.PACHYDERM_GRPC_TIMEOUT = 2
    settings.PACHYDERM_EXPORT_RETRY_SECONDS = 0.5
    settings.SYNC_ON_TARGET_STORAGE_CREATION = False
    pfs_client.create_repo('default', 'images')
    pfs_client.write_commit('default', 'images', 'master', [pachd.FileOp.put('a.png', b'\x89PNG' + b'0' * 64)])
    proxy = FreezingProxy(pfs.address)
    bound = 3 * 2 + 8  # a few timeouts, and slack for a loaded machine
    try:
        r = api.post('/api/storages/pachyderm', {'project': project.id, 'pachd_address': proxy.address,
                                                 'repo': 'images', 'use_blob_urls': True}, format='json')
        assert r.status_code == 201, r.content
        source = r.json()['id']
        r = api.post(f'/api/storages/pachyderm/{source}/sync')
        assert r.status_code == 200 and r.json()['status'] == 'completed'
        export = create_export(api, project, type('A', (), {'address': proxy.address})())['id']
        task = project.tasks.first()
        proxy.freeze()

        def timed(call):
            started = time.monotonic()
            response = call()
            return time.monotonic() - started, response

        elapsed, r = timed(lambda: api.post('/api/storages/pachyderm/validate', {
            'project': project.id, 'pachd_address': proxy.address, 'repo': 'images'}, format='json'))
        assert elapsed < bound and r.status_code == 400 and 'pachd' in json.dumps(r.json()), r.content
        elapsed, r = timed(lambda: api.post(f'/api/storages/pachyderm/{source}/sync'))
        assert elapsed < bound
        assert PachydermImportStorage.objects.get(id=source).status == 'failed'
        assert 'pachd' in PachydermImportStorage.objects.get(id=source).traceback
        elapsed, r = timed(lambda: api.post(f'/api/tasks/{task.id}/annotations/', {'result': RESULT}, format='json'))
        assert elapsed < bound and r.status_code == 201  # the client waits for the writer too
        uri = next(iter(task.data.values()))
        elapsed, r = timed(lambda: api.get(f'/tasks/{task.id}/resolve/', {'fileuri': uri}))
        assert elapsed < bound and r.status_code >= 400
        elapsed, r = timed(lambda: api.post(f'/api/storages/export/pachyderm/{export}/sync'))
        assert elapsed < bound + 2 * 2
        stored = PachydermExportStorage.objects.get(id=export)
        # The sync's failure, or a moment later the writer's retry of the saved change: both say why.
        assert stored.status in ('failed', 'completed_with_errors') and 'pachd' in stored.traceback
        assert outbox.pending_for_id(export).count() == 1

        proxy.thaw()
        wait_for(lambda: f'{task.id}.json' in _files(pfs_client),
                 timeout=60, what='the pending export after the thaw')
        wait_for(lambda: not outbox.pending_for_id(export).exists(), what='the outbox drained')
    finally:
        proxy.thaw()
        proxy.close()


def test_export_writer_lease_is_exclusive(db):
    first, second = leases.Lease('export:test', 30), leases.Lease('export:test', 30)
    assert first.acquire() and not second.acquire()
    assert leases.is_held('export:test')
    first.release()
    assert second.acquire() and not first.acquire()
    second.release()
    short = leases.Lease('export:test', 0.2)
    assert short.acquire()
    time.sleep(0.5)  # not renewed: it runs out
    assert second.acquire() and not short.renew() and short.lost.is_set()
    second.release()


def _plain_client(user):
    """Label Studio's API client: its requests return when the request does, not when the export is written."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(user)
    return client


def test_a_submit_never_waits_for_pachd(api, user, project, pfs, pfs_client, labels, settings):
    """With pachd frozen and a gRPC deadline of a minute, submits still answer 201 at once: the request
    only records its outbox row. The writer thread is what waits; after the thaw it writes them all."""
    settings.PACHYDERM_GRPC_TIMEOUT = 60
    settings.PACHYDERM_EXPORT_RETRY_SECONDS = 0.5
    proxy = FreezingProxy(pfs.address)
    try:
        storage = create_export(api, project, type('A', (), {'address': proxy.address})())
        tasks = make_tasks(project, 3)
        client = _plain_client(user)
        proxy.freeze()
        for task in tasks:
            started = time.monotonic()
            r = client.post(f'/api/tasks/{task.id}/annotations/', {'result': RESULT}, format='json')
            # Far below the 60 s deadline the writer is stuck in: the request did not dial pachd.
            assert r.status_code == 201 and time.monotonic() - started < 20
        assert not outbox.wait_until_written(timeout=1), 'the writer should be stuck on the frozen pachd'
        assert outbox.pending_for_id(storage['id']).count() == 3
        proxy.thaw()
        wait_for(lambda: {f'{t.id}.json' for t in tasks} <= _files(pfs_client), timeout=120,
                 what='the submits written after the thaw')
    finally:
        proxy.thaw()
        proxy.close()


def test_inline_submits_of_one_window_share_a_commit(api, user, project, pfs, pfs_client, labels, settings):
    """The first submit after a quiet spell is written at once; the next ones wait for the coalescing
    window of that commit and go together in one commit."""
    settings.PACHYDERM_EXPORT_COALESCE_SECONDS = 3
    create_export(api, project, pfs)
    before = len(commits(pfs_client))
    tasks = make_tasks(project, 6)
    client = _plain_client(user)
    first = time.monotonic()
    assert client.post(f'/api/tasks/{tasks[0].id}/annotations/', {'result': RESULT}, format='json').status_code == 201
    wait_for(lambda: f'{tasks[0].id}.json' in _files(pfs_client), timeout=60, what='the first submit written')
    for task in tasks[1:]:
        assert client.post(f'/api/tasks/{task.id}/annotations/', {'result': RESULT}, format='json').status_code == 201
    assert outbox.wait_until_written(timeout=60)
    # The five later submits were written together, once the window of the first commit had passed.
    assert time.monotonic() - first >= 3
    assert len(commits(pfs_client)) == before + 2
    assert {f'{t.id}.json' for t in tasks} <= _files(pfs_client)
