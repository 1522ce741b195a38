"""Attaching a model's predictions to tasks that exist: the plugin reading them from a pipeline's output
repo, against Label Studio's own ``POST /api/projects/<id>/import/predictions`` with the same predictions.

Both start from one prepared database (a copy each): ``count`` image tasks imported by a Pachyderm
source storage, none with a prediction yet. The output repo holds one prediction file per image,
``img/000042.json`` beside ``img/000042.png``, in the shape a pipeline writes.
"""
from __future__ import annotations

import json

from .common import IMAGE_CONFIG, Measure, emit, make_owner, make_project, require, storage_outcome
from .imports import make_import_storage

MODEL_VERSION = 'bench-model'


def box(i: int) -> dict:
    """The prediction of image ``i``: one box, a score, the model's version."""
    return {'result': [{'from_name': 'label', 'to_name': 'image', 'type': 'rectanglelabels',
                        'value': {'x': 5.0 + i % 40, 'y': 10.0, 'width': 25.0, 'height': 30.0,
                                  'rectanglelabels': ['Cat' if i % 2 else 'Dog']}}],
            'score': round((i % 100) / 100, 2), 'model_version': MODEL_VERSION}


def prediction_files(count: int):
    """(path, bytes) of the output repo's prediction files."""
    from ..content import media_key

    for i in range(count):
        yield media_key(i).rsplit('.', 1)[0] + '.json', json.dumps(box(i)).encode()


def prepare(p: dict) -> None:
    """The project, its tasks (a real sync of the images repo) and the storage, predictions still off."""
    from tasks.models import Task

    user = make_owner()
    project = make_project(user, IMAGE_CONFIG, 'predictions bench')
    storage = make_import_storage(project, dict(p, provider='pachyderm', kind='media'))
    storage.sync()
    outcome = storage_outcome(storage)
    require(outcome['status'] == 'completed', f'import ended {outcome}')
    require(Task.objects.filter(project=project).count() == p['count'], 'task count')
    emit(dict(seconds=0, items=p['count'], storage_id=storage.id, project_id=project.id))


def attach(p: dict) -> None:
    """The storage's Sync with its predictions repo set: an incremental sync with nothing new, then every
    task's prediction read from the output commit and attached."""
    from label_studio_pachyderm.models import PachydermImportStorage
    from tasks.models import Prediction

    storage = PachydermImportStorage.objects.get(id=p['storage_id'])
    storage.predictions_repo = p['predictions_repo']
    storage.predictions_match = 'branch_head'
    storage.save(update_fields=['predictions_repo', 'predictions_match'])
    measure = Measure()
    with measure.timing():
        storage.sync()
    outcome = storage_outcome(storage)
    made = Prediction.objects.filter(project_id=storage.project_id).count()
    require(outcome['status'] == 'completed', f'sync ended {outcome}')
    require(made == p['count'], f'{made} predictions, expected {p["count"]}')
    emit(measure.result(made, outcome=outcome))


def import_ls(p: dict) -> None:
    """The same predictions through Label Studio's import API, as a script holding them in a file sends
    them: one JSON body of ``{"task": id, "result", "score", "model_version"}`` items. The body is built
    before the clock starts; parsing it is the server's work and counts."""
    from rest_framework.test import APIClient
    from tasks.models import Prediction, Task

    from ..content import media_key

    owner = make_owner()
    ids = dict(Task.objects.filter(project_id=p['project_id']).values_list('meta__pachyderm__path', 'id'))
    body = json.dumps([dict(box(i), task=ids[media_key(i)]) for i in range(p['count'])])
    client = APIClient()  # the API view itself, without the network: no HTTP cost for either contender
    client.force_authenticate(owner)
    measure = Measure()
    with measure.timing():
        response = client.post(f'/api/projects/{p["project_id"]}/import/predictions', body,
                               content_type='application/json')
    require(response.status_code == 201, f'import answered {response.status_code}: {response.content[:300]!r}')
    made = Prediction.objects.filter(project_id=p['project_id']).count()
    require(made == p['count'], f'{made} predictions, expected {p["count"]}')
    emit(measure.result(made))
