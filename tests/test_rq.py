"""Background mode: syncs and auto-exports on a real RQ worker process (plugin settings) and Redis."""
import os
import subprocess
import sys
import time
import uuid

import pytest
from label_studio_pachyderm import pachd
from label_studio_pachyderm.models import PachydermExportStorage, PachydermImportStorage
from tasks.models import Task

from conftest import require_service, restart_pfs
from waiting import wait_for  # noqa: F401  (other test files import it from here too)
from test_export import RESULT, annotate, commits, make_tasks
from test_import import PNG, put

pytestmark = pytest.mark.django_db(transaction=True)

REDIS_URL = os.environ.get('PACHYDERM_TEST_REDIS_URL', 'redis://127.0.0.1:6379/14')


def redis_or_none(url=REDIS_URL):
    """A connection to the Redis at ``url`` when it answers, else None."""
    from redis import Redis

    try:
        conn = Redis.from_url(url, socket_connect_timeout=3)
        conn.ping()
        return conn
    except Exception:
        return None


@pytest.fixture
def rq_worker(settings, tmp_path):
    conn = redis_or_none()
    require_service('Redis', conn is not None, f'start one on {REDIS_URL} (or set PACHYDERM_TEST_REDIS_URL)')
    queue = f'pachyderm-test-{uuid.uuid4().hex[:8]}'
    settings.PACHYDERM_REDIS_URL = REDIS_URL
    settings.PACHYDERM_RQ_QUEUE = queue
    settings.PACHYDERM_EXPORT_COALESCE_SECONDS = 2
    env = {
        **os.environ,
        'DJANGO_SETTINGS_MODULE': 'label_studio_pachyderm.settings',
        # The worker must open the test database, whichever engine this lane runs on.
        'DATABASE_NAME': settings.DATABASES['default']['NAME'],
        'POSTGRE_NAME': settings.DATABASES['default']['NAME'],
        'PACHYDERM_REDIS_URL': REDIS_URL,
        'PACHYDERM_RQ_QUEUE': queue,
        'PACHYDERM_EXPORT_RETRY_SECONDS': '1',  # failed flushes retried after 1, 2, 4, ... s
        'PACHYDERM_ALLOWED_HOSTS': '127.0.0.1',
        'SENTRY_DSN': '',
    }
    cli = os.path.join(os.path.dirname(sys.executable), 'label-studio-pachyderm')
    log = open(tmp_path / 'worker.log', 'wb')
    proc = subprocess.Popen([cli, 'worker'], env=env, stdout=log, stderr=subprocess.STDOUT)
    from rq import Worker

    wait_for(lambda: any(queue in w.queue_names() for w in Worker.all(connection=conn)), 60,
             'the RQ worker to start', interval=0.3, process=proc, log=tmp_path / 'worker.log')
    yield proc
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


@pytest.mark.slow
def test_import_sync_runs_on_worker(api, project, pfs, pfs_client, rq_worker):
    pfs_client.create_repo('default', 'images')
    put(pfs_client, 'images', {f'{i}.png': PNG for i in range(30)})
    r = api.post('/api/storages/pachyderm', {'project': project.id, 'pachd_address': pfs.address,
                                             'repo': 'images', 'use_blob_urls': True}, format='json')
    sid = r.json()['id']
    r = api.post(f'/api/storages/pachyderm/{sid}/sync')
    assert r.status_code == 200 and r.json()['status'] == 'queued' and r.json()['last_sync_job']
    storage = wait_for(
        lambda: PachydermImportStorage.objects.filter(id=sid, status='completed').first(), what='import on worker'
    )
    assert storage.last_sync_count == 30
    assert Task.objects.filter(project=project).count() == 30


@pytest.mark.slow
def test_auto_exports_coalesce_into_few_commits(api, project, pfs, pfs_client, rq_worker, settings):
    settings.SYNC_ON_TARGET_STORAGE_CREATION = False
    pfs_client.create_repo('default', 'labels')
    r = api.post('/api/storages/export/pachyderm', {'project': project.id, 'pachd_address': pfs.address,
                                                    'repo': 'labels'}, format='json')
    assert r.status_code == 201
    tasks = make_tasks(project, 12)
    started = time.time()
    for task in tasks:
        annotate(api, task)
    assert time.time() - started < 10  # saves do not wait on pachd
    expected = {f'{t.id}.json' for t in tasks}
    wait_for(lambda: {f.path for f in pachd.PachdClient(pfs.address).list_files('default', 'labels', 'master')}
             == expected if commits(pfs_client) else False, what='coalesced export')
    assert 1 <= len(commits(pfs_client)) <= 3  # one window, perhaps split at its edge; never 12


@pytest.mark.slow
def test_gathered_auto_exports_that_fail_are_retried_until_pachd_is_back(api, project, pfs, pfs_client, rq_worker,
                                                                        settings):
    settings.SYNC_ON_TARGET_STORAGE_CREATION = False
    pfs_client.create_repo('default', 'labels')
    sid = api.post('/api/storages/export/pachyderm', {'project': project.id, 'pachd_address': pfs.address,
                                                      'repo': 'labels'}, format='json').json()['id']
    pfs.stop()
    tasks = make_tasks(project, 4)
    for task in tasks:
        annotate(api, task)  # saved (201) while pachd is down
    # The flush (after the 2 s window) fails and is noted on the storage; nobody syncs.
    wait_for(lambda: PachydermExportStorage.objects.filter(id=sid, status='completed_with_errors').exists(),
             timeout=120, what='the failed flush noted on the storage')
    with restart_pfs(pfs) as again:
        client = pachd.PachdClient(again.address)
        expected = {f'{t.id}.json' for t in tasks}

        def exported():
            try:
                return {f.path for f in client.list_files('default', 'labels', 'master')} == expected
            except pachd.PachdNotFound:  # no commit on the branch yet
                return False

        wait_for(exported, timeout=120, what='the retried flush')
        assert len(list(client.list_commits('default', 'labels'))) == 1  # one commit with all four


@pytest.mark.slow
def test_export_sync_on_worker_is_one_commit(api, project, pfs, pfs_client, rq_worker, settings):
    settings.SYNC_ON_TARGET_STORAGE_CREATION = False
    pfs_client.create_repo('default', 'labels')
    settings.PACHYDERM_REDIS_URL = ''  # annotate without auto-export jobs
    sid = api.post('/api/storages/export/pachyderm', {'project': project.id, 'pachd_address': pfs.address,
                                                      'repo': 'labels'}, format='json').json()['id']
    PachydermExportStorage.objects.filter(id=sid).delete()
    tasks = make_tasks(project, 20)
    for task in tasks:
        annotate(api, task, RESULT)
    settings.PACHYDERM_REDIS_URL = REDIS_URL
    sid = api.post('/api/storages/export/pachyderm', {'project': project.id, 'pachd_address': pfs.address,
                                                      'repo': 'labels'}, format='json').json()['id']
    r = api.post(f'/api/storages/export/pachyderm/{sid}/sync')
    assert r.json()['status'] == 'queued'
    wait_for(lambda: PachydermExportStorage.objects.filter(id=sid, status='completed').exists(), what='export')
    assert len(commits(pfs_client)) == 1
    assert len(list(pfs_client.list_files('default', 'labels', 'master'))) == 20
