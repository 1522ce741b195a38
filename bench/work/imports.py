"""Import syncs, each provider set up as its storage form would leave it, then ``storage.sync()``.

``storage.sync()`` is what Label Studio's sync endpoint calls; with Redis off (Label
Studio OSS) all three providers run the whole sync inline, so the wall time of that
one call is the sync.
"""
from __future__ import annotations

from .common import IMAGE_CONFIG, TEXT_CONFIG, Measure, emit, make_owner, make_project, require, storage_outcome

# moto accepts any credentials; the endpoint comes from S3_ENDPOINT (see bench/runner.py).
S3_CREDENTIALS = dict(aws_access_key_id='bench', aws_secret_access_key='bench-secret', region_name='us-east-1')


def make_import_storage(project, p: dict):
    blob = p['kind'] == 'media'
    if p['provider'] == 'pachyderm':
        from label_studio_pachyderm.models import PachydermImportStorage

        return PachydermImportStorage.objects.create(
            project=project, title='bench', pachd_address=p['address'], repo=p['repo'], prefix=p['prefix'],
            use_blob_urls=blob, recursive_scan=True,
        )
    if p['provider'] == 's3':
        from io_storages.s3.models import S3ImportStorage

        return S3ImportStorage.objects.create(
            project=project, title='bench', bucket=p['bucket'], prefix=p['prefix'], use_blob_urls=blob,
            recursive_scan=True, presign=False, **S3_CREDENTIALS,
        )
    if p['provider'] == 'localfiles':
        from io_storages.localfiles.models import LocalFilesImportStorage

        return LocalFilesImportStorage.objects.create(
            project=project, title='bench', path=p['path'], use_blob_urls=blob, recursive_scan=False,
        )
    raise ValueError(f'unknown provider {p["provider"]!r}')


def full_sync(p: dict) -> None:
    """A new project and storage, one full sync of ``count`` objects."""
    from tasks.models import Task

    user = make_owner()
    project = make_project(user, IMAGE_CONFIG if p['kind'] == 'media' else TEXT_CONFIG, p.get('title', 'bench'))
    storage = make_import_storage(project, p)
    measure = Measure()
    with measure.timing():
        storage.sync()
    outcome = storage_outcome(storage)
    created = Task.objects.filter(project=project).count()
    require(outcome['status'] == 'completed', f'sync ended {outcome}')
    require(created == p['count'], f'{created} tasks created, expected {p["count"]}')
    emit(measure.result(created, storage_id=storage.id, project_id=project.id, outcome=outcome))


def s3_prestate(p: dict) -> None:
    """The database state a completed S3 sync of ``count`` media objects leaves, written in bulk.

    Only the re-sync after it is measured; running the per-task S3 sync itself for
    100,000 objects would take most of an hour (scenario 1 measures that path).
    Rows are what ImportStorage.add_task and S3ImportStorageLink.create write.
    """
    from django.conf import settings
    from django.db import transaction
    from io_storages.s3.models import S3ImportStorageLink
    from tasks.models import Task

    from ..content import media_key

    user = make_owner()
    project = make_project(user, IMAGE_CONFIG, p.get('title', 'bench'))
    storage = make_import_storage(project, dict(p, provider='s3', kind='media'))
    overlap = project.maximum_annotations
    for start in range(0, p['count'], 2000):
        keys = [media_key(i) for i in range(start, min(p['count'], start + 2000))]
        with transaction.atomic():
            tasks = Task.objects.bulk_create([
                Task(data={settings.DATA_UNDEFINED_NAME: f's3://{p["bucket"]}/{key}'}, project=project,
                     overlap=overlap, is_labeled=False, inner_id=start + n + 1)
                for n, key in enumerate(keys)
            ])
            S3ImportStorageLink.objects.bulk_create(
                [S3ImportStorageLink(task=task, key=key, storage=storage) for task, key in zip(tasks, keys)]
            )
            project.summary.update_data_columns(tasks)
    storage.info_set_queued()  # Label Studio's status machine: queued -> in progress -> completed
    storage.info_set_in_progress()
    storage.info_set_completed(last_sync_count=p['count'], tasks_existed=0)
    require(Task.objects.filter(project=project).count() == p['count'], 'prestate task count')
    emit(dict(seconds=0, items=p['count'], storage_id=storage.id, project_id=project.id))


def resync(p: dict) -> None:
    """Sync an existing storage again after ``added`` new objects; nothing else changed."""
    from tasks.models import Task

    if p['provider'] == 'pachyderm':
        from label_studio_pachyderm.models import PachydermImportStorage as storage_class
    else:
        from io_storages.s3.models import S3ImportStorage as storage_class
    storage = storage_class.objects.get(id=p['storage_id'])
    before = Task.objects.filter(project_id=storage.project_id).count()
    measure = Measure()
    with measure.timing():
        storage.sync()
    outcome = storage_outcome(storage)
    after = Task.objects.filter(project_id=storage.project_id).count()
    require(outcome['status'] == 'completed', f're-sync ended {outcome}')
    require(after - before == p['added'], f're-sync created {after - before} tasks, expected {p["added"]}')
    require(outcome['last_sync_count'] == p['added'], f'last_sync_count {outcome["last_sync_count"]}')
    if p['provider'] == 'pachyderm':
        require(outcome['meta'].get('sync_mode') == 'incremental', f'sync mode {outcome["meta"].get("sync_mode")}')
    emit(measure.result(p['added'], repo_objects=after, outcome=outcome))
