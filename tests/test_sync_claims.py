"""A sync holds its claim for its whole run: a slow step never lets a second sync run beside it,
and even a bug cannot create two links (two tasks) for one file row.
"""
import importlib
import threading
import time

import pytest
from django.db import IntegrityError, connection, transaction
from label_studio_pachyderm import jobs, leases
from label_studio_pachyderm.models import PachydermImportStorage, PachydermImportStorageLink
from tasks.models import Annotation, Task

from tcp_proxy import FreezingProxy
from test_import import PNG, put
from waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_slow_step_never_lets_a_second_sync_run(api, project, pfs, pfs_client, user, settings):
    """With Label Studio's "in progress" timer at 0.1 s (a sync without a progress ping for 0.5 s looks
    dead), a sync stuck on a frozen pachd for seconds is still the only one: a second request is refused,
    Label Studio's list view does not mark it failed, and 50 files give 50 tasks."""
    settings.STORAGE_IN_PROGRESS_TIMER = 0.1
    settings.PACHYDERM_LEASE_SECONDS = 3
    settings.PACHYDERM_GRPC_TIMEOUT = 20
    pfs_client.create_repo('default', 'images')
    put(pfs_client, 'images', {f'img/{i}.png': PNG for i in range(50)})
    proxy = FreezingProxy(pfs.address)
    try:
        r = api.post('/api/storages/pachyderm', {'project': project.id, 'pachd_address': proxy.address,
                                                 'repo': 'images', 'use_blob_urls': True}, format='json')
        assert r.status_code == 201, r.content
        sid = r.json()['id']
        key = jobs.sync_key(PachydermImportStorage, sid)
        proxy.freeze()

        def first_sync():  # as the API, a worker or a watcher starts it, after the connection check
            try:
                PachydermImportStorage.objects.get(id=sid).sync()
            finally:
                connection.close()

        thread = threading.Thread(target=first_sync)
        thread.start()
        wait_for(lambda: leases.is_held(key), 30, 'the first sync to take its lease', interval=0.05)
        time.sleep(1.5)  # three times what Label Studio's timer allows without a ping
        listed = api.get(f'/api/storages/pachyderm?project={project.id}')
        assert listed.status_code == 200
        assert [s['status'] for s in listed.json()] != ['failed'], listed.json()
        started = time.monotonic()
        PachydermImportStorage.objects.get(id=sid).sync()
        # Refused at once; a sync that ran would wait on the frozen pachd like the first.
        assert time.monotonic() - started < 3
        assert PachydermImportStorage.objects.get(id=sid).status in ('queued', 'in_progress')
        proxy.thaw()
        thread.join(120)
        assert not thread.is_alive()
    finally:
        proxy.thaw()
        proxy.close()
    storage = PachydermImportStorage.objects.get(id=sid)
    assert storage.status == 'completed', storage.traceback
    assert Task.objects.filter(project=project).count() == 50
    assert PachydermImportStorageLink.objects.filter(storage=storage).count() == 50
    assert not leases.is_held(key)


def _link(storage, key, row=None, annotated=0, user=None):
    task = Task.objects.create(project=storage.project, data={'image': key})
    for _ in range(annotated):
        Annotation.objects.create(task=task, project=storage.project, result=[], completed_by=user)
    return PachydermImportStorageLink.objects.create(task=task, storage=storage, key=key, row_index=row)


def test_the_database_refuses_a_second_link_for_one_file_row(project):
    storage = PachydermImportStorage.objects.create(project=project, repo='images')
    _link(storage, 'a.png')
    _link(storage, 'rows.jsonl', row=0)
    _link(storage, 'rows.jsonl', row=1)  # another row of the same file: fine
    for key, row in (('a.png', None), ('rows.jsonl', 1)):
        with pytest.raises(IntegrityError), transaction.atomic():
            _link(storage, key, row=row)


def test_migration_resolves_existing_duplicates_without_losing_annotations(project, user):
    from django.apps import apps

    migration = importlib.import_module('label_studio_pachyderm.migrations.0002_outbox_leases_one_link_per_file')
    constraint = next(c for c in PachydermImportStorageLink._meta.constraints
                      if c.name == 'pachyderm_one_link_per_file_row')
    storage = PachydermImportStorage.objects.create(project=project, repo='images')
    with connection.schema_editor() as editor:
        editor.remove_constraint(PachydermImportStorageLink, constraint)
    try:
        plain = _link(storage, 'a.png')
        labelled = _link(storage, 'a.png', annotated=2, user=user)
        spare = _link(storage, 'a.png')
        also_labelled = _link(storage, 'a.png', annotated=1, user=user)
        single = _link(storage, 'b.png')
        migration.resolve_duplicate_links(apps, None)
    finally:
        with connection.schema_editor() as editor:
            editor.add_constraint(PachydermImportStorageLink, constraint)
    links = PachydermImportStorageLink.objects.filter(storage=storage)
    assert sorted(links.values_list('key', flat=True)) == ['a.png', 'b.png']
    assert links.get(key='a.png').task_id == labelled.task_id  # the most annotated one stays linked
    assert not Task.objects.filter(id__in=[plain.task_id, spare.task_id]).exists()  # unannotated duplicates go
    assert Task.objects.filter(id=also_labelled.task_id).exists()  # annotated: kept, only unlinked
    assert Annotation.objects.filter(project=project).count() == 3
    assert links.get(key='b.png').task_id == single.task_id


def test_sync_lease_heartbeat_outlives_a_step_longer_than_the_lease(db, settings):
    """A holder busy for three lease periods keeps its lease: the heartbeat, not progress, renews it."""
    lease = leases.Lease('sync:test:1', 0.6)
    assert lease.acquire()
    lease.start_heartbeat(every=0.1)
    try:
        time.sleep(2.0)  # the point: the "slow step", over three lease periods with no progress
        assert leases.is_held('sync:test:1') and not lease.lost.is_set()
        assert not leases.Lease('sync:test:1', 0.6).acquire()
    finally:
        lease.release()
    assert not leases.is_held('sync:test:1')
