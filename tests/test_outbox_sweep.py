"""The outbox sweep and reconcile: changes whose writer is gone, or that were recorded nowhere, still land.

In-process, with the real outbox, the local PFS server over gRPC and a TCP proxy
that freezes like a hung pachd. ``tests/test_process_death.py`` does the same with
real Label Studio and RQ processes killed by SIGKILL.
"""
import time
from datetime import timedelta

import pytest
from django.db import OperationalError, connection
from django.utils import timezone
from label_studio_pachyderm import leases, pachd
from label_studio_pachyderm.exports import outbox, sweeper
from label_studio_pachyderm.models import PachydermExportOutboxEntry, PachydermExportStorage, PachydermLease
from tasks.models import Annotation

from tcp_proxy import FreezingProxy
from test_export import RESULT, create_export, labels, make_tasks  # noqa: F401  (labels is a fixture)
from test_rq import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _files(client):
    try:
        return {f.path for f in client.list_files('default', 'labels', 'master')}
    except pachd.PachdNotFound:
        return set()


def _orphan_rows(api, project, monkeypatch, n):
    """``n`` annotations whose rows are recorded but never written: the process that recorded them
    'died' before its flush (no request flush, no retry thread of its own)."""
    tasks = make_tasks(project, n)
    with monkeypatch.context() as patch:
        patch.setattr(outbox, 'write_soon', lambda storage: None)
        for task in tasks:
            r = api.post(f'/api/tasks/{task.id}/annotations/', {'result': RESULT}, format='json')
            assert r.status_code == 201, r.content
    return tasks


@pytest.fixture
def sweep(transactional_db):
    """Start a sweeper; it is stopped (and joined) before the test's database goes away."""
    running = []

    def start(every=0.2):
        running.append(sweeper.Sweeper(every=every).start())
        return running[-1]

    yield start
    for one in running:
        one.stop(timeout=60)
        assert not one.running, 'the sweeper did not stop'



def test_rows_left_by_a_dead_process_are_written_by_the_sweep(api, project, pfs, pfs_client, labels, settings,
                                                              monkeypatch, sweep):
    """While pachd is frozen the storage shows the waiting rows and why; once it thaws the sweep
    writes them, with nothing new submitted, and the error clears."""
    settings.SYNC_ON_TARGET_STORAGE_CREATION = False
    settings.PACHYDERM_EXPORT_RETRY_SECONDS = 1
    settings.PACHYDERM_GRPC_TIMEOUT = 1
    proxy = FreezingProxy(pfs.address)
    try:
        sid = create_export(api, project, pfs, pachd_address=proxy.address)['id']
        proxy.freeze()
        tasks = _orphan_rows(api, project, monkeypatch, 3)
        assert outbox.pending_for_id(sid).count() == 3
        sweep()

        def card():
            return api.get(f'/api/storages/export/pachyderm/{sid}').json()

        shown = wait_for(lambda: (lambda c: c if c['meta'].get('last_export_error') else None)(card()),
                         timeout=60, what='the card to show the waiting rows')
        assert shown['meta']['pending_exports'] == 3 and shown['status'] == 'completed_with_errors'
        assert '3 annotation changes not exported yet' in shown['meta']['last_export_error']
        thawed = time.monotonic()
        proxy.thaw()
        wait_for(lambda: _files(pfs_client) == {f'{t.id}.json' for t in tasks}, timeout=120,
                 what='the rows written after the thaw')
        print(f'\nthaw to 3 files in the repo: {time.monotonic() - thawed:.1f} s')
        cleared = wait_for(lambda: (lambda c: c if not c['meta'].get('last_export_error') else None)(card()),
                           timeout=30, what='the error to clear')
        assert cleared['meta']['pending_exports'] == 0 and cleared['status'] == 'completed'
    finally:
        proxy.close()


@pytest.mark.slow
def test_the_sweep_waits_out_a_dead_writers_lease(api, project, pfs, pfs_client, labels, settings, monkeypatch,
                                                  sweep):
    """A writer that died holding the branch's lease: nobody writes until the lease runs out, then
    the sweep does."""
    settings.SYNC_ON_TARGET_STORAGE_CREATION = False
    settings.PACHYDERM_EXPORT_RETRY_SECONDS = 0.5
    sid = create_export(api, project, pfs)['id']
    storage = PachydermExportStorage.objects.get(id=sid)
    dead = leases.Lease(outbox.target_key(storage), 3)
    assert dead.acquire()  # and never renewed: its process is gone
    tasks = _orphan_rows(api, project, monkeypatch, 2)
    sweep()
    assert sweeper.sweep_once() == 0 and outbox.pending_for_id(sid).count() == 2  # the lease still runs
    wait_for(lambda: _files(pfs_client) == {f'{t.id}.json' for t in tasks}, timeout=60,
             what='the sweep to write once the lease ran out')
    lease_row = PachydermLease.objects.get(key=outbox.target_key(storage))
    assert lease_row.holder != dead.holder


def test_the_sweep_leaves_fresh_rows_and_live_writers_alone(api, project, pfs, labels, settings, monkeypatch):
    settings.SYNC_ON_TARGET_STORAGE_CREATION = False
    settings.PACHYDERM_EXPORT_RETRY_SECONDS = 30
    sid = create_export(api, project, pfs)['id']
    _orphan_rows(api, project, monkeypatch, 1)
    assert sweeper.sweep_once() == 0  # younger than a retry: its own process is still on it
    PachydermExportOutboxEntry.objects.filter(storage_id=sid).update(created_at=timezone.now() - timedelta(minutes=5))
    storage = PachydermExportStorage.objects.get(id=sid)
    live = leases.Lease(outbox.target_key(storage), 30)
    assert live.acquire()
    assert sweeper.sweep_once() == 0  # a live writer has the branch
    live.release()
    handed = []
    monkeypatch.setattr('label_studio_pachyderm.exports.sweeper.write_overdue', lambda storage: handed.append(storage.id))
    assert sweeper.sweep_once() == 1 and handed == [sid]


def _insert_fails(monkeypatch, times=None, message='database is locked'):
    """Outbox inserts fail (all of them, or the first ``times``) with ``message``."""
    real, failed = outbox.record_change, []

    def refuse(*args, **kwargs):
        if times is not None and len(failed) >= times:
            return real(*args, **kwargs)
        failed.append(1)
        raise OperationalError(message)

    monkeypatch.setattr(outbox, 'record_change', refuse)
    return failed


def test_a_save_whose_row_cannot_be_recorded_is_reconciled(api, project, pfs, pfs_client, labels, settings,
                                                           monkeypatch, sweep):
    """Label Studio saves annotations in autocommit: the save is committed before its row could be
    recorded. The reconcile finds it (newer than its export link) and it is exported all the same,
    a new annotation and an edited one alike."""
    settings.SYNC_ON_TARGET_STORAGE_CREATION = False
    settings.PACHYDERM_EXPORT_RETRY_SECONDS = 0.5
    sid = create_export(api, project, pfs)['id']
    edited, created = make_tasks(project, 2)
    r = api.post(f'/api/tasks/{edited.id}/annotations/', {'result': RESULT}, format='json')
    assert r.status_code == 201
    edited_id = r.json()['id']
    wait_for(lambda: f'{edited.id}.json' in _files(pfs_client), what='the first export')
    real_record = outbox.record_change
    with monkeypatch.context() as patch:
        _insert_fails(patch)
        r = api.post(f'/api/tasks/{created.id}/annotations/', {'result': RESULT}, format='json')
        assert r.status_code == 201, r.content  # saved: failing now would only hide it
        changed = [dict(RESULT[0], value=dict(RESULT[0]['value'], x=77))]
        r = api.patch(f'/api/annotations/{edited_id}/', {'result': changed}, format='json')
        assert r.status_code == 200, r.content
    assert outbox.record_change is real_record
    assert not outbox.pending_for_id(sid).exists()
    sweep()

    def exported():
        if f'{created.id}.json' not in _files(pfs_client):
            return False
        body = pfs_client.get_file_bytes('default', 'labels', 'master', f'{edited.id}.json')
        return b'"x": 77' in body or b'"x":77' in body

    wait_for(exported, timeout=60, what='the reconcile to export both changes')
    assert not outbox.pending_for_id(sid).exists()


@pytest.mark.slow
def test_a_delete_whose_row_cannot_be_recorded_is_refused(api, project, pfs, pfs_client, labels, settings,
                                                          monkeypatch):
    """A delete runs in a transaction: a row that cannot be recorded fails it, and the annotation
    and its file stay. A database that was only locked for a while gets the whole request run
    again (Label Studio's own retry on SQLite), and the delete goes through with its row."""
    settings.SYNC_ON_TARGET_STORAGE_CREATION = False
    sid = create_export(api, project, pfs, can_delete_objects=True)['id']
    task = make_tasks(project, 1)[0]
    r = api.post(f'/api/tasks/{task.id}/annotations/', {'result': RESULT}, format='json')
    annotation_id = r.json()['id']
    wait_for(lambda: f'{task.id}.json' in _files(pfs_client), what='the export')
    with monkeypatch.context() as patch:
        _insert_fails(patch, message='disk I/O error')
        r = api.delete(f'/api/annotations/{annotation_id}/')
        assert r.status_code == 500
    assert Annotation.objects.filter(id=annotation_id).exists()
    assert f'{task.id}.json' in _files(pfs_client) and not outbox.pending_for_id(sid).exists()
    with monkeypatch.context() as patch:
        failed = _insert_fails(patch, times=signals_tries())  # one request's worth of tries
        r = api.delete(f'/api/annotations/{annotation_id}/')
    assert len(failed) == signals_tries()
    if connection.vendor == 'sqlite':
        assert r.status_code == 204, r.content  # Label Studio ran it again
    else:  # no retry middleware on PostgreSQL: the user sees the error and deletes again
        assert r.status_code == 500 and Annotation.objects.filter(id=annotation_id).exists()
        r = api.delete(f'/api/annotations/{annotation_id}/')
        assert r.status_code == 204, r.content
    assert not Annotation.objects.filter(id=annotation_id).exists()
    wait_for(lambda: f'{task.id}.json' not in _files(pfs_client), what='the file removed')
    assert not outbox.pending_for_id(sid).exists()


def signals_tries():
    from label_studio_pachyderm import signals

    return signals._TRIES


def test_a_failed_insert_is_tried_again(api, project, pfs, pfs_client, labels, settings, monkeypatch):
    """A database that refuses one insert (locked for a moment) costs a retry, not the row."""
    settings.SYNC_ON_TARGET_STORAGE_CREATION = False
    create_export(api, project, pfs)
    task = make_tasks(project, 1)[0]
    real, refused = outbox.record_change, []

    def once_locked(*args, **kwargs):
        if not refused:
            refused.append(1)
            raise OperationalError('database is locked')
        return real(*args, **kwargs)

    monkeypatch.setattr(outbox, 'record_change', once_locked)
    r = api.post(f'/api/tasks/{task.id}/annotations/', {'result': RESULT}, format='json')
    assert r.status_code == 201 and refused
    wait_for(lambda: f'{task.id}.json' in _files(pfs_client), what='the export')


def test_a_flush_no_rq_scheduler_moved_is_enqueued_by_the_sweep(api, project, pfs, labels, settings):
    """Background mode after every worker died: the flush scheduled for the storage is due but no
    scheduler runs to move it. Handing the storage over puts that job on the queue itself."""
    import uuid
    from datetime import timedelta

    from rq import Queue
    from rq.registry import ScheduledJobRegistry

    from conftest import require_service
    from label_studio_pachyderm.exports import jobs
    from test_rq import REDIS_URL, redis_or_none

    conn = redis_or_none()
    require_service('Redis', conn is not None, f'start one on {REDIS_URL}')
    settings.SYNC_ON_TARGET_STORAGE_CREATION = False
    settings.PACHYDERM_REDIS_URL = REDIS_URL
    settings.PACHYDERM_RQ_QUEUE = f'pachyderm-test-{uuid.uuid4().hex[:8]}'
    queue = Queue(settings.PACHYDERM_RQ_QUEUE, connection=conn)
    try:
        storage = PachydermExportStorage.objects.get(id=create_export(api, project, pfs)['id'])
        assert jobs._claim_flush(queue, storage, ttl=60)  # as schedule_flush does
        late = queue.enqueue_in(timedelta(seconds=-30), jobs.flush_job, type(storage), storage.id)
        registry = ScheduledJobRegistry(queue=queue)
        assert late.id in registry.get_job_ids() and queue.count == 0
        jobs.write_overdue(storage)
        assert late.id not in registry.get_job_ids() and queue.job_ids == [late.id]
    finally:
        queue.empty()
        for job_id in ScheduledJobRegistry(queue=queue).get_job_ids():
            ScheduledJobRegistry(queue=queue).remove(job_id)
        conn.delete(*conn.keys(f'*{settings.PACHYDERM_RQ_QUEUE}*') or ['-'])
