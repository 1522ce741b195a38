"""Reliability: pachd outages during a burst of submits, concurrent syncs (HTTP clients + RQ workers),
annotations saved while a sync's commit is open, syncs while a writer holds the branch head open, a
file of many rows, and Redis unreachable in background mode.

Real Label Studio models and API, a real local PFS server over gRPC, and for the
concurrency tests real Redis with real RQ worker processes (two of them, so that a
second job enqueued by a lost race would really run at the same time as the first).
"""
import json
import os
import random
import subprocess
import sys
import threading
import time

import pytest
from label_studio_pachyderm import jobs, pachd
from label_studio_pachyderm.models import (PachydermExportStorage, PachydermExportStorageLink,
                                           PachydermImportStorage, PachydermImportStorageLink)
from tasks.models import Annotation, Task

from conftest import restart_pfs
from test_export import RESULT, commits, create_export, make_tasks
from test_import import PNG, put
from test_rq import REDIS_URL, rq_worker  # noqa: F401  (rq_worker is a fixture)
from waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

DONE = ('completed', 'completed_with_errors', 'failed')


# ----------------------------------------------------------------------------- 1. pachd down during submits
@pytest.mark.slow
def test_pachd_down_during_100_submits_then_one_sync_exports_all(api, project, pfs, settings):
    # The automatic retry is tested elsewhere; here the manual sync must do it all, in one commit.
    settings.PACHYDERM_EXPORT_RETRY_SECONDS = 3600
    client = pachd.PachdClient(pfs.address)
    client.create_repo('default', 'labels')
    storage = create_export(api, project, pfs)
    before = commits(client)
    client.close()

    pfs.stop()
    tasks = make_tasks(project, 100)
    started = time.monotonic()
    statuses, annotation_of = [], {}
    for task in tasks:
        r = api.post(f'/api/tasks/{task.id}/annotations/', {'result': RESULT}, format='json')
        statuses.append(r.status_code)
        if r.status_code == 201:
            annotation_of[task.id] = r.json()['id']
    elapsed = time.monotonic() - started
    print(f'\n100 submits with pachd down: {elapsed:.1f}s')
    assert statuses == [201] * 100, statuses
    assert Annotation.objects.filter(project=project).count() == 100

    stored = PachydermExportStorage.objects.get(id=storage['id'])
    assert stored.status == 'completed_with_errors', stored.status
    assert 'not exported' in stored.traceback and 'retried automatically' in stored.traceback
    assert 'retried automatically' in stored.meta['last_export_error']
    assert not PachydermExportStorageLink.objects.filter(storage=stored).exists()

    with restart_pfs(pfs) as again:
        r = api.post(f"/api/storages/export/pachyderm/{storage['id']}/sync")
        assert r.status_code == 200, r.content
        data = r.json()
        assert data['status'] == 'completed', data
        assert data['last_sync_count'] == 100 and data['meta']['files_written'] == 100

        client = pachd.PachdClient(again.address)
        after = commits(client)
        assert len(after) == len(before) + 1, (before, after)
        new = after[0]
        assert new.finished and data['last_exported_commit'] == new.id
        assert '100 annotations in 100 files' in new.description

        paths = [f.path for f in client.list_files('default', 'labels', new.id)]
        assert len(paths) == 100 and len(set(paths)) == 100
        assert set(paths) == {f'{t.id}.json' for t in tasks}
        for task in tasks:
            body = json.loads(client.get_file_bytes('default', 'labels', new.id, f'{task.id}.json'))
            assert body['id'] == task.id
            assert [a['id'] for a in body['annotations']] == [annotation_of[task.id]]
            assert body['annotations'][0]['result'] == RESULT
        client.close()

    links = PachydermExportStorageLink.objects.filter(storage_id=storage['id'])
    assert links.count() == 100
    assert set(links.values_list('annotation_id', flat=True)) == set(annotation_of.values())
    assert set(links.values_list('commit', flat=True)) == {new.id}


# ----------------------------------------------------------------------------- 2. concurrent syncs
def _start_worker(settings, log_path):
    """One more RQ worker process on the queue the rq_worker fixture configured."""
    env = {
        **os.environ,
        'DJANGO_SETTINGS_MODULE': 'label_studio_pachyderm.settings',
        'DATABASE_NAME': settings.DATABASES['default']['NAME'],
        'POSTGRE_NAME': settings.DATABASES['default']['NAME'],
        'PACHYDERM_REDIS_URL': REDIS_URL,
        'PACHYDERM_RQ_QUEUE': settings.PACHYDERM_RQ_QUEUE,
        'PACHYDERM_ALLOWED_HOSTS': '127.0.0.1',
        'SENTRY_DSN': '',
    }
    cli = os.path.join(os.path.dirname(sys.executable), 'label-studio-pachyderm')
    log = open(log_path, 'wb')
    proc = subprocess.Popen([cli, 'worker'], env=env, stdout=log, stderr=subprocess.STDOUT)
    return proc, log


@pytest.fixture
def two_workers(rq_worker, settings, tmp_path):
    from redis import Redis
    from rq import Worker

    proc, log = _start_worker(settings, tmp_path / 'worker2.log')
    conn = Redis.from_url(REDIS_URL)
    queue = settings.PACHYDERM_RQ_QUEUE
    def both_listening():
        if proc.poll() is not None:
            pytest.fail('the second RQ worker exited: ' + (tmp_path / 'worker2.log').read_text())
        return sum(queue in w.queue_names() for w in Worker.all(connection=conn)) >= 2

    try:
        wait_for(both_listening, what='a second RQ worker')
        yield [rq_worker, proc]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _queue_state():
    from rq.registry import FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry

    queue = jobs.get_queue()
    return dict(
        queued=queue.count,
        started=StartedJobRegistry(queue=queue).count,
        finished=FinishedJobRegistry(queue=queue).count,
        failed=FailedJobRegistry(queue=queue).get_job_ids(),
        queue=queue,
    )


def _settled(storage_class, sid):
    state = _queue_state()
    storage = storage_class.objects.get(id=sid)
    return storage if storage.status in DONE and not state['queued'] and not state['started'] else None


def _hammer(user, url, clients=6, rounds=12, during=None):
    """``clients`` threads, each with its own API client, POST ``url`` ``rounds`` times (started together,
    then at random intervals, so requests also land while a sync starts, runs and ends on a worker).

    ``during(round)`` runs on the main thread between rounds. Returns the statuses and errors.
    """
    from django.db import connection
    from rest_framework.test import APIClient

    statuses, errors, answers = [], [], []
    barrier = threading.Barrier(clients)

    def run():
        rng = random.Random()
        try:
            client = APIClient()
            client.force_authenticate(user)
            barrier.wait(30)
            for _ in range(rounds):
                r = client.post(url)
                statuses.append(r.status_code)
                if r.status_code == 200:
                    answers.append(r.json()['status'])
                time.sleep(rng.uniform(0.05, 0.6))  # the point: requests at random moments of the syncs
        except Exception as exc:  # pragma: no cover - reported by the caller's assertion
            errors.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(clients)]
    for t in threads:
        t.start()
    if during:
        during()
    for t in threads:
        t.join(180)
    assert not any(t.is_alive() for t in threads), 'a sync request hung'
    return statuses, errors, answers


@pytest.mark.slow
def test_concurrent_import_syncs_http_and_workers_never_duplicate(api, project, pfs, pfs_client, user, settings,
                                                                   two_workers):
    pfs_client.create_repo('default', 'images')
    put(pfs_client, 'images', {f'a/{i:04d}.png': PNG for i in range(1500)})
    r = api.post('/api/storages/pachyderm', {'project': project.id, 'pachd_address': pfs.address,
                                             'repo': 'images', 'use_blob_urls': True}, format='json')
    assert r.status_code == 201, r.content
    sid = r.json()['id']

    def more_files():
        # New heads while syncs run, so later syncs have real work to race on.
        for n in range(2):
            time.sleep(1.0)  # the point: new heads land while the hammered syncs run, not before them
            put(pfs_client, 'images', {f'b{n}/{i:04d}.png': PNG for i in range(250)})

    statuses, errors, answers = _hammer(user, f'/api/storages/pachyderm/{sid}/sync', during=more_files)
    assert not errors and statuses == [200] * 72, (statuses, errors)
    assert set(answers) <= {'queued', 'in_progress', 'completed'}, answers

    wait_for(lambda: _settled(PachydermImportStorage, sid), timeout=180, what='syncs to settle')
    # And one more sync after everything settled (an HTTP request, run on a worker).
    r = api.post(f'/api/storages/pachyderm/{sid}/sync')
    assert r.status_code == 200 and r.json()['status'] in ('queued', 'in_progress', 'completed'), r.content
    storage = wait_for(lambda: _settled(PachydermImportStorage, sid), timeout=180, what='the last sync')
    assert storage.status == 'completed', (storage.status, storage.traceback)

    state = _queue_state()
    assert state['failed'] == [], 'a sync job failed on a worker (a second job for a claimed storage?)'
    claims = storage.meta['attempts']
    print(f'\nimport: 73 sync requests -> {claims} syncs ran on the workers')
    assert 2 <= claims < 73
    assert state['finished'] == claims  # one job per claim, each finished

    files = {f.path for f in pfs_client.list_files('default', 'images', 'master')}
    assert len(files) == 2000
    keys = list(PachydermImportStorageLink.objects.filter(storage_id=sid).values_list('key', flat=True))
    assert len(keys) == len(set(keys)) == 2000 and set(keys) == files
    tasks = Task.objects.filter(project=project)
    assert tasks.count() == 2000
    assert sorted(tasks.values_list('inner_id', flat=True)) == list(range(1, 2001))
    uris = [t.data[next(iter(t.data))] for t in tasks.only('data')]
    assert len(set(uris)) == 2000
    assert storage.last_synced_commit == pfs_client.branch_head('default', 'images', 'master')


@pytest.mark.slow
def test_concurrent_export_syncs_http_and_workers_make_only_complete_commits(api, project, pfs, pfs_client, user,
                                                                             settings, two_workers):
    settings.SYNC_ON_TARGET_STORAGE_CREATION = False
    pfs_client.create_repo('default', 'labels')
    tasks = make_tasks(project, 300)
    # Annotated before the target storage exists: nothing is auto-exported.
    for task in tasks:
        Annotation.objects.create(task=task, project=project, result=RESULT, completed_by=user)
    annotation_of = dict(Annotation.objects.filter(project=project).values_list('task_id', 'id'))
    sid = create_export(api, project, pfs)['id']
    assert commits(pfs_client) == []

    statuses, errors, answers = _hammer(user, f'/api/storages/export/pachyderm/{sid}/sync')
    assert not errors and statuses == [200] * 72, (statuses, errors)
    storage = wait_for(lambda: _settled(PachydermExportStorage, sid), timeout=180, what='export syncs to settle')
    assert storage.status == 'completed', (storage.status, storage.traceback)

    state = _queue_state()
    assert state['failed'] == [], 'an export job failed on a worker'
    claims = storage.meta['attempts']
    history = commits(pfs_client)
    print(f'\nexport: 72 sync requests -> {claims} syncs, {len(history)} commits')
    assert 2 <= claims < 72
    assert state['finished'] == claims
    # Exactly one commit per sync that ran, none from a lost race, none partial.
    assert len(history) == claims, [c.description for c in history]
    expected = {f'{t.id}.json' for t in tasks}
    for commit in history:
        assert commit.finished
        assert '300 annotations in 300 files' in commit.description, commit.description
        paths = [f.path for f in pfs_client.list_files('default', 'labels', commit.id)]
        assert len(paths) == len(set(paths)) == 300 and set(paths) == expected
    assert history[-1].parent in (None, '')  # the first commit had no parent to borrow files from
    assert storage.last_exported_commit == history[0].id
    for task in tasks[:: 37]:
        body = json.loads(pfs_client.get_file_bytes('default', 'labels', history[0].id, f'{task.id}.json'))
        assert [a['id'] for a in body['annotations']] == [annotation_of[task.id]]
        assert body['annotations'][0]['result'] == RESULT
    links = PachydermExportStorageLink.objects.filter(storage_id=sid)
    assert links.count() == 300 and set(links.values_list('commit', flat=True)) == {history[0].id}


# ----------------------------------------------------------------------------- auto-export during a sync
RESULT_DOG = [{**RESULT[0], 'value': {**RESULT[0]['value'], 'rectanglelabels': ['Dog']}}]


@pytest.mark.slow
def test_annotations_saved_during_a_running_export_sync_reach_the_repo(api, project, pfs, pfs_client, user, settings,
                                                                        monkeypatch):
    """Inline mode. While a manual sync's commit is open pachd refuses any other commit on the branch, so the
    auto-export of an annotation submitted (or updated) meanwhile fails, and the sync itself read its list
    of annotations when it started. Afterwards both must be in the repo as the database holds them, not
    silently missing with the storage saying "completed"."""
    from django.db import connection
    from label_studio_pachyderm.exports import writer as exporter
    from rest_framework.test import APIClient

    settings.SYNC_ON_TARGET_STORAGE_CREATION = False
    pfs_client.create_repo('default', 'labels')
    tasks = make_tasks(project, 41)
    for task in tasks[:40]:
        Annotation.objects.create(task=task, project=project, result=RESULT, completed_by=user)
    updated = Annotation.objects.get(task=tasks[0])
    sid = create_export(api, project, pfs)['id']

    real_ops = exporter._Export._task_ops

    def slow_ops(self):  # a big export: its commit stays open for a few seconds
        for op in real_ops(self):
            time.sleep(0.1)  # the fault: each file slow, so saves land while the commit is open
            yield op

    monkeypatch.setattr(exporter._Export, '_task_ops', slow_ops)
    result = {}

    def manual_sync():
        try:
            client = APIClient()
            client.force_authenticate(user)
            result['sync'] = client.post(f'/api/storages/export/pachyderm/{sid}/sync').json()
        finally:
            connection.close()

    def sync_commit_open():
        history = commits(pfs_client)
        return bool(history) and not history[0].finished

    thread = threading.Thread(target=manual_sync)
    thread.start()
    wait_for(sync_commit_open, timeout=30, what='the sync commit to open')
    late = tasks[40]
    r = api.post(f'/api/tasks/{late.id}/annotations/', {'result': RESULT}, format='json')
    assert r.status_code == 201, r.content
    late_id = r.json()['id']
    r = api.patch(f'/api/annotations/{updated.id}/', {'result': RESULT_DOG}, format='json')
    assert r.status_code == 200, r.content
    assert sync_commit_open(), 'the sync ended before the submits: make it slower'
    thread.join(120)
    assert result['sync']['status'] == 'completed', result['sync']

    storage = PachydermExportStorage.objects.get(id=sid)
    print(f'\nafter the sync: status={storage.status} traceback={storage.traceback!r}')
    assert storage.status == 'completed', storage.traceback
    history = commits(pfs_client)
    assert len(history) == 2 and all(c.finished for c in history)  # the sync's, then one for what came during it
    assert '40 annotations in 40 files' in history[1].description
    assert 'auto-export' in history[0].description and '2 annotations in 2 files' in history[0].description
    files = [f.path for f in pfs_client.list_files('default', 'labels', 'master')]
    assert sorted(files) == sorted(f'{t.id}.json' for t in tasks)
    body = json.loads(pfs_client.get_file_bytes('default', 'labels', 'master', f'{late.id}.json'))
    assert [a['id'] for a in body['annotations']] == [late_id] and body['annotations'][0]['result'] == RESULT
    body = json.loads(pfs_client.get_file_bytes('default', 'labels', 'master', f'{tasks[0].id}.json'))
    assert [a['id'] for a in body['annotations']] == [updated.id]
    assert body['annotations'][0]['result'] == RESULT_DOG
    assert PachydermExportStorageLink.objects.filter(storage_id=sid).count() == 41


# ----------------------------------------------------------------------------- one file, many rows
def test_one_big_jsonl_is_imported_in_batches(api, text_project, pfs, pfs_client, settings, monkeypatch):
    """PACHYDERM_IMPORT_BATCH_SIZE bounds every database batch, also within one file: a 100,000-line JSONL
    must not become one 100,000-task transaction held in memory (see test_large.py for the real size)."""
    from label_studio_pachyderm.imports import sync as importer

    settings.PACHYDERM_IMPORT_BATCH_SIZE = 50
    pfs_client.create_repo('default', 'tasks')
    put(pfs_client, 'tasks', {
        'big.jsonl': ''.join(json.dumps({'text': f'r{i}'}) + '\n' for i in range(520)),
        'small.json': json.dumps([{'text': 's1'}, {'text': 's2'}]),
    })
    batches, real_flush = [], importer._flush

    def spy(storage, link_class, state):
        if state.pending:
            batches.append(len(state.pending))
        real_flush(storage, link_class, state)

    monkeypatch.setattr(importer, '_flush', spy)
    r = api.post('/api/storages/pachyderm', {'project': text_project.id, 'pachd_address': pfs.address,
                                             'repo': 'tasks'}, format='json')
    assert r.status_code == 201, r.content
    storage = api.post(f"/api/storages/pachyderm/{r.json()['id']}/sync").json()
    assert storage['status'] == 'completed' and storage['last_sync_count'] == 522, storage
    assert sum(batches) == 522 and max(batches) <= 50, batches
    texts = list(Task.objects.filter(project=text_project).values_list('data__text', flat=True))
    assert len(texts) == 522 and set(texts) == {f'r{i}' for i in range(520)} | {'s1', 's2'}
    rows = PachydermImportStorageLink.objects.filter(key='big.jsonl').values_list('row_index', flat=True)
    assert sorted(rows) == list(range(520))


# ----------------------------------------------------------------------------- syncing while a commit is open
class _OpenCommit:
    """A second writer (pachctl put-file, a pipeline, ...) that holds the branch head open: it writes
    ``before``, waits until released, writes ``after``, then finishes its commit."""

    def __init__(self, address, repo, before, after):
        self.client = pachd.PachdClient(address)
        self.repo, self.before, self.after = repo, before, after
        self.release, self.outcome = threading.Event(), {}
        self.thread = threading.Thread(target=self._write)

    def _ops(self):
        for path in self.before:
            yield pachd.FileOp.put(path, PNG)
        self.release.wait(60)
        for path in self.after:
            yield pachd.FileOp.put(path, PNG)

    def _write(self):
        try:
            self.outcome['commit'] = self.client.write_commit('default', self.repo, 'master', self._ops())
        except Exception as exc:  # pragma: no cover - asserted by the caller
            self.outcome['error'] = exc

    def __enter__(self):
        self.thread.start()

        def head_open():
            try:
                return not self.client.inspect_commit('default', self.repo, 'master').finished
            except pachd.PachdNotFound:
                return False

        wait_for(head_open, timeout=30, what='the writer to open its commit')
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.thread.join(60)
        self.client.close()
        assert 'error' not in self.outcome, self.outcome


def test_import_sync_while_a_commit_is_open_never_skips_its_files(api, project, pfs, pfs_client):
    """The sync must not record an unfinished commit as synced: its files would never be imported by the
    incremental syncs that follow (they diff from it). It reads the newest finished commit instead."""
    pfs_client.create_repo('default', 'images')
    first = put(pfs_client, 'images', {'a.png': PNG})
    r = api.post('/api/storages/pachyderm', {'project': project.id, 'pachd_address': pfs.address,
                                             'repo': 'images', 'use_blob_urls': True}, format='json')
    sid = r.json()['id']
    assert api.post(f'/api/storages/pachyderm/{sid}/sync').json()['last_sync_count'] == 1

    with _OpenCommit(pfs.address, 'images', ['b.png'], ['c.png']) as writer:
        during = api.post(f'/api/storages/pachyderm/{sid}/sync').json()
    assert during['status'] == 'completed', during
    assert during['last_synced_commit'] == first and during['last_sync_count'] == 0, during

    after = api.post(f'/api/storages/pachyderm/{sid}/sync').json()
    assert after['status'] == 'completed' and after['last_synced_commit'] == writer.outcome['commit'], after
    assert after['meta']['sync_mode'] == 'incremental' and after['last_sync_count'] == 2
    keys = sorted(PachydermImportStorageLink.objects.filter(storage_id=sid).values_list('key', flat=True))
    assert keys == ['a.png', 'b.png', 'c.png']
    assert Task.objects.filter(project=project).count() == 3


def test_import_sync_before_the_first_commit_is_finished_waits_for_it(api, project, pfs, pfs_client):
    pfs_client.create_repo('default', 'images')
    # Saved directly: the storage form refuses a branch that does not exist yet.
    sid = PachydermImportStorage.objects.create(project=project, pachd_address=pfs.address, repo='images',
                                                use_blob_urls=True).id
    with _OpenCommit(pfs.address, 'images', ['a.png'], ['b.png']) as writer:
        during = api.post(f'/api/storages/pachyderm/{sid}/sync').json()
    assert during['status'] == 'completed' and during['last_sync_count'] == 0, during
    assert during['last_synced_commit'] == '' and Task.objects.filter(project=project).count() == 0
    after = api.post(f'/api/storages/pachyderm/{sid}/sync').json()
    assert after['status'] == 'completed' and after['last_sync_count'] == 2, after
    assert after['last_synced_commit'] == writer.outcome['commit']
    assert Task.objects.filter(project=project).count() == 2


# ----------------------------------------------------------------------------- Redis unreachable
def test_sync_request_with_redis_unreachable_never_leaves_the_storage_queued(api, project, pfs, pfs_client, settings):
    pfs_client.create_repo('default', 'images')
    put(pfs_client, 'images', {'a.png': PNG})
    sid = api.post('/api/storages/pachyderm', {'project': project.id, 'pachd_address': pfs.address,
                                               'repo': 'images', 'use_blob_urls': True}, format='json').json()['id']
    settings.PACHYDERM_REDIS_URL = 'redis://:redis-pw-42@127.0.0.1:1/0'  # background mode, but Redis is down
    r = api.post(f'/api/storages/pachyderm/{sid}/sync')
    storage = PachydermImportStorage.objects.get(id=sid)
    print(f'\nRedis down: HTTP {r.status_code}, storage {storage.status}: {storage.traceback!r}')
    assert r.status_code == 200 and r.json()['status'] == 'failed', r.content
    assert storage.status == 'failed' and 'Redis at 127.0.0.1:1/0' in storage.traceback, storage.traceback
    assert 'redis-pw-42' not in r.content.decode() + storage.traceback + json.dumps(storage.meta)
    # Once Redis is back (here: inline mode), the next request syncs at once, not after a stale-claim timeout.
    settings.PACHYDERM_REDIS_URL = ''
    r = api.post(f'/api/storages/pachyderm/{sid}/sync')
    assert r.status_code == 200 and r.json()['status'] == 'completed' and r.json()['last_sync_count'] == 1
