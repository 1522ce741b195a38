"""inserts: the rows a sync inserts are the rows bulk_create would write, with their ids in order.

Real Label Studio models on the test database (SQLite, and PostgreSQL in that lane).
"""
import pytest
from django.db import connection
from django.forms.models import model_to_dict
from label_studio_pachyderm import inserts
from label_studio_pachyderm.models import PachydermImportStorage, PachydermImportStorageLink
from tasks.models import Task

pytestmark = pytest.mark.django_db(transaction=True)

# Set by the database itself, or by the time of the insert: not compared.
UNCOMPARED = {'id', 'created_at', 'updated_at'}


def stored(model, ids):
    rows = {obj.id: model_to_dict(obj, fields=[f.name for f in model._meta.concrete_fields])
            for obj in model.objects.filter(id__in=ids)}
    return [{k: v for k, v in rows[i].items() if k not in UNCOMPARED} for i in ids]


def test_tasks_and_links_are_the_rows_bulk_create_writes(project):
    storage = PachydermImportStorage.objects.create(project=project, pachd_address='pachd:30650', repo='images')
    per_row = [{'data': {'image': f'pach://default/images@c/{i}.png', 'n': i}, 'inner_id': 10 + i,
                'allow_skip': i % 2 == 0, 'meta': {'pachyderm': {'path': f'{i}.png', 'row': None}}}
               for i in range(130)]  # more than one batch on SQLite (999 parameters: 52 tasks)
    shared = {'project_id': project.id, 'overlap': 2, 'is_labeled': False}

    ids = inserts.insert(Task, shared, per_row)
    made = Task.objects.bulk_create([Task(**shared, **row) for row in per_row])

    assert len(ids) == len(set(ids)) == 130
    assert stored(Task, ids) == stored(Task, [t.id for t in made])
    assert [Task.objects.get(id=i).inner_id for i in ids] == [row['inner_id'] for row in per_row]  # ids in order
    task = Task.objects.get(id=ids[0])
    assert task.created_at is not None and task.updated_at is not None and task.total_annotations == 0

    links = [{'task_id': task_id, 'key': f'{i}.png', 'row_index': None, 'row_group': None}
             for i, task_id in enumerate(ids)]
    link_ids = inserts.insert(PachydermImportStorageLink, {'storage_id': storage.id, 'commit': 'c' * 32}, links)
    assert [link.task_id for link in PachydermImportStorageLink.objects.filter(id__in=link_ids).order_by('id')] == ids
    link = PachydermImportStorageLink.objects.get(id=link_ids[5])
    assert (link.key, link.commit, link.storage_id, link.object_exists) == ('5.png', 'c' * 32, storage.id, True)


def test_nothing_to_insert_and_an_unknown_field(project):
    assert inserts.insert(Task, {'project_id': project.id}, []) == []
    with pytest.raises(ValueError, match='no_such_field'):
        inserts.insert(Task, {'project_id': project.id, 'no_such_field': 1}, [{'data': {}}])
    with pytest.raises(ValueError, match='not_a_field'):
        inserts.insert(Task, {'project_id': project.id}, [{'data': {}, 'not_a_field': 1}])
    assert not Task.objects.filter(project=project).exists()


def test_a_field_with_its_own_placeholder_gets_bulk_create(project, monkeypatch):
    # e.g. a geometry column: its SQL is the field's, not a plain parameter; bulk_create knows how.
    field = Task._meta.get_field('data')
    monkeypatch.setattr(field, 'get_placeholder', lambda value, compiler, connection: '%s', raising=False)
    ids = inserts.insert(Task, {'project_id': project.id}, [{'data': {'i': i}, 'inner_id': i} for i in range(3)])
    assert [Task.objects.get(id=i).data for i in ids] == [{'i': 0}, {'i': 1}, {'i': 2}]


def test_a_failed_batch_leaves_no_row_in_the_transaction(project):
    from django.db import IntegrityError, transaction

    storage = PachydermImportStorage.objects.create(project=project, pachd_address='pachd:30650', repo='images')
    ids = inserts.insert(Task, {'project_id': project.id}, [{'data': {'i': i}} for i in range(2)])
    duplicate = [{'task_id': ids[0], 'key': 'same.png', 'row_index': None}, {'task_id': ids[1], 'key': 'same.png',
                                                                            'row_index': None}]
    with pytest.raises(IntegrityError), transaction.atomic():  # one link per file row
        inserts.insert(PachydermImportStorageLink, {'storage_id': storage.id}, duplicate)
    assert not PachydermImportStorageLink.objects.filter(storage=storage).exists()
