"""Predictions from a pipeline's output repo, attached to the tasks of the exact input commit.

Real Label Studio (API client), the local PFS server over gRPC; the "pipeline" is its branch
provenance (an output branch gets an open commit of the same commit set for every input commit)
and a client that writes and finishes that commit, as a pipeline worker would.
"""
import json

import pytest
from label_studio_pachyderm import pachd
from label_studio_pachyderm.imports import predictions
from label_studio_pachyderm.models import PachydermImportStorage
from pachyderm_sdk.api import pfs as pfs_api
from tasks.models import Annotation, Prediction, Task

from test_export import RESULT
from test_watch import watchers  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db(transaction=True)

PNG = b'\x89PNG\r\n\x1a\n' + b'0' * 64
BOX = [{'from_name': 'label', 'to_name': 'image', 'type': 'rectanglelabels',
        'value': {'x': 1, 'y': 2, 'width': 3, 'height': 4, 'rectanglelabels': ['Cat']}}]


# ----------------------------------------------------------------------------- path template and shapes
@pytest.mark.parametrize('template, path, expected', [
    ('{dir}/{stem}.json', 'cats/1.jpg', 'cats/1.json'),
    ('{dir}/{stem}.json', '1.jpg', '1.json'),
    ('preds/{path}.json', 'cats/1.jpg', 'preds/cats/1.jpg.json'),
    ('{dir}/{stem}-{ext}.json', 'a/b/c.tar.gz', 'a/b/c.tar-gz.json'),
    ('/out/{stem}.json', '/cats/1.jpg', 'out/1.json'),
])
def test_the_template_maps_a_task_file_to_its_prediction_file(template, path, expected):
    assert predictions.template_problem(template) is None
    assert predictions.prediction_path(template, path) == expected


@pytest.mark.parametrize('template, words', [
    ('{dir}/{name}.json', 'unknown placeholder {name}'),
    ('../{stem}.json', 'inside the repo'),
    ('{dir}/../../{stem}.json', 'inside the repo'),
    ('fixed.json', 'at least one placeholder'),
    ('{stem:>5}.json', 'no format spec'),
    ('{dir', 'not a path template'),
])
def test_a_bad_template_says_why(template, words):
    assert words in predictions.template_problem(template)


def test_every_documented_file_shape_is_read_and_others_are_refused():
    items = predictions.parse(json.dumps(BOX).encode(), 'a.json')
    assert items == [{'result': BOX, 'score': None, 'model_version': None}]
    one = predictions.parse(json.dumps({'result': BOX, 'score': 0.9, 'model_version': 'yolo-3'}).encode(), 'a.json')
    assert one == [{'result': BOX, 'score': 0.9, 'model_version': 'yolo-3'}]
    many = predictions.parse(json.dumps([{'result': BOX}, {'result': [], 'score': 0.1}]).encode(), 'a.json')
    assert [p['score'] for p in many] == [None, 0.1]
    task = predictions.parse(json.dumps({'data': {'image': 'x'}, 'predictions': [{'result': BOX}]}).encode(), 'a.json')
    assert task[0]['result'] == BOX
    for bad in (b'not json', b'42', b'"text"', b'{"result": "no"}', b'{"result": [], "score": "high"}',
                b'[1, 2]', b'{"predictions": {}}', b'{"result": [], "model_version": 3}'):
        with pytest.raises(ValueError) as caught:
            predictions.parse(bad, 'cats/1.json')
        assert str(caught.value).startswith('cats/1.json: ')


# ----------------------------------------------------------------------------- end to end
@pytest.fixture
def repos(pfs_client, sdk_client):
    pfs_client.create_repo('default', 'images')
    pfs_client.create_repo('default', 'preds')


def pipeline(sdk_client):
    """preds@master downstream of images@master: each images commit opens a preds commit, same id. The
    output branch's first head is left open by pachd; a pipeline finishes it at once (until then, pachd
    holds back the finished events of every later output commit)."""
    sdk_client.pfs.create_branch(branch=pfs_api.Branch.from_uri('preds@master'),
                                 provenance=[pfs_api.Branch.from_uri('images@master')])
    sdk_client.pfs.finish_commit(commit=pfs_api.Commit.from_uri('preds@master'))


def output(sdk_client, commit, files, error=''):
    """What a pipeline worker does: write the output commit of ``commit``'s commit set and finish it."""
    out = pfs_api.Commit(repo=pfs_api.Repo(name='preds'), id=commit)
    for path, body in files.items():
        sdk_client.pfs.put_file_from_bytes(commit=out, path=path, data=body)
    sdk_client.pfs.finish_commit(commit=out, error=error)


def source(api, project, address, **fields):
    body = {'project': project.id, 'pachd_address': address, 'repo': 'images', 'use_blob_urls': True,
            'predictions_repo': 'preds', **fields}
    r = api.post('/api/storages/pachyderm', body, format='json')
    assert r.status_code == 201, r.content
    return r.json()['id']


def sync(api, sid):
    r = api.post(f'/api/storages/pachyderm/{sid}/sync')
    assert r.status_code == 200, r.content
    return r.json()


def task_of(project, path):
    return Task.objects.get(project=project, meta__pachyderm__path=path, meta__pachyderm__superseded_by__isnull=True)


def preds_of(task):
    return list(Prediction.objects.filter(task=task).order_by('id').values_list('model_version', 'score', 'result'))


def test_commit_set_predictions_reach_the_tasks_of_their_own_input_commit(api, project, pfs, pfs_client, sdk_client,
                                                                          repos):
    pipeline(sdk_client)
    first = pfs_client.write_commit('default', 'images', 'master', [pachd.FileOp.put('cats/1.png', PNG),
                                                                    pachd.FileOp.put('cats/2.png', PNG)])
    sid = source(api, project, pfs.address, changed_files='new_version')
    # The pipeline has not finished: the tasks are imported, their predictions wait.
    waiting = sync(api, sid)
    assert waiting['status'] == 'completed' and waiting['meta']['predictions_waiting'] == 2
    assert Prediction.objects.count() == 0
    output(sdk_client, first, {'cats/1.json': json.dumps({'result': BOX, 'score': 0.8}).encode(),
                               'cats/2.json': json.dumps(BOX).encode()})
    done = sync(api, sid)
    assert done['meta']['predictions_attached'] == 2
    one, two = task_of(project, 'cats/1.png'), task_of(project, 'cats/2.png')
    assert preds_of(one) == [(f'preds@{first}', 0.8, BOX)] and preds_of(two) == [(f'preds@{first}', None, BOX)]
    assert one.meta['pachyderm']['predictions_commit'] == first
    assert sync(api, sid)['meta']['predictions_attached'] == 0  # once per task and output commit
    assert Prediction.objects.count() == 2

    # A changed file: its new version reads the new commit's output; the old version keeps its own.
    Annotation.objects.create(task=one, project=project, result=RESULT, completed_by=project.created_by)
    second = pfs_client.write_commit('default', 'images', 'master', [pachd.FileOp.put('cats/1.png', PNG + b'!')])
    sync(api, sid)
    newer = task_of(project, 'cats/1.png')
    assert newer.id != one.id and preds_of(newer) == []  # its output commit is still open
    output(sdk_client, second, {'cats/1.json': json.dumps({'result': BOX, 'score': 0.95}).encode()})
    sync(api, sid)
    assert preds_of(newer) == [(f'preds@{second}', 0.95, BOX)]
    assert preds_of(one) == [(f'preds@{first}', 0.8, BOX)]  # never a prediction of other bytes
    assert Annotation.objects.filter(task=one).count() == 1  # annotations untouched


def test_bad_files_and_failed_output_commits_are_reported_and_the_tasks_still_import(api, project, pfs, pfs_client,
                                                                                      sdk_client, repos):
    pipeline(sdk_client)
    first = pfs_client.write_commit('default', 'images', 'master', [pachd.FileOp.put('a.png', PNG),
                                                                    pachd.FileOp.put('b.png', PNG)])
    output(sdk_client, first, {'a.json': b'{not json', 'b.json': json.dumps(BOX).encode()})
    sid = source(api, project, pfs.address)
    data = sync(api, sid)
    assert data['status'] == 'completed_with_errors' and 'a.json: not JSON' in (data['traceback'] or '')
    assert Task.objects.filter(project=project).count() == 2
    assert preds_of(task_of(project, 'b.png')) and not preds_of(task_of(project, 'a.png'))
    # An output commit that finished with an error is skipped and named.
    second = pfs_client.write_commit('default', 'images', 'master', [pachd.FileOp.put('c.png', PNG)])
    output(sdk_client, second, {'c.json': json.dumps(BOX).encode()}, error='the model crashed')
    data = sync(api, sid)
    assert data['meta']['predictions_failed_commits'] == [{'commit': second, 'error': 'the model crashed'}]
    assert not preds_of(task_of(project, 'c.png'))


def test_branch_head_predictions_and_a_rerun_adds_a_new_model_version(api, project, pfs, pfs_client, repos):
    pfs_client.write_commit('default', 'images', 'master', [pachd.FileOp.put('a.png', PNG)])
    first = pfs_client.write_commit('default', 'preds', 'scores', [pachd.FileOp.put(
        'a.json', json.dumps([{'result': BOX, 'model_version': 'script-1'}]).encode())])
    sid = source(api, project, pfs.address, predictions_match='branch_head', predictions_branch='scores')
    sync(api, sid)
    task = task_of(project, 'a.png')
    assert preds_of(task) == [('script-1', None, BOX)] and task.meta['pachyderm']['predictions_commit'] == first
    second = pfs_client.write_commit('default', 'preds', 'scores', [pachd.FileOp.put(
        'a.json', json.dumps({'result': BOX, 'score': 0.5}).encode())])
    sync(api, sid)
    assert preds_of(task) == [('script-1', None, BOX), (f'preds@{second}', 0.5, BOX)]


def test_a_pipeline_rerun_under_commit_set_adds_a_second_model_version_to_the_same_input(api, project, pfs, pfs_client,
                                                                                        sdk_client, repos):
    """A rerun on the same input (the pipeline's spec changed): a new output commit, with a new id, whose
    provenance holds the input commit. Its prediction joins the first; a task of other bytes never gets it."""
    pfs_client.create_repo('default', 'spec')
    sdk_client.pfs.create_branch(branch=pfs_api.Branch.from_uri('preds@master'),
                                 provenance=[pfs_api.Branch.from_uri('images@master'),
                                             pfs_api.Branch.from_uri('spec@master')])
    sdk_client.pfs.finish_commit(commit=pfs_api.Commit.from_uri('preds@master'))
    first = pfs_client.write_commit('default', 'images', 'master', [pachd.FileOp.put('a.png', PNG),
                                                                    pachd.FileOp.put('b.png', PNG)])
    output(sdk_client, first, {'a.json': json.dumps({'result': BOX, 'score': 0.4}).encode(),
                               'b.json': json.dumps(BOX).encode()})
    sid = source(api, project, pfs.address, changed_files='new_version')
    assert sync(api, sid)['meta']['predictions_attached'] == 2

    rerun = sdk_client.pfs.start_commit(branch=pfs_api.Branch.from_uri('spec@master')).id  # the spec changes
    sdk_client.pfs.finish_commit(commit=pfs_api.Commit(repo=pfs_api.Repo(name='spec'), id=rerun))
    rerun_info = pfs_client.inspect_commit('default', 'preds', rerun)
    assert rerun != first and ('default', 'images', first) in rerun_info.provenance
    data = sync(api, sid)  # the rerun's output commit is still open: nothing new, nobody waits
    assert data['meta']['predictions_attached'] == 0 and data['meta']['predictions_waiting'] == 0
    # an output commit holds the pipeline's whole output: b.json is the rerun's too (here unchanged)
    output(sdk_client, rerun, {'a.json': json.dumps({'result': BOX, 'score': 0.9}).encode()})
    assert sync(api, sid)['meta']['predictions_attached'] == 2
    a = task_of(project, 'a.png')
    assert preds_of(a) == [(f'preds@{first}', 0.4, BOX), (f'preds@{rerun}', 0.9, BOX)]
    assert a.meta['pachyderm']['predictions_commits'] == [first, rerun]
    assert preds_of(task_of(project, 'b.png')) == [(f'preds@{first}', None, BOX), (f'preds@{rerun}', None, BOX)]
    assert sync(api, sid)['meta']['predictions_attached'] == 0  # once per task and output commit

    # A changed file's new version reads its own commit set only, never the rerun of the old bytes.
    second = pfs_client.write_commit('default', 'images', 'master', [pachd.FileOp.put('a.png', PNG + b'!')])
    output(sdk_client, second, {'a.json': json.dumps({'result': BOX, 'score': 0.7}).encode()})
    sync(api, sid)
    assert preds_of(task_of(project, 'a.png')) == [(f'preds@{second}', 0.7, BOX)]


def test_many_predictions_of_one_output_commit_are_read_in_one_stream_and_counted_on_their_tasks(
        api, project, pfs, pfs_client, sdk_client, repos, monkeypatch):
    """40 tasks of one input commit: their files come in one GetFileTAR (one with no file, one broken),
    and LS's own counters say how many predictions each task has, as after LS's import of predictions."""
    monkeypatch.setattr(predictions, '_TASKS_PER_WRITE', 7)  # six chunks share the one stream
    one_by_one = []
    real_get = pachd.PachdClient.get_file_bytes
    monkeypatch.setattr(pachd.PachdClient, 'get_file_bytes',
                        lambda self, *args, **kw: one_by_one.append(args[3]) or real_get(self, *args, **kw))
    pipeline(sdk_client)
    names = [f'img/{n:03}.png' for n in range(40)]
    first = pfs_client.write_commit('default', 'images', 'master', [pachd.FileOp.put(n, PNG) for n in names])
    files = {n.replace('.png', '.json'): json.dumps({'result': BOX, 'score': int(n[4:7]) / 100}).encode()
             for n in names[:38]}
    files['img/038.json'] = b'[{"broken"'
    files['img/zzz.txt'] = b'not a prediction file: left out by the glob'
    output(sdk_client, first, files)
    sid = source(api, project, pfs.address)
    data = sync(api, sid)
    assert data['meta']['predictions_attached'] == 38 and data['status'] == 'completed_with_errors'
    assert 'img/038.json: not JSON' in data['traceback']
    assert one_by_one == []  # the stream went past img/039.json: it is not there, no need to ask
    for n in names[:38]:
        task = task_of(project, n)
        assert preds_of(task) == [(f'preds@{first}', int(n[4:7]) / 100, BOX)] and task.total_predictions == 1
    assert task_of(project, 'img/039.png').total_predictions == 0  # no file: read, nothing attached
    assert all(task_of(project, n).meta['pachyderm']['predictions_commits'] == [first] for n in names)
    assert sync(api, sid)['meta']['predictions_attached'] == 0
    assert Prediction.objects.count() == 38


def test_the_rows_of_one_task_file_share_its_prediction_file_across_chunks(api, project, pfs, pfs_client,
                                                                          sdk_client, repos, monkeypatch):
    monkeypatch.setattr(predictions, '_TASKS_PER_WRITE', 2)
    monkeypatch.setattr(predictions, '_STREAM_MIN', 2)
    pipeline(sdk_client)
    rows = [{'data': {'image': f'https://example.com/{n}.png'}} for n in range(5)]
    first = pfs_client.write_commit('default', 'images', 'master', [
        pachd.FileOp.put('a.json', json.dumps(rows).encode()), pachd.FileOp.put('b.json', json.dumps(rows[:1]).encode())])
    output(sdk_client, first, {'a.json': json.dumps({'result': BOX, 'score': 0.3}).encode(),
                               'b.json': json.dumps({'result': BOX, 'score': 0.6}).encode()})
    sid = source(api, project, pfs.address, use_blob_urls=False)
    assert sync(api, sid)['meta']['predictions_attached'] == 6
    scores = sorted(Prediction.objects.values_list('score', flat=True))
    assert scores == [0.3] * 5 + [0.6]


def test_bad_prediction_settings_are_a_400_naming_the_field(api, project, pfs, pfs_client, repos):
    pfs_client.write_commit('default', 'images', 'master', [pachd.FileOp.put('a.png', PNG)])
    for fields, field in (({'predictions_repo': 'nope'}, 'predictions_repo'),
                          ({'predictions_branch': 'nope'}, 'predictions_branch'),
                          ({'predictions_path': '{dir}/{nope}.json'}, 'predictions_path'),
                          ({'predictions_path': '../{stem}.json'}, 'predictions_path'),
                          ({'predictions_match': 'latest'}, 'predictions_match')):
        body = {'project': project.id, 'pachd_address': pfs.address, 'repo': 'images', 'use_blob_urls': True,
                'predictions_repo': 'preds', 'predictions_branch': 'master', **fields}
        pfs_client.create_branch('default', 'preds', 'master')
        r = api.post('/api/storages/pachyderm', body, format='json')
        assert r.status_code == 400 and field in r.json()['validation_errors'], (fields, r.content)
    assert not PachydermImportStorage.objects.exists()
    # Off by default: no predictions repo, nothing read.
    r = api.post('/api/storages/pachyderm', {'project': project.id, 'pachd_address': pfs.address, 'repo': 'images',
                                             'use_blob_urls': True}, format='json')
    assert r.status_code == 201 and r.json()['predictions_repo'] == '' and r.json()['predictions_match'] == 'commit_set'
    assert 'predictions_attached' not in sync(api, r.json()['id'])['meta']


@pytest.mark.slow
def test_the_watcher_attaches_an_output_commit_when_it_finishes_with_no_sync_call(api, project, pfs, pfs_client,
                                                                                  sdk_client, repos, watchers):
    from test_watch import WAIT
    from waiting import wait_for

    pipeline(sdk_client)
    first = pfs_client.write_commit('default', 'images', 'master', [pachd.FileOp.put('a.png', PNG)])
    sid = source(api, project, pfs.address, watch_commits=True)
    watcher = watchers()
    wait_for(lambda: Task.objects.filter(project=project).exists(), timeout=WAIT, what='the watcher importing a.png',
             process=watcher.proc, log=watcher.log)
    # The first sync is over (the input's catch-up and the predictions branch's, coalesced) and the
    # predictions branch is followed: from here on only the output commit's event brings the prediction.
    wait_for(lambda: ': sync (' in watcher.log(), timeout=WAIT, what='the first sync logged',
             process=watcher.proc, log=watcher.log)
    wait_for(lambda: pfs.open_subscriptions().get('default/preds@master') == 1, timeout=WAIT,
             what='the predictions branch followed', process=watcher.proc, log=watcher.log)
    assert not Prediction.objects.exists()  # the pipeline is still running
    output(sdk_client, first, {'a.json': json.dumps({'result': BOX, 'score': 0.7}).encode()})
    wait_for(lambda: Prediction.objects.filter(task__project=project).exists(), timeout=WAIT,
             what='the prediction attached after the output commit finished', process=watcher.proc,
             log=watcher.log)
    assert preds_of(task_of(project, 'a.png')) == [(f'preds@{first}', 0.7, BOX)]
    # The sync that attached it is logged once it ends, a moment after the prediction is visible.
    wait_for(lambda: f': sync (predictions commit {first})' in watcher.log(), timeout=WAIT,
             what='the sync for the output commit logged', process=watcher.proc, log=watcher.log)
    assert sid


def test_an_export_commit_names_the_predictions_commits_of_its_tasks(api, project, pfs, pfs_client, sdk_client,
                                                                    repos, settings):
    settings.SYNC_ON_TARGET_STORAGE_CREATION = False
    pipeline(sdk_client)
    first = pfs_client.write_commit('default', 'images', 'master', [pachd.FileOp.put('a.png', PNG)])
    output(sdk_client, first, {'a.json': json.dumps(BOX).encode()})
    sync(api, source(api, project, pfs.address))
    task = task_of(project, 'a.png')
    assert task.meta['pachyderm']['predictions_repo'] == 'default/preds'
    pfs_client.create_repo('default', 'labels')
    r = api.post('/api/storages/export/pachyderm', {'project': project.id, 'pachd_address': pfs.address,
                                                    'repo': 'labels'}, format='json')
    assert r.status_code == 201, r.content
    r = api.post(f'/api/tasks/{task.id}/annotations/', {'result': RESULT}, format='json')
    assert r.status_code == 201, r.content
    described = pfs_client.inspect_commit('default', 'labels', 'master').description
    assert f'predictions: default/preds@{first}' in described
    assert f'source commits: default/images@{first}' in described


def test_an_empty_path_template_means_the_default(api, project, pfs, pfs_client, sdk_client, repos):
    pipeline(sdk_client)
    first = pfs_client.write_commit('default', 'images', 'master', [pachd.FileOp.put('cats/1.png', PNG)])
    output(sdk_client, first, {'cats/1.json': json.dumps(BOX).encode()})
    sync(api, source(api, project, pfs.address, predictions_path=''))
    assert preds_of(task_of(project, 'cats/1.png')) == [(f'preds@{first}', None, BOX)]
