"""Target storage: one commit per sync, auto-export, deletes, failures, secrets."""
import json

import pytest
from label_studio_pachyderm import pachd
from label_studio_pachyderm.exports import outbox
from label_studio_pachyderm.exports import writer as exporter
from label_studio_pachyderm.models import PachydermExportStorage, PachydermExportStorageLink
from tasks.models import Annotation, Task

from conftest import restart_pfs
from waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

RESULT = [{
    'from_name': 'label', 'to_name': 'image', 'type': 'rectanglelabels',
    'value': {'x': 10, 'y': 20, 'width': 30, 'height': 40, 'rectanglelabels': ['Cat']},
}]


@pytest.fixture
def labels(pfs_client):
    pfs_client.create_repo('default', 'labels')


def make_tasks(project, n):
    return Task.objects.bulk_create([Task(project=project, data={'image': f'/img/{i}.png'}) for i in range(n)])


def annotate(api, task, result=RESULT):
    r = api.post(f'/api/tasks/{task.id}/annotations/', {'result': result}, format='json')
    assert r.status_code == 201, r.content
    return r.json()['id']


def create_export(api, project, pfs, **fields):
    body = {'project': project.id, 'title': 'labels', 'pachd_address': pfs.address, 'repo': 'labels', **fields}
    r = api.post('/api/storages/export/pachyderm', body, format='json')
    assert r.status_code == 201, r.content
    return r.json()


def commits(client, repo='labels'):
    return list(client.list_commits('default', repo))


def test_manual_sync_writes_all_annotations_in_one_commit(api, project, pfs, pfs_client, labels, settings):
    settings.SYNC_ON_TARGET_STORAGE_CREATION = False
    tasks = make_tasks(project, 25)
    ids = [annotate(api, t) for t in tasks]  # no export storage yet: nothing written
    assert commits(pfs_client) == []
    storage = create_export(api, project, pfs, prefix='ls')
    r = api.post(f"/api/storages/export/pachyderm/{storage['id']}/sync")
    assert r.status_code == 200, r.content
    data = r.json()
    assert data['status'] == 'completed' and data['last_sync_count'] == 25
    assert data['meta']['total_annotations'] == 25 and data['meta']['annotations_exported'] == 25
    history = commits(pfs_client)
    assert len(history) == 1 and data['last_exported_commit'] == history[0].id
    assert f"project {project.id}" in history[0].description and '25 annotations' in history[0].description
    files = sorted(f.path for f in pfs_client.list_files('default', 'labels', 'master'))
    assert files == sorted(f'ls/{t.id}.json' for t in tasks)
    body = json.loads(pfs_client.get_file_bytes('default', 'labels', 'master', f'ls/{tasks[0].id}.json'))
    assert body['id'] == tasks[0].id and body['annotations'][0]['id'] == ids[0]
    assert body['annotations'][0]['result'] == RESULT
    assert PachydermExportStorageLink.objects.filter(storage_id=storage['id']).count() == 25


def test_file_contents_equal_label_studio_serializers(api, project, pfs, pfs_client, labels, settings, user):
    """The bytes written are Label Studio's serializer output, for tasks with every relation it reads."""
    from conftest import make_user
    from data_export.serializers import ExportDataSerializer
    from io_storages.serializers import StorageAnnotationSerializer
    from tasks.models import AnnotationDraft, Prediction

    settings.SYNC_ON_TARGET_STORAGE_CREATION = False
    rich, plain, unlabelled = make_tasks(project, 3)
    other = make_user('second@example.com')
    first = annotate(api, rich)
    second = Annotation.objects.create(task=rich, project=project, completed_by=other, result=RESULT,
                                       lead_time=2.5)
    AnnotationDraft.objects.create(task=rich, user=other, result=RESULT)
    for version in ('v1', 'v2'):
        Prediction.objects.create(task=rich, project=project, result=RESULT, score=0.5, model_version=version)
    rich.comment_authors.add(user, other)
    third = annotate(api, plain)
    storage = PachydermExportStorage.objects.get(id=create_export(api, project, pfs)['id'])
    exporter.export_annotations(storage, queryset=Annotation.objects.filter(project=project))

    def encoded(data):
        return json.dumps(data, ensure_ascii=False).encode()

    files = {f.path for f in pfs_client.list_files('default', 'labels', 'master')}
    assert files == {f'{rich.id}.json', f'{plain.id}.json'}  # a task without annotations is not written
    for task in (rich, plain):
        task.refresh_from_db()
        expected = ExportDataSerializer(task, context={'project': project},
                                        expand=['annotations.reviews', 'annotations.completed_by']).data
        written = pfs_client.get_file_bytes('default', 'labels', 'master', f'{task.id}.json')
        # LS's serializer lists comment_authors (a many-to-many) in no set order: compare them as sets,
        # then every byte with the written order
        authors = json.loads(written).get('comment_authors')
        if authors is not None:
            assert sorted(authors) == sorted(expected['comment_authors']), task.id
            expected = {**expected, 'comment_authors': authors}
        assert written == encoded(expected), task.id
    body = json.loads(pfs_client.get_file_bytes('default', 'labels', 'master', f'{rich.id}.json'))
    assert [a['id'] for a in body['annotations']] == [first, second.id]
    assert len(body['drafts']) == 1 and len(body['predictions']) == 2
    assert sorted(body['comment_authors']) == sorted([user.id, other.id])

    settings.PACHYDERM_EXPORT_LAYOUT = 'annotation'
    exporter.export_annotations(storage, queryset=Annotation.objects.filter(project=project))
    for aid in (first, second.id, third):
        written = pfs_client.get_file_bytes('default', 'labels', 'master', f'{aid}.json')
        expected = StorageAnnotationSerializer(Annotation.objects.get(id=aid), context={'project': project}).data
        assert written == encoded(expected), aid
    links = PachydermExportStorageLink.objects.filter(storage=storage)
    assert {(link.annotation_id, link.path) for link in links} == {
        (first, f'{first}.json'), (second.id, f'{second.id}.json'), (third, f'{third}.json')}
    assert {link.commit for link in links} == {storage.last_exported_commit}


def test_file_contents_of_scattered_tasks_equal_label_studio_serializers(api, project, pfs, pfs_client, labels,
                                                                         settings, user):
    """Tasks far apart (fetched by id list, not by id range) are written the same way."""
    from data_export.serializers import ExportDataSerializer
    from tasks.models import AnnotationDraft

    settings.SYNC_ON_TARGET_STORAGE_CREATION = False
    tasks = make_tasks(project, 12)
    chosen = [tasks[0], tasks[5], tasks[11]]
    for task in chosen:
        annotate(api, task)
    AnnotationDraft.objects.create(task=tasks[5], user=user, result=RESULT)
    tasks[11].comment_authors.add(user)
    storage = PachydermExportStorage.objects.get(id=create_export(api, project, pfs)['id'])
    exporter.export_annotations(storage, queryset=Annotation.objects.filter(project=project))
    assert {f.path for f in pfs_client.list_files('default', 'labels', 'master')} == {f'{t.id}.json' for t in chosen}
    for task in chosen:
        task.refresh_from_db()
        expected = ExportDataSerializer(task, context={'project': project},
                                        expand=['annotations.reviews', 'annotations.completed_by']).data
        written = pfs_client.get_file_bytes('default', 'labels', 'master', f'{task.id}.json')
        assert written == json.dumps(expected, ensure_ascii=False).encode(), task.id


def test_submit_auto_exports_inline(api, project, pfs, pfs_client, labels):
    create_export(api, project, pfs)
    before = len(commits(pfs_client))
    task = make_tasks(project, 1)[0]
    annotate(api, task)
    assert len(commits(pfs_client)) == before + 1
    body = json.loads(pfs_client.get_file_bytes('default', 'labels', 'master', f'{task.id}.json'))
    assert body['annotations'][0]['result'] == RESULT


@pytest.mark.slow
def test_pachd_down_during_submits_loses_nothing(api, project, labels, pfs, settings):
    """Saves answer 201 while pachd is down; the changes wait in the outbox, the card says so, and once
    pachd is back they are exported by the retry, with nobody syncing; then the error clears."""
    from label_studio_pachyderm.exports import outbox

    settings.PACHYDERM_EXPORT_RETRY_SECONDS = 0.5
    storage = create_export(api, project, pfs)
    pfs.stop()
    tasks = make_tasks(project, 5)
    for task in tasks:
        annotate(api, task)  # 201 each time, though pachd is down
    stored = PachydermExportStorage.objects.get(id=storage['id'])
    assert stored.status == 'completed_with_errors' and 'retried automatically' in stored.traceback
    assert 'cannot reach pachd' in stored.traceback
    assert Annotation.objects.filter(project=project).count() == 5
    assert outbox.pending(stored).count() == 5

    with restart_pfs(pfs) as again:
        client = pachd.PachdClient(again.address)
        wanted = {f'{t.id}.json' for t in tasks}
        wait_for(lambda: {f.path for f in client.list_files('default', 'labels', 'master')} == wanted,
                 ignore=pachd.PachdNotFound,  # no branch until the outbox's first commit lands
                 what='the outbox exported after pachd came back')
        wait_for(lambda: not outbox.pending(stored).exists(), what='the outbox drained')
        # The writer deletes the drained rows, then records the outcome: the card clears a moment later.
        wait_for(lambda: PachydermExportStorage.objects.filter(id=stored.id, status='completed').exists(),
                 what='the card back to completed')
        stored.refresh_from_db()
        assert stored.status == 'completed' and not stored.traceback
        assert stored.meta['pending_exports'] == 0 and 'last_export_error' not in stored.meta


def test_failure_mid_commit_leaves_branch_head_unchanged(api, project, pfs, pfs_client, labels, monkeypatch,
                                                          settings):
    settings.SYNC_ON_TARGET_STORAGE_CREATION = False
    storage_data = create_export(api, project, pfs)
    tasks = make_tasks(project, 10)
    for t in tasks[:3]:
        annotate(api, t)
    for t in tasks[3:]:
        Annotation.objects.create(task=t, project=project, result=RESULT, completed_by=project.created_by)
    assert outbox.wait_until_written(), 'the auto-exports of the saves were not written'
    head_before = pfs_client.branch_head('default', 'labels', 'master')
    count_before = len(commits(pfs_client))

    calls = {'n': 0}
    real = exporter._Export._task_ops

    def exploding(self):
        for op in real(self):
            calls['n'] += 1
            if calls['n'] == 5:
                raise RuntimeError('disk on fire')
            yield op

    monkeypatch.setattr(exporter._Export, '_task_ops', exploding)
    r = api.post(f"/api/storages/export/pachyderm/{storage_data['id']}/sync")
    assert r.status_code == 200
    assert r.json()['status'] == 'failed' and 'disk on fire' in r.json()['traceback']
    assert pfs_client.branch_head('default', 'labels', 'master') == head_before
    assert len(commits(pfs_client)) == count_before


def test_delete_removes_file_only_when_allowed(api, project, pfs, pfs_client, labels):
    on = create_export(api, project, pfs, prefix='on', can_delete_objects=True)
    off = create_export(api, project, pfs, prefix='off', can_delete_objects=False)
    task = make_tasks(project, 1)[0]
    aid = annotate(api, task)
    paths = {f.path for f in pfs_client.list_files('default', 'labels', 'master')}
    assert paths == {f'on/{task.id}.json', f'off/{task.id}.json'}
    assert api.delete(f'/api/annotations/{aid}/').status_code == 204
    paths = {f.path for f in pfs_client.list_files('default', 'labels', 'master')}
    assert paths == {f'off/{task.id}.json'}
    # The storage that may not delete keeps the file as it was exported, annotation included.
    kept = json.loads(pfs_client.get_file_bytes('default', 'labels', 'master', f'off/{task.id}.json'))
    assert kept['id'] == task.id and [a['id'] for a in kept['annotations']] == [aid]
    assert PachydermExportStorage.objects.get(id=on['id']).status != 'failed'


@pytest.mark.slow
def test_delete_with_pachd_down_still_deletes_annotation(api, project, pfs, labels):
    create_export(api, project, pfs, can_delete_objects=True)
    task = make_tasks(project, 1)[0]
    aid = annotate(api, task)
    pfs.stop()
    assert api.delete(f'/api/annotations/{aid}/').status_code == 204
    assert not Annotation.objects.filter(id=aid).exists()


def test_export_validation_and_missing_branch(api, project, pfs, pfs_client, labels):
    bad = api.post('/api/storages/export/pachyderm/validate',
                   {'project': project.id, 'pachd_address': pfs.address, 'repo': 'nope'}, format='json')
    assert bad.status_code == 400 and 'repo' in json.dumps(bad.json())
    ok = api.post('/api/storages/export/pachyderm/validate',
                  {'project': project.id, 'pachd_address': pfs.address, 'repo': 'labels', 'branch': 'new-branch'},
                  format='json')
    assert ok.status_code == 200, ok.content
    create_export(api, project, pfs, branch='new-branch')
    annotate(api, make_tasks(project, 1)[0])
    assert pfs_client.branch_head('default', 'labels', 'new-branch')


def test_export_token_never_returned(api, project, pfs, labels):
    r = api.post('/api/storages/export/pachyderm', {'project': project.id, 'pachd_address': pfs.address,
                                                     'repo': 'labels', 'auth_token': 'tok-123-secret'}, format='json')
    assert r.status_code == 201 and 'tok-123-secret' not in r.content.decode()
    sid = r.json()['id']
    for resp in (api.get(f'/api/storages/export/pachyderm/{sid}'), api.get(f'/api/storages/export?project={project.id}'),
                 api.post(f'/api/storages/export/pachyderm/{sid}/sync')):
        assert 'tok-123-secret' not in resp.content.decode()
    # The explicit layout's list needs the project, as LS's own list does; with it, no token either.
    missing = api.get('/api/storages/pachyderm/export/')
    assert missing.status_code == 400 and 'project' in missing.content.decode(), missing.content
    listed = api.get(f'/api/storages/pachyderm/export/?project={project.id}')
    assert listed.status_code == 200 and [s['id'] for s in listed.json()] == [sid], listed.content
    assert 'tok-123-secret' not in listed.content.decode()


def test_one_bad_task_is_reported_and_the_rest_exported(api, project, pfs, pfs_client, labels, settings, monkeypatch):
    from data_export import serializers as export_serializers

    settings.SYNC_ON_TARGET_STORAGE_CREATION = False
    tasks = make_tasks(project, 4)
    for t in tasks:  # before the storage exists: no auto-export
        Annotation.objects.create(task=t, project=project, result=RESULT, completed_by=project.created_by)
    storage = create_export(api, project, pfs)
    real_to_representation = export_serializers.ExportDataSerializer.to_representation

    def broken_for_one(self, instance):
        if instance.id == tasks[1].id:
            raise ValueError('cannot serialise this one')
        return real_to_representation(self, instance)

    monkeypatch.setattr(export_serializers.ExportDataSerializer, 'to_representation', broken_for_one)
    r = api.post(f"/api/storages/export/pachyderm/{storage['id']}/sync")
    data = r.json()
    assert data['status'] == 'completed_with_errors', data
    assert f'task {tasks[1].id}' in data['traceback'] and 'cannot serialise' in data['traceback']
    files = {f.path for f in pfs_client.list_files('default', 'labels', 'master')}
    assert files == {f'{t.id}.json' for t in tasks if t.id != tasks[1].id}
    assert len(commits(pfs_client)) == 1


@pytest.mark.slow
def test_deleting_tasks_and_projects_with_pachd_down(api, project, pfs, labels, settings):
    from projects.models import Project

    create_export(api, project, pfs, can_delete_objects=True)
    tasks = make_tasks(project, 3)
    for t in tasks:
        annotate(api, t)
    pfs.stop()
    assert api.delete(f'/api/tasks/{tasks[0].id}/').status_code == 204
    assert not Task.objects.filter(id=tasks[0].id).exists()
    assert api.delete(f'/api/projects/{project.id}/').status_code == 204
    assert not Project.objects.filter(id=project.id).exists()


def test_commit_descriptions_say_what_triggered_them(api, project, pfs, pfs_client, labels, settings):
    settings.SYNC_ON_TARGET_STORAGE_CREATION = True
    task = make_tasks(project, 1)[0]
    Annotation.objects.create(task=task, project=project, result=RESULT, completed_by=project.created_by)
    storage = create_export(api, project, pfs)  # Label Studio syncs a new target storage once
    assert commits(pfs_client)[0].description.startswith('Label Studio export (storage created)')
    assert '1 annotation in 1 file (task layout)' in commits(pfs_client)[0].description
    assert api.post(f"/api/storages/export/pachyderm/{storage['id']}/sync").json()['status'] == 'completed'
    assert commits(pfs_client)[0].description.startswith('Label Studio export (manual sync)')
    annotate(api, make_tasks(project, 1)[0])
    assert commits(pfs_client)[0].description.startswith('Label Studio export (auto-export)')


def test_auto_exports_keep_the_storage_card_true(api, project, pfs, pfs_client, labels, settings):
    """What Label Studio's target card reads moves with every auto-export, with no manual sync."""
    settings.SYNC_ON_TARGET_STORAGE_CREATION = False
    storage = create_export(api, project, pfs)
    assert storage['last_sync'] is None and storage['status'] == 'initialized'
    tasks = make_tasks(project, 3)
    annotate(api, tasks[0])
    card = api.get(f"/api/storages/export/pachyderm/{storage['id']}").json()
    assert card['status'] == 'completed' and card['last_sync'] is not None
    assert card['last_sync_count'] == 1 and card['meta']['total_annotations'] == 1
    first = card['last_sync']
    annotate(api, tasks[1])
    annotate(api, tasks[2])
    card = api.get(f"/api/storages/export/pachyderm/{storage['id']}").json()
    assert card['last_sync'] > first and card['last_sync_count'] == 1 and card['meta']['total_annotations'] == 3
    assert card['last_exported_commit'] == commits(pfs_client)[0].id
    # A manual sync still reports the whole snapshot.
    synced = api.post(f"/api/storages/export/pachyderm/{storage['id']}/sync").json()
    assert synced['last_sync_count'] == 3 and synced['meta']['total_annotations'] == 3
