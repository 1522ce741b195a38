"""Versioned labeling: changed files become new task versions, deletions are visible on tasks.

Real Label Studio API + syncs against the local PFS server over gRPC.
"""
import json

import pytest
from label_studio_pachyderm.models import PachydermImportStorageLink
from tasks.models import Annotation, Task

from test_import import PNG, create, put, sync

pytestmark = pytest.mark.django_db(transaction=True)


def lineage(task_id):
    return Task.objects.get(id=task_id).meta['pachyderm']


def link_task(key, row=None):
    return PachydermImportStorageLink.objects.get(key=key, row_index=row).task


def media_uri(task):
    (value,) = task.data.values()
    return value


def annotate(task, user):
    return Annotation.objects.create(task=task, project=task.project, completed_by=user,
                                     result=[{'from_name': 'x', 'to_name': 'y', 'type': 'choices',
                                              'value': {'choices': ['a']}}])


def dm_versions(api, project, value):
    """Task ids the Data Manager lists for "Pachyderm version <equal> value" (what the filter UI sends)."""
    view = api.post('/api/dm/views', {'project': project.id, 'data': {'filters': {
        'conjunction': 'and',
        'items': [{'filter': 'filter:tasks:pachyderm_version', 'operator': 'equal', 'type': 'String',
                   'value': value}]}}}, format='json')
    assert view.status_code == 201, view.content
    listed = api.get(f'/api/tasks?view={view.json()["id"]}&project={project.id}&page_size=100')
    assert listed.status_code == 200, listed.content
    return sorted(t['id'] for t in listed.json()['tasks'])


@pytest.fixture
def images(pfs_client):
    pfs_client.create_repo('default', 'images')
    return put(pfs_client, 'images', {'a.png': PNG, 'b.png': PNG, 'c.png': PNG})


def test_changed_media_file_becomes_a_new_version(api, user, project, pfs, pfs_client, images):
    sid = create(api, project, pfs, use_blob_urls=True, changed_files='new_version').json()['id']
    assert sync(api, sid)['last_sync_count'] == 3
    old = link_task('a.png')
    kept = annotate(old, user)

    second = put(pfs_client, 'images', {'a.png': PNG + b'v2', 'd.png': PNG})
    storage = sync(api, sid)
    assert storage['status'] == 'completed', storage
    assert storage['last_sync_count'] == 2  # a.png v2 and d.png
    assert storage['meta']['tasks_superseded'] == 1 and storage['meta']['tasks_existed'] == 0

    new = link_task('a.png')  # the link follows the current version
    assert new.id != old.id
    assert media_uri(new) == f'pfs://default/images@{second}/a.png'
    assert lineage(new.id)['previous_task'] == old.id and lineage(new.id)['commit'] == second
    assert lineage(old.id)['superseded_by'] == new.id and lineage(old.id)['superseded_in'] == second
    # The old version keeps its data (pinned to its commit) and its annotation.
    old.refresh_from_db()
    assert media_uri(old) == f'pfs://default/images@{images}/a.png'
    assert list(old.annotations.values_list('id', flat=True)) == [kept.id]
    assert not new.annotations.exists()

    # The same head again: nothing new. A third version chains on the second.
    assert sync(api, sid)['last_sync_count'] == 0
    third = put(pfs_client, 'images', {'a.png': PNG + b'v3'})
    sync(api, sid)
    newest = link_task('a.png')
    assert lineage(newest.id)['previous_task'] == new.id
    assert lineage(new.id)['superseded_by'] == newest.id and lineage(new.id)['superseded_in'] == third
    assert Task.objects.filter(project=project).count() == 6

    # The Data Manager's filter finds the old versions.
    assert dm_versions(api, project, 'superseded') == sorted([old.id, new.id])
    assert newest.id in dm_versions(api, project, 'current')


def test_keep_leaves_changed_files_on_their_task(api, project, pfs, pfs_client, images):
    sid = create(api, project, pfs, use_blob_urls=True).json()['id']
    assert api.get(f'/api/storages/pachyderm/{sid}').json()['changed_files'] == 'keep'
    sync(api, sid)
    task = link_task('a.png')
    put(pfs_client, 'images', {'a.png': PNG + b'v2'})
    storage = sync(api, sid)
    assert storage['last_sync_count'] == 0 and storage['meta']['tasks_superseded'] == 0
    task.refresh_from_db()
    assert link_task('a.png').id == task.id and images in media_uri(task)  # still the first commit's bytes
    assert 'superseded_by' not in lineage(task.id)


def test_deleted_file_is_marked_and_cleared_when_it_comes_back(api, project, pfs, pfs_client, images):
    sid = create(api, project, pfs, use_blob_urls=True, changed_files='new_version').json()['id']
    sync(api, sid)
    task = link_task('b.png')
    gone = put(pfs_client, 'images', {}, deletes=['b.png'])
    storage = sync(api, sid)
    assert storage['meta']['tasks_deleted'] == 1 and storage['meta']['links_marked_missing'] == 1
    assert lineage(task.id)['deleted_in'] == gone
    assert not PachydermImportStorageLink.objects.get(key='b.png').object_exists
    assert dm_versions(api, project, 'deleted') == [task.id]

    # Back with the same bytes: the same task, no longer deleted.
    put(pfs_client, 'images', {'b.png': PNG})
    storage = sync(api, sid)
    assert storage['meta']['tasks_restored'] == 1 and storage['last_sync_count'] == 0
    assert 'deleted_in' not in lineage(task.id)
    assert PachydermImportStorageLink.objects.get(key='b.png').object_exists
    assert dm_versions(api, project, 'deleted') == []

    # Deleted, then back with other bytes: a new version of it.
    put(pfs_client, 'images', {}, deletes=['b.png'])
    sync(api, sid)
    back = put(pfs_client, 'images', {'b.png': PNG + b'other'})
    storage = sync(api, sid)
    assert storage['meta']['tasks_superseded'] == 1
    new = link_task('b.png')
    assert new.id != task.id and back in media_uri(new)
    assert lineage(task.id)['superseded_by'] == new.id and 'deleted_in' not in lineage(task.id)


def test_json_rows_follow_the_rule_row_by_row(api, user, text_project, pfs, pfs_client):
    pfs_client.create_repo('default', 'images')
    rows = [{'text': 'one'}, {'text': 'two'}, {'text': 'three'}]
    put(pfs_client, 'images', {'t.jsonl': '\n'.join(json.dumps(r) for r in rows)})
    sid = create(api, text_project, pfs, changed_files='new_version').json()['id']
    assert sync(api, sid)['last_sync_count'] == 3
    one, two, three = (link_task('t.jsonl', row) for row in range(3))
    annotate(two, user)

    # Row 1 changes, row 2 is removed, a row is appended; row 0 is unchanged.
    changed = put(pfs_client, 'images', {'t.jsonl': '\n'.join(
        json.dumps(r) for r in [{'text': 'one'}, {'text': 'TWO'}])})
    storage = sync(api, sid)
    assert storage['status'] == 'completed', storage
    assert storage['last_sync_count'] == 1 and storage['meta']['tasks_superseded'] == 1
    assert storage['meta']['tasks_existed'] == 1 and storage['meta']['tasks_deleted'] == 1
    assert link_task('t.jsonl', 0).id == one.id
    new_two = link_task('t.jsonl', 1)
    assert new_two.id != two.id and new_two.data == {'text': 'TWO'}
    assert lineage(new_two.id)['previous_task'] == two.id and lineage(new_two.id)['row'] == 1
    assert lineage(two.id)['superseded_by'] == new_two.id and two.annotations.count() == 1
    assert lineage(three.id)['deleted_in'] == changed

    put(pfs_client, 'images', {'t.jsonl': '\n'.join(
        json.dumps(r) for r in [{'text': 'one'}, {'text': 'TWO'}, {'text': 'three'}, {'text': 'four'}])})
    storage = sync(api, sid)
    # Row 2 is back as it was (restored); row 3 is new.
    assert storage['meta']['tasks_restored'] == 1 and storage['last_sync_count'] == 1
    assert 'deleted_in' not in lineage(three.id)
    assert Task.objects.filter(project=text_project).count() == 5


def test_json_rows_with_keep_are_not_versioned(api, text_project, pfs, pfs_client):
    pfs_client.create_repo('default', 'images')
    put(pfs_client, 'images', {'t.json': json.dumps([{'text': 'one'}])})
    sid = create(api, text_project, pfs).json()['id']
    sync(api, sid)
    put(pfs_client, 'images', {'t.json': json.dumps([{'text': 'ONE'}, {'text': 'two'}])})
    storage = sync(api, sid)
    assert storage['last_sync_count'] == 1 and storage['meta']['tasks_superseded'] == 0
    assert link_task('t.json', 0).data == {'text': 'one'}


@pytest.mark.parametrize('value', ['sometimes', '', None, 3, ['keep']])
def test_bad_changed_files_is_a_400_naming_the_field(api, project, pfs, images, value):
    r = create(api, project, pfs, use_blob_urls=True, changed_files=value)
    assert r.status_code == 400, r.content
    assert 'changed_files' in r.json().get('validation_errors', r.json()), r.content


def test_patch_switches_the_rule_for_the_next_sync(api, project, pfs, pfs_client, images):
    sid = create(api, project, pfs, use_blob_urls=True).json()['id']
    sync(api, sid)
    r = api.patch(f'/api/storages/pachyderm/{sid}', {'changed_files': 'new_version'}, format='json')
    assert r.status_code == 200 and r.json()['changed_files'] == 'new_version', r.content
    put(pfs_client, 'images', {'c.png': PNG + b'v2'})
    assert sync(api, sid)['meta']['tasks_superseded'] == 1


def test_columns_offer_the_filter_only_with_a_pachyderm_source(api, project, pfs, images, user):
    from conftest import make_project

    def column_ids(p):
        r = api.get(f'/api/dm/columns?project={p.id}')
        assert r.status_code == 200, r.content
        return [c['id'] for c in r.json()['columns']]

    assert 'pachyderm_version' not in column_ids(project)
    create(api, project, pfs, use_blob_urls=True)
    assert 'pachyderm_version' in column_ids(project)
    assert 'pachyderm_version' not in column_ids(make_project(user, title='Other'))


# ----------------------------------------------------------------------------- the labeling queue
def _ask_next(api, project, view=None, via='api'):
    """One "which task next?" as an API client asks it (``next/``) or as "Label All Tasks" does (the
    Data Manager's ``next_task`` action)."""
    if via == 'api':
        return api.get(f'/api/projects/{project.id}/next/' + (f'?view={view}' if view else ''))
    return api.post(f'/api/dm/actions?id=next_task&project={project.id}' + (f'&view={view}' if view else ''), {},
                    format='json')


def _served(api, project, user, view=None, via='api'):
    """Ids of the tasks the queue hands out, one by one (each annotated so the queue moves on), until it has none."""
    served = []
    for _ in range(20):
        response = _ask_next(api, project, view, via)
        if response.status_code == 404:
            return served
        assert response.status_code == 200, response.content
        served.append(response.json()['id'])
        annotate(Task.objects.get(id=served[-1]), user)
    raise AssertionError(f'next/ never ran out of tasks: {served}')


def _view(api, project, filters=None, ordering=None):
    data = {'filters': filters or {'conjunction': 'and', 'items': []}, 'ordering': ordering or []}
    response = api.post('/api/dm/views', {'project': project.id, 'data': data}, format='json')
    assert response.status_code == 201, response.content
    return response.json()['id']


def _stale_project(api, project, pfs, pfs_client):
    """a.png changed (its first task superseded), b.png deleted, c.png as it was, plus a task not from Pachyderm."""
    sid = create(api, project, pfs, use_blob_urls=True, changed_files='new_version').json()['id']
    sync(api, sid)
    old_a, b, c = link_task('a.png'), link_task('b.png'), link_task('c.png')
    put(pfs_client, 'images', {'a.png': PNG + b'v2'}, deletes=['b.png'])
    assert sync(api, sid)['status'] == 'completed'
    new_a = link_task('a.png')
    uploaded = Task.objects.create(project=project, data={'image': 'https://example.com/x.png'}, meta=None)
    return {'old_a': old_a.id, 'new_a': new_a.id, 'b': b.id, 'c': c.id, 'uploaded': uploaded.id}


@pytest.mark.parametrize('via', ['api', 'label-all-tasks'])
def test_the_labeling_queue_serves_only_current_versions(api, user, project, pfs, pfs_client, images, via):
    ids = _stale_project(api, project, pfs, pfs_client)
    assert sorted(_served(api, project, user, via=via)) == sorted([ids['new_a'], ids['c'], ids['uploaded']])
    # The stale tasks stay in the project, open by id, with their lineage.
    for stale in (ids['old_a'], ids['b']):
        opened = api.get(f'/api/tasks/{stale}')
        assert opened.status_code == 200, opened.content
    assert lineage(ids['old_a'])['superseded_by'] == ids['new_a'] and 'deleted_in' in lineage(ids['b'])


@pytest.mark.parametrize('via', ['api', 'label-all-tasks'])
def test_a_tab_that_lists_stale_tasks_still_serves_only_current_ones(api, user, project, pfs, pfs_client, images, via):
    ids = _stale_project(api, project, pfs, pfs_client)
    # A tab filtered to stale versions lists them in the Data Manager, and the queue has nothing to serve.
    for value in ('superseded', 'deleted'):
        stale_tab = _view(api, project, {'conjunction': 'and', 'items': [{
            'filter': 'filter:tasks:pachyderm_version', 'operator': 'equal', 'type': 'String', 'value': value}]})
        assert _served(api, project, user, stale_tab, via) == []
    assert dm_versions(api, project, 'superseded') == [ids['old_a']]
    # A tab in its own order (newest first) serves the current tasks in that order.
    newest_first = _view(api, project, ordering=['-tasks:id'])
    assert _served(api, project, user, newest_first, via) == sorted(
        [ids['new_a'], ids['c'], ids['uploaded']], reverse=True)


def test_the_queue_of_a_project_without_pachyderm_is_label_studios(api, user, project):
    tasks = [Task.objects.create(project=project, data={'image': f'https://example.com/{n}.png'}) for n in range(3)]
    assert _served(api, project, user) == [t.id for t in tasks]
    assert api.get(f'/api/projects/{project.id + 1000}/next/').status_code == 404


# ----------------------------------------------------------------------------- the version column
def test_the_version_column_reads_each_tasks_version(api, project, pfs, pfs_client, images):
    ids = _stale_project(api, project, pfs, pfs_client)
    listed = api.get(f'/api/tasks?project={project.id}&page_size=100')
    assert listed.status_code == 200, listed.content
    cells = {t['id']: t['pachyderm_version'] for t in listed.json()['tasks']}
    old_a = Task.objects.get(id=ids['old_a']).meta['pachyderm']
    gone = Task.objects.get(id=ids['b']).meta['pachyderm']['deleted_in']
    assert cells == {
        ids['old_a']: f"superseded by #{ids['new_a']} ({old_a['superseded_in']})",
        ids['b']: f'deleted in {gone}',
        ids['c']: 'current', ids['new_a']: 'current',
        ids['uploaded']: '',  # not from Pachyderm
    }
    # The column is shown by default where files make new versions, and sorts and filters as before.
    columns = {c['id']: c for c in api.get(f'/api/dm/columns?project={project.id}').json()['columns']}
    assert columns['pachyderm_version']['visibility_defaults']['explore'] is True
    assert dm_versions(api, project, 'deleted') == [ids['b']]


def test_the_version_column_is_hidden_by_default_where_files_keep_their_task(api, project, pfs, images):
    create(api, project, pfs, use_blob_urls=True)  # changed_files: keep
    columns = {c['id']: c for c in api.get(f'/api/dm/columns?project={project.id}').json()['columns']}
    assert columns['pachyderm_version']['visibility_defaults']['explore'] is False
