"""Training formats (COCO, YOLO, ...) written by a target storage in the commit of its JSON export."""
import io
import json
import zipfile
from datetime import timedelta

import pytest
from django.utils import timezone
from label_studio_pachyderm import pachd
from label_studio_pachyderm.models import PachydermExportStorage
from tasks.models import Task

import waiting

pytestmark = pytest.mark.django_db(transaction=True)

COMMIT = 'a' * 32


def box(label='Cat', x=10):
    return [{
        'from_name': 'label', 'to_name': 'image', 'type': 'rectanglelabels',
        'original_width': 640, 'original_height': 480, 'image_rotation': 0,
        'value': {'x': x, 'y': 20, 'width': 30, 'height': 40, 'rotation': 0, 'rectanglelabels': [label]},
    }]


@pytest.fixture
def labels(pfs_client, settings):
    settings.SYNC_ON_TARGET_STORAGE_CREATION = False
    pfs_client.create_repo('default', 'labels')


def uri(i):
    return f'pfs://default/images@{COMMIT}/img/{i:04d}.png'


def make_tasks(project, n):
    return Task.objects.bulk_create([Task(project=project, data={'image': uri(i)}) for i in range(n)])


def annotate(api, task, result):
    r = api.post(f'/api/tasks/{task.id}/annotations/', {'result': result}, format='json')
    assert r.status_code == 201, r.content
    return r.json()['id']


def create_export(api, project, pfs, **fields):
    body = {'project': project.id, 'title': 'labels', 'pachd_address': pfs.address, 'repo': 'labels',
            'prefix': 'ls', **fields}
    return api.post('/api/storages/export/pachyderm', body, format='json')


def sync(api, storage_id):
    r = api.post(f'/api/storages/export/pachyderm/{storage_id}/sync')
    assert r.status_code == 200, r.content
    return r.json()


def files(client, under):
    return {f.path[len(under) + 1:]: client.get_file_bytes('default', 'labels', 'master', f.path)
            for f in client.list_files('default', 'labels', 'master', under)}


def eventually(check, timeout=90.0):
    """``check()`` once it holds: a commit that carries formats is written by the retry thread, not the request."""
    return waiting.eventually(check, timeout, 'the formats commit')


def label_studio_export(api, project, export_type) -> dict:
    """{path: bytes} of what Label Studio's own export endpoint returns (a zip, or one file)."""
    r = api.get(f'/api/projects/{project.id}/export?exportType={export_type}')
    assert r.status_code == 200
    body = b''.join(r.streaming_content)
    if not zipfile.is_zipfile(io.BytesIO(body)):
        return {'result.json': body}
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        return {name: archive.read(name) for name in archive.namelist() if not name.endswith('/')}


def coco_by_image(coco, name_of):
    """Per image (by the image's own file name): size and its boxes by category name.

    Image ids and file names are not compared directly: Label Studio's export names each
    image by a local placeholder (images/<8 hex>__0001.png), the storage by its pfs:// URI.
    """
    categories = {c['id']: c['name'] for c in coco['categories']}
    out = {}
    for image in coco['images']:
        boxes = sorted((categories[a['category_id']], tuple(round(v, 6) for v in a['bbox']))
                       for a in coco['annotations'] if a['image_id'] == image['id'])
        out[name_of(image['file_name'])] = (image['width'], image['height'], boxes)
    return out


def test_coco_and_yolo_equal_label_studio_export_in_the_json_commit(api, project, pfs, pfs_client, labels):
    tasks = make_tasks(project, 4)
    annotate(api, tasks[0], box('Cat'))
    annotate(api, tasks[1], box('Dog', x=50) + box('Cat', x=5))
    annotate(api, tasks[3], box('Dog'))  # tasks[2] is not annotated: in no format
    r = create_export(api, project, pfs, export_formats=['COCO', 'YOLO'])
    assert r.status_code == 201, r.content
    assert r.json()['export_formats'] == ['COCO', 'YOLO'] and r.json()['formats_exported_at'] is None
    data = sync(api, r.json()['id'])
    assert data['status'] == 'completed', data
    assert data['meta']['formats_written'] == ['COCO', 'YOLO'] and data['formats_exported_at']

    history = list(pfs_client.list_commits('default', 'labels'))
    assert len(history) == 1 and data['last_exported_commit'] == history[0].id  # JSON and formats: one commit
    assert 'formats: COCO, YOLO' in history[0].description
    json_files = {f.path for f in pfs_client.list_files('default', 'labels', history[0].id, 'ls', recursive=False)}
    assert {f'ls/{t.id}.json' for t in (tasks[0], tasks[1], tasks[3])} <= json_files

    ours = files(pfs_client, 'ls/formats/COCO')
    assert set(ours) == {'result.json'}
    theirs = label_studio_export(api, project, 'COCO')
    coco, ls_coco = json.loads(ours['result.json']), json.loads(theirs['result.json'])
    assert sorted(i['file_name'] for i in coco['images']) == [uri(0), uri(1), uri(3)]  # the tasks' URIs
    assert coco['categories'] == ls_coco['categories']
    mine = coco_by_image(coco, lambda name: name.rsplit('/', 1)[-1])
    label_studio = coco_by_image(ls_coco, lambda name: name.rsplit('__', 1)[-1])
    assert mine == label_studio and len(mine['0001.png'][2]) == 2

    ours = files(pfs_client, 'ls/formats/YOLO')
    theirs = {k: v for k, v in label_studio_export(api, project, 'YOLO').items() if k != 'notes.json'}
    manifest = json.loads(ours.pop('images.json'))
    notes = json.loads(ours.pop('notes.json'))
    assert ours == theirs  # classes.txt and every labels/<name>.txt, byte for byte
    assert len([k for k in ours if k.startswith('labels/')]) == 3
    assert [c['name'] for c in notes['categories']] == ours['classes.txt'].decode().split()
    # Each label file's image, by its placeholder path, is the task's URI.
    assert sorted(manifest.values()) == [uri(0), uri(1), uri(3)]
    for image, task_uri in manifest.items():
        stem = image.rsplit('/', 1)[-1].rsplit('.', 1)[0]
        assert f'labels/{stem}.txt' in ours and stem.endswith(task_uri.rsplit('/', 1)[-1].rsplit('.', 1)[0])


def test_invalid_formats_are_400s_listing_the_available_ones(api, project, text_project, pfs, labels):
    r = create_export(api, project, pfs, export_formats=['COCO', 'NOPE'])
    assert r.status_code == 400
    message = r.json()['validation_errors']['export_formats'][0]
    assert 'NOPE' in message and 'COCO' in message and 'YOLO' in message and 'JSON_MIN' in message
    r = create_export(api, text_project, pfs, export_formats=['YOLO'])  # not for a text config
    message = r.json()['validation_errors']['export_formats'][0]
    assert r.status_code == 400 and 'YOLO' in message and 'CSV' in message and 'COCO,' not in message
    r = create_export(api, project, pfs, export_formats=['YOLO_WITH_IMAGES'])
    assert r.status_code == 400 and 'copy the images' in r.json()['validation_errors']['export_formats'][0]
    for wrong in (5, {'COCO': True}, [1], [['COCO']], ['COCO', 'COCO'], None, 'COCO, COCO'):
        r = create_export(api, project, pfs, export_formats=wrong)
        assert r.status_code == 400, (wrong, r.content)
        assert 'COCO, ' in r.json()['validation_errors']['export_formats'][0], wrong  # the available ones
    assert not PachydermExportStorage.objects.exists()

    r = create_export(api, project, pfs, export_formats=' COCO, YOLO ')  # what the forms' text field sends
    assert r.status_code == 201 and r.json()['export_formats'] == ['COCO', 'YOLO']
    patch = api.patch(f"/api/storages/export/pachyderm/{r.json()['id']}", {'export_formats': ['CSV', 42]},
                      format='json')
    assert patch.status_code == 400 and 'export_formats' in patch.json()['validation_errors']
    assert PachydermExportStorage.objects.get().export_formats == ['COCO', 'YOLO']


def test_auto_export_refreshes_formats_once_per_window(api, project, pfs, pfs_client, labels, settings):
    settings.PACHYDERM_FORMATS_REFRESH_SECONDS = 60
    tasks = make_tasks(project, 3)
    r = create_export(api, project, pfs, export_formats=['YOLO'], can_delete_objects=True)
    storage = PachydermExportStorage.objects.get(id=r.json()['id'])

    def commits():
        return list(pfs_client.list_commits('default', 'labels'))

    def yolo_labels():
        return sorted(k for k in files(pfs_client, 'ls/formats/YOLO') if k.startswith('labels/'))

    def formats_commit(labels_count, commit_count):
        history = commits()
        assert len(history) == commit_count and history[0].finished
        assert 'formats: YOLO' in history[0].description and len(yolo_labels()) == labels_count

    annotate(api, tasks[0], box())  # first auto-export: the formats were never written
    eventually(lambda: formats_commit(1, 1))  # JSON and formats in one commit
    assert f'{tasks[0].id}.json' in files(pfs_client, 'ls')
    annotate(api, tasks[1], box())  # within the window: the JSON only, written by the request itself
    assert len(commits()) == 2 and 'formats' not in commits()[0].description and len(yolo_labels()) == 1
    assert files(pfs_client, 'ls').keys() >= {f'{tasks[0].id}.json', f'{tasks[1].id}.json'}

    # The window has passed; no change pending, so no commit is made for the formats alone.
    PachydermExportStorage.objects.filter(id=storage.id).update(
        formats_exported_at=timezone.now() - timedelta(seconds=61))
    from label_studio_pachyderm.exports import outbox

    assert outbox.flush(storage).commits == [] and len(commits()) == 2
    annotation = annotate(api, tasks[2], box())  # the next change carries them
    eventually(lambda: formats_commit(3, 3))

    # A deleted annotation's label file goes with the next refresh: the folder is the converter's output.
    settings.PACHYDERM_FORMATS_REFRESH_SECONDS = 0
    assert api.delete(f'/api/annotations/{annotation}/').status_code == 204
    eventually(lambda: formats_commit(2, 4))
    assert f'{tasks[2].id}.json' not in files(pfs_client, 'ls')


def test_a_failing_format_is_reported_and_the_rest_lands(api, project, pfs, pfs_client, labels, monkeypatch,
                                                         settings):
    from label_studio_sdk.converter import Converter

    tasks = make_tasks(project, 3)
    annotate(api, tasks[0], box())
    storage_id = create_export(api, project, pfs, export_formats=['COCO', 'YOLO']).json()['id']
    assert sync(api, storage_id)['status'] == 'completed'
    yolo_before = files(pfs_client, 'ls/formats/YOLO')

    def broken(self, *args, **kwargs):
        raise RuntimeError('disk full')

    monkeypatch.setattr(Converter, 'convert_to_yolo', broken)
    annotate(api, tasks[1], box('Dog'))
    data = sync(api, storage_id)
    assert data['status'] == 'completed_with_errors'
    assert 'format YOLO' in data['traceback'] and 'disk full' in data['traceback']
    assert data['meta']['formats_written'] == ['COCO'] and data['meta']['formats_failed'] == ['YOLO']
    head = list(pfs_client.list_commits('default', 'labels'))[0]
    assert head.id == data['last_exported_commit'] and 'formats: COCO' in head.description
    assert 'formats not written (conversion failed): YOLO' in head.description
    coco = json.loads(files(pfs_client, 'ls/formats/COCO')['result.json'])
    assert len(coco['images']) == 2 and f'{tasks[1].id}.json' in files(pfs_client, 'ls')
    assert files(pfs_client, 'ls/formats/YOLO') == yolo_before  # the failed format's folder is as it was

    # Auto-export: the annotation's commit lands; the storage says which format is missing.
    settings.PACHYDERM_FORMATS_REFRESH_SECONDS = 0
    annotate(api, tasks[2], box())

    def reported():  # the auto-export's own message (the manual sync's is still there until then)
        stored = PachydermExportStorage.objects.get(id=storage_id)
        assert (stored.traceback or '').startswith('The annotations were exported, but not every export format')
        return stored

    stored = eventually(reported)
    assert stored.status == 'completed_with_errors' and 'format YOLO' in stored.traceback
    assert 'disk full' in stored.meta['last_export_error']
    assert f'{tasks[2].id}.json' in files(pfs_client, 'ls')
    assert len(json.loads(files(pfs_client, 'ls/formats/COCO')['result.json'])['images']) == 3
