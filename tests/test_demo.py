"""The demo's project step (``python -m label_studio_pachyderm.demo project``), as scripts/demo.sh runs it:
over HTTP against a real Label Studio (Django's live server) and a real local PFS server. What it
reports must be true on a first run and on a later one: the files on images@master, the tasks
still to label."""
import pytest
from label_studio_pachyderm import demo, pachd
from tasks.models import Annotation, Task

from test_import import PNG

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
