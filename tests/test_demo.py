"""The demo's project step (``python -m label_studio_pachyderm.demo project``), as scripts/demo.sh runs it:
over HTTP against a real Label Studio (Django's live server) and a real local PFS server. What it
reports must be true on a first run and on a later one: the files on images@master, the tasks
still to label. With the demo's model and the watcher running as real processes, as scripts/demo.sh
runs them: every task opens with the model's prediction, and an image added later gets its own."""
import pytest
from label_studio_pachyderm import demo, demo_model, pachd
from tasks.models import Annotation, Prediction, Task

from test_demo_model import model  # noqa: F401 (a fixture)
from test_import import PNG
from test_watch import watchers  # noqa: F401 (a fixture)
from waiting import eventually

WAIT = 180  # seconds: a loaded 2-CPU machine; a passing run waits a fraction of it

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = 'pass12345'  # conftest.make_user's


def _label(task_ids, user):
    for task in Task.objects.filter(id__in=task_ids):
        Annotation.objects.create(task=task, project=task.project, completed_by=user, result=[])
    for task in Task.objects.filter(id__in=task_ids):
        task.update_is_labeled()
        task.save(update_fields=['is_labeled'])


def _current(project_id):
    return sorted(t.id for t in Task.objects.filter(project_id=project_id)
                  if 'superseded_by' not in t.meta['pachyderm'] and 'deleted_in' not in t.meta['pachyderm'])


def test_the_counts_are_the_files_on_the_branch_and_the_tasks_left_to_label(live_server, user, pfs):
    assert 'put 4 images' in demo.seed(pfs.address)
    first = demo.prepare_project(live_server.url, user.email, PASSWORD, pfs.address)
    assert first['created'] == ['project', 'source storage', 'target storage']
    assert (first['files'], first['unlabeled'], first['tasks']) == (4, 4, 4)

    # Three labeled, one image changed (the demo's storage makes a new task version): 5 tasks, 4 files.
    pid = first['project']
    labeled = _current(pid)[:3]
    _label(labeled, user)
    changed = Task.objects.get(id=labeled[0]).meta['pachyderm']['path']
    pachd.PachdClient(pfs.address).write_commit('default', 'images', 'master', [pachd.FileOp.put(changed, PNG)])

    again = demo.prepare_project(live_server.url, user.email, PASSWORD, pfs.address)
    assert again['project'] == pid and again['created'] == []
    assert again['tasks'] == 5, 'the new version of the changed image is a task of its own'
    # 4 files; left to label: the one never labeled, and the changed image's new version.
    assert (again['files'], again['unlabeled']) == (4, 2), again
    assert 'already holds data' in demo.seed(pfs.address)

    # Everything current labeled: nothing left, the files unchanged.
    _label(_current(pid), user)
    done = demo.prepare_project(live_server.url, user.email, PASSWORD, pfs.address)
    assert (done['files'], done['unlabeled'], done['tasks']) == (4, 0, 5), done


def _expected(client, task):
    """What the demo's model computes for a task's image: its prediction from the file's bytes at the task's commit."""
    lineage = task.meta['pachyderm']
    data = client.get_file_bytes('default', 'images', lineage['commit'], lineage['path'])
    return demo_model.prediction(demo_model.decode_png(data))


def _predictions_of(project_id, paths):
    """{path: (task, [its predictions])} of the current tasks of these paths, once each has a prediction."""
    tasks = {t.meta['pachyderm']['path']: t for t in Task.objects.filter(project_id=project_id)
             if 'superseded_by' not in t.meta['pachyderm'] and 'deleted_in' not in t.meta['pachyderm']}
    found = {path: (tasks[path], list(Prediction.objects.filter(task=tasks[path])))
             for path in paths if path in tasks}
    missing = sorted(path for path in paths if not found.get(path, (None, []))[1])
    assert not missing, f'no prediction yet for {missing}'
    return found


def _pixel_box(item, size):
    value = item['value']
    return [value['x'] * size / 100, value['y'] * size / 100,
            (value['x'] + value['width']) * size / 100, (value['y'] + value['height']) * size / 100]


@pytest.mark.slow
def test_every_task_opens_with_the_models_prediction_and_a_later_image_gets_its_own(live_server, user, pfs, model,
                                                                                      watchers):
    client = pachd.PachdClient(pfs.address, timeout=10)
    demo.seed(pfs.address)
    process = model(pfs.address)
    watcher = watchers()
    first = demo.prepare_project(live_server.url, user.email, PASSWORD, pfs.address)
    pid = first['project']
    project = Task.objects.filter(project_id=pid).first().project
    assert project.model_version == demo.MODEL_VERSION and project.show_collab_predictions

    shapes = {name: (colour, box) for name, colour, box in demo.SHAPES}
    labels = {colour: label for label, colour in demo.LABEL_COLOURS}
    found = eventually(lambda: _predictions_of(pid, list(shapes)), timeout=WAIT,
                       what="every demo task's prediction from detections@master", process=watcher, log=watcher.log)
    for path, (task, predictions) in found.items():
        (prediction,) = predictions
        expected = _expected(client, task)
        assert prediction.model_version == demo.MODEL_VERSION == expected['model_version']
        assert prediction.score == expected['score']
        assert [(r['type'], r['from_name'], r['to_name'], r['value']) for r in prediction.result] == \
            [(r['type'], r['from_name'], r['to_name'], r['value']) for r in expected['result']]
        # roughly where demo.py drew it, with the label of its colour
        colour, box = shapes[path]
        (item,) = prediction.result
        assert item['value']['rectanglelabels'] == [labels[colour]]
        assert all(abs(a - b) <= 2 for a, b in zip(_pixel_box(item, 256), box)), (path, item['value'], box)
        # what the labeling screen is given: the project's model version selects it
        assert [p.id for p in task.get_predictions_for_prelabeling()] == [prediction.id]
        assert task.meta['pachyderm']['predictions_repo'] == 'default/detections'
    assert process.poll() is None, process.log()

    # A later image: a new commit on images@master, a task by itself, and its own prediction within seconds.
    later = demo.png(256, 256, (240, 140, 20), (10, 100, 60, 250))
    commit = client.write_commit('default', 'images', 'master', [pachd.FileOp.put('later/orange.png', later)])
    (task, predictions), = eventually(lambda: _predictions_of(pid, ['later/orange.png']), timeout=WAIT,
                                      what='the later image as a task with its prediction', process=watcher,
                                      log=lambda: watcher.log() + process.log()).values()
    assert task.meta['pachyderm']['commit'] == commit
    (item,) = predictions[0].result
    assert item['value']['rectanglelabels'] == ['Orange']
    assert all(abs(a - b) <= 2 for a, b in zip(_pixel_box(item, 256), (10, 100, 60, 250))), item['value']
    assert predictions[0].model_version == demo.MODEL_VERSION

    # A second run of the demo reuses everything and attaches nothing twice.
    again = demo.prepare_project(live_server.url, user.email, PASSWORD, pfs.address)
    assert again['project'] == pid and again['created'] == []
    assert Prediction.objects.filter(project_id=pid).count() == 5
