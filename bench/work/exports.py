"""Export syncs of the same annotations: Pachyderm (one commit), S3, and one commit per annotation."""
from __future__ import annotations

import json

from .common import IMAGE_CONFIG, Measure, emit, make_owner, make_project, require, storage_outcome
from .imports import S3_CREDENTIALS

FAKE_SOURCE_COMMIT = 'c0ffee00' * 4  # tasks look like a Pachyderm import made them


def _box(i: int) -> list:
    """One rectangle per annotation, in the shape the labeling screen saves."""
    return [{
        'id': f'r{i}', 'from_name': 'label', 'to_name': 'image', 'type': 'rectanglelabels',
        'origin': 'manual', 'original_width': 640, 'original_height': 480, 'image_rotation': 0,
        'value': {'x': 10.0 + i % 50, 'y': 20.0, 'width': 30.5, 'height': 40.25, 'rotation': 0,
                  'rectanglelabels': ['Cat' if i % 2 else 'Dog']},
    }]


def prepare(p: dict) -> None:
    """``count`` tasks with one submitted annotation each, and one target storage per contender.

    Bulk inserts, not the API: the annotation's post_save would auto-export each
    one and we want the manual sync measured alone. Rows carry what a submit
    writes (result, author, lead time, counters on the task).
    """
    from django.db import transaction
    from io_storages.s3.models import S3ExportStorage
    from label_studio_pachyderm.models import PachydermExportStorage
    from tasks.models import Annotation, Task

    from ..content import media_key

    user = make_owner()
    project = make_project(user, IMAGE_CONFIG, 'export bench')
    for start in range(0, p['count'], 2000):
        idx = range(start, min(p['count'], start + 2000))
        with transaction.atomic():
            tasks = Task.objects.bulk_create([
                Task(data={'image': f'pfs://default/images@{FAKE_SOURCE_COMMIT}/{media_key(i)}'}, project=project,
                     inner_id=i + 1, overlap=1, is_labeled=True, total_annotations=1,
                     meta={'pachyderm': {'project': 'default', 'repo': 'images', 'commit': FAKE_SOURCE_COMMIT,
                                         'path': media_key(i), 'row': None}})
                for i in idx
            ])
            Annotation.objects.bulk_create([
                Annotation(task=task, project=project, completed_by=user, result=_box(i), result_count=1,
                           lead_time=12.5, was_cancelled=False, ground_truth=False)
                for i, task in zip(idx, tasks)
            ])
    storages = {}
    for name, repo in p['pachyderm_repos'].items():
        storages[name] = PachydermExportStorage.objects.create(
            project=project, title=name, pachd_address=p['address'], repo=repo, can_delete_objects=False).id
    storages['s3'] = S3ExportStorage.objects.create(
        project=project, title='s3', bucket=p['bucket'], prefix='', can_delete_objects=False, **S3_CREDENTIALS).id
    require(Annotation.objects.filter(project=project).count() == p['count'], 'annotation count')
    emit(dict(seconds=0, items=p['count'], project_id=project.id, storages=storages))


def export_sync(p: dict) -> None:
    """``storage.sync()`` of one prepared target storage: what the Sync button runs."""
    if p['provider'] == 'pachyderm':
        from label_studio_pachyderm.models import PachydermExportStorage as storage_class
    else:
        from io_storages.s3.models import S3ExportStorage as storage_class
    storage = storage_class.objects.get(id=p['storage_id'])
    commits_before = _commit_count(storage) if p['provider'] == 'pachyderm' else None
    measure = Measure()
    with measure.timing():
        storage.sync()
    outcome = storage_outcome(storage)
    links = storage.links.count()
    require(outcome['status'] == 'completed', f'export ended {outcome}')
    require(links == p['count'], f'{links} export links, expected {p["count"]}')
    extra = {}
    if p['provider'] == 'pachyderm':
        client = storage.get_client()
        extra['commits'] = _commit_count(storage) - commits_before
        extra['files'] = sum(1 for _ in client.list_files(storage.project_name, storage.repo, storage.branch_name))
        require(extra['commits'] == 1, f'the export sync made {extra["commits"]} commits, not one')
        require(extra['files'] == p['count'], f'{extra["files"]} files in the export commit')
    emit(measure.result(links, outcome=outcome, **extra))


def _commit_count(storage) -> int:
    client = storage.get_client()
    return sum(1 for _ in client.list_commits(storage.project_name, storage.repo))


def per_commit(p: dict) -> None:
    """The older integration's way: every annotation its own commit of its own file.

    Serialised with Label Studio's storage annotation serializer (what a target
    storage writes per annotation), written with the same client to the same server.
    """
    from core.utils.common import load_func
    from django.conf import settings
    from label_studio_pachyderm import pachd
    from projects.models import Project
    from tasks.models import Annotation

    project = Project.objects.get(id=p['project_id'])
    client = pachd.PachdClient(p['address'], timeout=60)
    serializer_class = load_func(settings.STORAGE_ANNOTATION_SERIALIZER)
    annotations = Annotation.objects.filter(project=project).select_related('task').order_by('id')
    if p.get('limit'):
        annotations = annotations[:p['limit']]
    before = sum(1 for _ in client.list_commits('default', p['repo']))
    measure = Measure()
    written = 0
    with measure.timing():
        for annotation in annotations.iterator(chunk_size=500):
            body = json.dumps(serializer_class(annotation, context={'project': project}).data).encode()
            client.write_commit('default', p['repo'], 'master', [pachd.FileOp.put(f'{annotation.id}.json', body)],
                                description=f'Label Studio annotation {annotation.id}')
            written += 1
    commits = sum(1 for _ in client.list_commits('default', p['repo'])) - before
    require(commits == written, f'{commits} commits for {written} annotations')
    emit(measure.result(written, commits=commits))
