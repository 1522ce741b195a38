"""Watch: new commits become tasks by themselves.

The client's ``subscribe_commits`` against the local PFS server, then the watcher as a
real ``label-studio-pachyderm watch`` process (plugin settings, the test database) on
real storages, with pachd restarts, two watchers and a token-protected server.
"""
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from label_studio_pachyderm import pachd
from label_studio_pachyderm.models import PachydermImportStorage, PachydermImportStorageLink
from label_studio_pachyderm.imports.watcher import WATCH_KEYS
from tasks.models import Task

import waiting
from conftest import TOKEN, make_project, restart_pfs
from test_import import PNG, put
from test_rq import rq_worker  # noqa: F401 (a fixture)

WAIT = 60  # seconds: generous for a loaded 2-core machine; a passing run waits a fraction of it
REFRESH = 1  # the watcher looks for created, edited and deleted storages every second here

db_transactional = pytest.mark.django_db(transaction=True)


def wait_for(predicate, timeout=WAIT, what='condition', proc=None):
    """waiting.wait_for; with ``proc`` (a WatcherProcess) it fails at once if the watcher exits, and shows its log."""
    return waiting.wait_for(predicate, timeout, what, process=proc, log=proc.log if proc is not None else None)


def synced_for(watcher, commit):
    """Whether ``watcher`` has logged a sync it started for ``commit``'s event: logged once that sync ran
    (or failed to start), so every commit up to ``commit`` has been read and no sync for them is still due."""
    return f': sync (commit {commit})' in watcher.log()


# ----------------------------------------------------------------------------- subscribe_commits
# The plugin's client with a short per-call timeout: a subscription must outlive it.
short_timeout = pytest.mark.parametrize('pfs_client_timeout', [2], ids=['timeout-2s'])


class Reader:
    """Iterates a subscription on a thread, as the watcher does."""

    def __init__(self, subscription):
        self.subscription, self.items, self.error = subscription, [], None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            for info in self.subscription:
                self.items.append(info)
        except Exception as exc:
            self.error = exc

    def ids(self):
        return [info.id for info in self.items]


@pytest.mark.slow
@short_timeout
def test_subscription_outlives_the_timeout_and_reports_commits_as_they_finish(pfs_client):
    pfs_client.create_repo('default', 'images')
    first = put(pfs_client, 'images', {'a.png': PNG})
    reader = Reader(pfs_client.subscribe_commits('default', 'images', 'master', from_commit=first))
    time.sleep(pfs_client.timeout * 2)  # the point: a quiet branch for longer than any per-call deadline
    assert reader.thread.is_alive() and reader.error is None and reader.items == []

    open_commit = pfs_client._pfs.start_commit(branch=pfs_client._branch('default', 'images', 'master'))
    # A subscription asking for STARTED reports the open commit: the server has told its subscribers.
    started = Reader(pfs_client.subscribe_commits('default', 'images', 'master', from_commit=first, state='STARTED'))
    wait_for(lambda: started.ids() == [open_commit.id], what='the open commit reported as STARTED')
    started.subscription.cancel()
    assert reader.items == []  # FINISHED asked: an open commit is not reported yet
    pfs_client._pfs.finish_commit(commit=open_commit)
    second = put(pfs_client, 'images', {'b.png': PNG})
    wait_for(lambda: len(reader.items) == 2, what='two finished commits')
    assert reader.ids() == [open_commit.id, second] and all(info.finished for info in reader.items)

    reader.subscription.cancel()  # from another thread than the one iterating
    reader.thread.join(10)
    assert not reader.thread.is_alive() and reader.error is None


@short_timeout
def test_subscription_without_start_lists_the_branch_only_oldest_first(pfs_client):
    pfs_client.create_repo('default', 'images')
    one = put(pfs_client, 'images', {'1.png': PNG})
    pfs_client.create_branch('default', 'images', 'other', head=one)
    put(pfs_client, 'images', {'x.png': PNG}, branch='other')
    two = put(pfs_client, 'images', {'2.png': PNG})
    subscription = pfs_client.subscribe_commits('default', 'images', 'master')
    reader = Reader(subscription)
    wait_for(lambda: len(reader.items) >= 2, what='the existing commits')
    # A commit made now comes after every existing one: once it is reported, nothing older can still come.
    three = put(pfs_client, 'images', {'3.png': PNG})
    wait_for(lambda: three in reader.ids(), what='a commit made after the subscription started')
    assert reader.ids() == [one, two, three]
    subscription.cancel()


@short_timeout
def test_subscription_ends_with_unavailable_when_pachd_goes_away(pfs_client, pfs):
    pfs_client.create_repo('default', 'images')
    head = put(pfs_client, 'images', {'a.png': PNG})
    reader = Reader(pfs_client.subscribe_commits('default', 'images', 'master', from_commit=head))
    live = put(pfs_client, 'images', {'b.png': PNG})
    wait_for(lambda: reader.ids() == [live], what='the subscription streaming (a new commit reported)')
    pfs.stop()
    reader.thread.join(30)
    assert isinstance(reader.error, pachd.PachdUnavailable), reader.error


@short_timeout
def test_subscription_arguments_are_checked(pfs_client):
    pfs_client.create_repo('default', 'images')
    with pytest.raises(pachd.PachdInvalidArgument):
        pfs_client.subscribe_commits('default', 'images', 'master', state='DONE')
    with pytest.raises(pachd.PachdInvalidArgument):
        pfs_client.subscribe_commits('default', 'images', 'master', from_commit='not-a-commit')
    reader = Reader(pfs_client.subscribe_commits('default', 'missing', 'master'))
    reader.thread.join(30)
    assert isinstance(reader.error, pachd.PachdNotFound) and 'missing' in str(reader.error)


# ----------------------------------------------------------------------------- the watcher process
class WatcherProcess:
    def __init__(self, settings, tmp_path, name='watcher', log_level='INFO', env=None):
        db = settings.DATABASES['default']['NAME']
        env = {
            **os.environ,
            'DJANGO_SETTINGS_MODULE': 'label_studio_pachyderm.settings',
            'DATABASE_NAME': db,
            'POSTGRE_NAME': db,
            'PACHYDERM_ALLOWED_HOSTS': '127.0.0.1',
            'PACHYDERM_REDIS_URL': settings.PACHYDERM_REDIS_URL or '',
            'PACHYDERM_RQ_QUEUE': settings.PACHYDERM_RQ_QUEUE,
            'PACHYDERM_GRPC_TIMEOUT': '5',
            'SENTRY_DSN': '',
            'LOG_LEVEL': log_level,
            **(env or {}),
        }
        cli = os.path.join(os.path.dirname(sys.executable), 'label-studio-pachyderm')
        self.path = tmp_path / f'{name}.log'
        self._log = open(self.path, 'wb')
        self.proc = subprocess.Popen([cli, 'watch', '--refresh', str(REFRESH)], env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT)

    def ready(self):
        # Starting means loading all of Label Studio in a new process: the slowest step on a loaded machine.
        wait_for(lambda: 'Pachyderm watch: started' in self.log(), timeout=3 * WAIT, what='the watcher to start',
                 proc=self)
        return self

    def alive(self):
        return self.proc.poll() is None

    def poll(self):
        return self.proc.poll()

    def log(self):
        return self.path.read_text(errors='replace')

    def stop(self):
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture
def watchers(settings, tmp_path):
    started = []

    def start(count=1, **kwargs):
        procs = [WatcherProcess(settings, tmp_path, name=f'watcher{len(started) + i}', **kwargs)
                 for i in range(count)]
        started.extend(procs)
        for proc in procs:  # started side by side, then waited for
            proc.ready()
        return procs[0] if count == 1 else procs

    yield start
    for proc in started:
        proc.stop()


def create(api, project, address, **fields):
    body = {'project': project.id, 'title': 'watched', 'pachd_address': address, 'repo': 'images',
            'use_blob_urls': True, 'watch_commits': True, **fields}
    response = api.post('/api/storages/pachyderm', body, format='json')
    assert response.status_code == 201, response.content
    return response.json()['id']


def keys(project):
    """The file of every task of the project, as many times as it has tasks."""
    return sorted(PachydermImportStorageLink.objects.filter(task__project=project).values_list('key', flat=True))


def files_imported(project, expected):
    return keys(project) == sorted(expected)


def meta(storage_id):
    return PachydermImportStorage.objects.get(id=storage_id).meta or {}


def attempts(storage_id):
    return meta(storage_id).get('attempts', 0)


@pytest.mark.slow
@db_transactional
def test_commits_become_tasks_with_no_sync_call_and_a_burst_is_few_syncs(api, project, pfs, pfs_client, watchers):
    pfs_client.create_repo('default', 'images')
    put(pfs_client, 'images', {'0.png': PNG})
    sid = create(api, project, pfs.address)
    watcher = watchers()
    # On start, one catch-up sync reads what is already there.
    wait_for(lambda: files_imported(project, ['0.png']), what='the catch-up sync', proc=watcher)
    head = put(pfs_client, 'images', {'1.png': PNG, 'cats/2.png': PNG})
    wait_for(lambda: files_imported(project, ['0.png', '1.png', 'cats/2.png']), what='the new commit imported',
             proc=watcher)
    # An ordinary sync: lineage and status as a manual one leaves them.
    storage = PachydermImportStorage.objects.get(id=sid)
    wait_for(lambda: PachydermImportStorage.objects.get(id=sid).status == 'completed', what='completed')
    storage.refresh_from_db()
    assert storage.last_synced_commit == head
    task = PachydermImportStorageLink.objects.get(storage_id=sid, key='1.png').task
    assert head in json.dumps(task.data)
    # Visible on the storage: the watch keys survive the sync's fresh meta.
    shown = wait_for(lambda: (lambda m: m if m.get('watching') and m.get('watch_last_event') else None)(meta(sid)),
                     what='the watch keys in meta', proc=watcher)
    assert shown['watch_since'] and shown['watch_last_error'] is None and shown['sync_mode'] == 'incremental'
    response = api.get(f'/api/storages/pachyderm/{sid}')
    assert response.json()['watch_commits'] is True and response.json()['meta']['watching'] is True
    assert 'storage %s' % sid in watcher.log() and ': sync (commit ' in watcher.log()
    # A sync elsewhere (the Sync button, another process) writes a fresh meta: a refresh puts the keys back.
    syncs = watcher.log().count(': sync (')
    for fresh in ({'sync_mode': 'incremental'}, {**shown, 'watching': False}):
        PachydermImportStorage.objects.filter(id=sid).update(meta=fresh)
        wait_for(lambda: meta(sid).get('watching') is True and all(k in meta(sid) for k in WATCH_KEYS),
                 what='the watch keys back in meta', proc=watcher)
    assert meta(sid)['sync_mode'] == 'incremental' and watcher.log().count(': sync (') == syncs
    # It did all that without pyarrow (33 MiB of resident memory, see cli): not mapped in the process.
    assert 'libarrow' not in Path(f'/proc/{watcher.proc.pid}/maps').read_text()

    # A burst of commits: every file, in one or a few syncs (not one per commit).
    before = attempts(sid)
    burst = [f'burst/{i}.png' for i in range(10)]
    last = [put(pfs_client, 'images', {path: PNG}) for path in burst][-1]
    wait_for(lambda: files_imported(project, ['0.png', '1.png', 'cats/2.png', *burst]), what='the burst imported',
             proc=watcher)
    # The sync started for the last commit's event has run: no sync for the burst is still due.
    wait_for(lambda: synced_for(watcher, last), what='the sync for the last commit of the burst', proc=watcher)
    wait_for(lambda: PachydermImportStorage.objects.get(id=sid).status == 'completed', what='completed')
    syncs = attempts(sid) - before
    assert 1 <= syncs <= 5, f'{syncs} syncs for 10 commits'
    assert files_imported(project, ['0.png', '1.png', 'cats/2.png', *burst])


@pytest.mark.slow
@db_transactional
def test_storages_created_edited_and_deleted_while_it_runs(api, user, project, pfs, pfs_client, watchers):
    pfs_client.create_repo('default', 'images')
    first = put(pfs_client, 'images', {'0.png': PNG})
    pfs_client.create_branch('default', 'images', 'other', head=first)
    watcher = watchers()
    sid = create(api, project, pfs.address)  # created after the watcher started
    wait_for(lambda: files_imported(project, ['0.png']), what='the new storage followed', proc=watcher)

    # Another branch: the watcher subscribes again, to that branch.
    assert api.patch(f'/api/storages/pachyderm/{sid}', {'branch': 'other'}, format='json').status_code == 200
    wait_for(lambda: 'connection settings changed' in watcher.log(), what='the edit seen', proc=watcher)
    put(pfs_client, 'images', {'other/1.png': PNG}, branch='other')
    wait_for(lambda: files_imported(project, ['0.png', 'other/1.png']), what='a commit on the new branch',
             proc=watcher)

    # Watching off: commits wait for a manual sync; the storage no longer says it is watched.
    assert api.patch(f'/api/storages/pachyderm/{sid}', {'watch_commits': False}, format='json').status_code == 200
    wait_for(lambda: meta(sid).get('watching') is False, what='watching: false', proc=watcher)
    # A storage of another project watching the same branch: its sync of the next commit proves the
    # watcher has seen that commit, and only then is the absence of an import here meaningful.
    control_project = make_project(user, title='Control')
    control = create(api, control_project, pfs.address, branch='other', title='control')
    wait_for(lambda: files_imported(control_project, ['0.png', 'other/1.png']), what='the control storage followed',
             proc=watcher)
    landed = put(pfs_client, 'images', {'other/2.png': PNG}, branch='other')
    wait_for(lambda: f'storage {control} (default/images@other): sync (commit {landed})' in watcher.log()
             and files_imported(control_project, ['0.png', 'other/1.png', 'other/2.png']),
             what='the commit imported by the control storage', proc=watcher)
    assert files_imported(project, ['0.png', 'other/1.png'])
    # On again: the catch-up sync reads what landed meanwhile.
    assert api.patch(f'/api/storages/pachyderm/{sid}', {'watch_commits': True}, format='json').status_code == 200
    wait_for(lambda: files_imported(project, ['0.png', 'other/1.png', 'other/2.png']), what='the catch-up',
             proc=watcher)

    # Deleted: the watcher lets it go and keeps running.
    wait_for(lambda: PachydermImportStorage.objects.get(id=sid).status == 'completed', what='completed')
    assert api.delete(f'/api/storages/pachyderm/{sid}').status_code == 204
    wait_for(lambda: watcher.log().count('no longer watched') >= 2, what='the deletion seen', proc=watcher)
    put(pfs_client, 'images', {'other/3.png': PNG}, branch='other')
    second = create(api, project, pfs.address, branch='other', title='again')
    wait_for(lambda: PachydermImportStorageLink.objects.filter(storage_id=second, key='other/3.png').exists(),
             what='a storage created after a deletion followed', proc=watcher)
    assert watcher.alive() and 'Traceback' not in watcher.log()


@pytest.mark.slow
@db_transactional
@pytest.mark.pfs_auth
def test_pachd_restarted_on_the_same_port_loses_nothing_and_the_token_is_never_logged(api, project, pfs, pfs_client,
                                                                                     watchers):
    server, client = pfs, pfs_client
    client.create_repo('default', 'images')
    put(client, 'images', {'0.png': PNG})
    sid = create(api, project, server.address, auth_token=TOKEN)
    watcher = watchers(log_level='DEBUG')
    wait_for(lambda: files_imported(project, ['0.png']), what='the catch-up sync', proc=watcher)
    expected = ['0.png']
    try:
        put(client, 'images', {'before-stop.png': PNG})  # the watcher may be syncing it when pachd goes
        expected.append('before-stop.png')
        server.stop()
        wait_for(lambda: 'reconnecting in' in watcher.log(), what='the lost subscription noticed', proc=watcher)
        wait_for(lambda: meta(sid).get('watch_last_error'), what='the error shown on the storage', proc=watcher)
        # ... and in the status the storage card shows, with the reason.
        wait_for(lambda: PachydermImportStorage.objects.get(id=sid).status == 'failed', what='a failed status',
                 proc=watcher)
        failed = PachydermImportStorage.objects.get(id=sid)
        assert 'The watcher cannot follow default/images@master: cannot reach pachd' in failed.traceback, failed.traceback
        server = restart_pfs(server)
        client = pachd.PachdClient(server.address, auth_token=TOKEN)
        # Commits landing while the watcher is still backing off: only the catch-up sync sees them.
        for i in range(3):
            put(client, 'images', {f'while-reconnecting-{i}.png': PNG})
            expected.append(f'while-reconnecting-{i}.png')
        wait_for(lambda: 'reconnected to pachd' in watcher.log(), what='the reconnect', proc=watcher)
        for i in range(3):
            put(client, 'images', {f'after-{i}.png': PNG})
            expected.append(f'after-{i}.png')
        wait_for(lambda: files_imported(project, expected), what='every file after the restart', proc=watcher)
        wait_for(lambda: meta(sid).get('watch_last_error') is None and meta(sid).get('watching'),
                 what='the error cleared', proc=watcher)
        wait_for(lambda: PachydermImportStorage.objects.get(id=sid).status == 'completed', what='the status back',
                 proc=watcher)
        assert 'status_before_watch_error' not in meta(sid)
        assert Task.objects.filter(project=project).count() == len(expected)
    finally:
        server.stop()
    log = watcher.log()
    assert 'Pachyderm watch' in log and TOKEN not in log
    storage = PachydermImportStorage.objects.get(id=sid)
    assert TOKEN not in json.dumps(storage.meta) + (storage.traceback or '')


@pytest.mark.slow
@db_transactional
def test_after_a_pachd_restart_with_nothing_new_no_sync_runs_and_the_next_commit_is_read(api, project, pfs,
                                                                                        pfs_client, watchers):
    """The catch-up after a reconnect is skipped when the last sync already read the head it resumes
    after (a thousand storages reconnecting would otherwise make a thousand syncs); the status still
    comes back, and a commit after it is read as usual."""
    server, client = pfs, pfs_client
    client.create_repo('default', 'images')
    put(client, 'images', {'0.png': PNG})
    sid = create(api, project, server.address)
    watcher = watchers()
    wait_for(lambda: files_imported(project, ['0.png']), what='the catch-up sync', proc=watcher)
    wait_for(lambda: meta(sid).get('watching'), what='the watch marks', proc=watcher)
    synced = PachydermImportStorage.objects.get(id=sid)
    try:
        server.stop()
        wait_for(lambda: PachydermImportStorage.objects.get(id=sid).status == 'failed', what='a failed status',
                 proc=watcher)
        server = restart_pfs(server)
        wait_for(lambda: 'no sync needed (catch-up after reconnecting)' in watcher.log(),
                 what='the catch-up found up to date', proc=watcher)
        wait_for(lambda: PachydermImportStorage.objects.get(id=sid).status == 'completed', what='the status back',
                 proc=watcher)
        after = PachydermImportStorage.objects.get(id=sid)
        # No sync was claimed: the same attempt, the same last sync, and no new task.
        assert after.meta.get('attempts') == synced.meta.get('attempts')
        assert after.last_sync == synced.last_sync and after.last_synced_commit == synced.last_synced_commit
        assert 'status_before_watch_error' not in after.meta
        client = pachd.PachdClient(server.address)
        head = put(client, 'images', {'1.png': PNG})
        wait_for(lambda: files_imported(project, ['0.png', '1.png']), what='the commit after the restart',
                 proc=watcher)
        wait_for(lambda: synced_for(watcher, head), what='its sync logged', proc=watcher)
        assert Task.objects.filter(project=project).count() == 2
    finally:
        server.stop()


@pytest.mark.slow
@db_transactional
def test_two_watchers_follow_a_storage_once_and_hand_it_over_when_one_stops(api, project, pfs, pfs_client, watchers):
    pfs_client.create_repo('default', 'images')
    put(pfs_client, 'images', {'0.png': PNG})
    sid = create(api, project, pfs.address)
    first, second = watchers(count=2)
    label = f'storage {sid} (default/images@master): watching'
    owner = wait_for(lambda: next((w for w in (first, second) if label in w.log()), None),
                     what='one watcher following the storage', proc=first)
    other = second if owner is first else first
    expected = ['0.png']
    for i in range(12):
        last = put(pfs_client, 'images', {f'{i % 3}/{i}.png': PNG})
        expected.append(f'{i % 3}/{i}.png')
        time.sleep(0.15 * (i % 4))  # bursts and gaps between commits
    wait_for(lambda: files_imported(project, expected), what='every file', proc=owner)
    # The follower's sync for the last commit has run: no sync is still due, so a late one
    # cannot add a duplicate after the check below.
    wait_for(lambda: synced_for(owner, last), what='the sync for the last commit', proc=owner)
    assert files_imported(project, expected) and Task.objects.filter(project=project).count() == len(expected)
    # One subscription for the branch, however many watchers: the other one never followed it.
    assert pfs.open_subscriptions() == {'default/images@master': 1}
    assert label not in other.log() and ': sync (' not in other.log()
    assert meta(sid).get('watching') is True

    # The follower stops: it lets its lease go, and the other watcher takes the storage over at once
    # (its catch-up sync reads what landed meanwhile).
    owner.stop()
    landed = put(pfs_client, 'images', {'after-handover.png': PNG})
    expected.append('after-handover.png')
    wait_for(lambda: label in other.log(), what='the other watcher taking the storage over', proc=other)
    wait_for(lambda: files_imported(project, expected), what='the commit made during the handover', proc=other)
    put(pfs_client, 'images', {'later.png': PNG})
    expected.append('later.png')
    wait_for(lambda: files_imported(project, expected), what='a commit after the handover', proc=other)
    assert Task.objects.filter(project=project).count() == len(expected)
    assert landed and pfs.open_subscriptions() == {'default/images@master': 1}


# ----------------------------------------------------------------------------- the API field
@pytest.mark.slow
@db_transactional
def test_with_redis_the_syncs_run_on_the_rq_queue(api, project, pfs, pfs_client, rq_worker, watchers):
    pfs_client.create_repo('default', 'images')
    put(pfs_client, 'images', {'0.png': PNG})
    sid = create(api, project, pfs.address)
    watcher = watchers()
    wait_for(lambda: files_imported(project, ['0.png']), what='the catch-up sync on the worker', proc=watcher)
    put(pfs_client, 'images', {'1.png': PNG})
    wait_for(lambda: files_imported(project, ['0.png', '1.png']), what='the commit imported on the worker',
             proc=watcher)
    assert 'sync queued (commit ' in watcher.log()
    storage = wait_for(lambda: PachydermImportStorage.objects.filter(id=sid, status='completed').first(),
                       what='completed')
    assert storage.last_sync_job  # an RQ job ran it, not the watcher
    # The worker wrote the sync's own meta; the watcher adds its keys back at its next refresh.
    wait_for(lambda: meta(sid).get('watching') is True and meta(sid).get('watch_last_event'), what='the watch keys',
             proc=watcher)


@pytest.mark.django_db
def test_a_pinned_commit_cannot_be_watched(api, project, pfs, pfs_client):
    pfs_client.create_repo('default', 'images')
    head = put(pfs_client, 'images', {'0.png': PNG})
    body = {'project': project.id, 'pachd_address': pfs.address, 'repo': 'images', 'use_blob_urls': True}
    response = api.post('/api/storages/pachyderm', {**body, 'commit': head, 'watch_commits': True}, format='json')
    assert response.status_code == 400
    message = response.json()['validation_errors']['watch_commits'][0] if 'validation_errors' in response.json() \
        else response.json()['watch_commits'][0]
    assert head in message and 'pinned' in message and 'Clear the commit' in message
    # Pinned and stored, then watching switched on alone: the stored commit still counts.
    pinned = api.post('/api/storages/pachyderm', {**body, 'commit': head}, format='json').json()
    assert pinned['watch_commits'] is False
    response = api.patch(f'/api/storages/pachyderm/{pinned["id"]}', {'watch_commits': True}, format='json')
    assert response.status_code == 400 and 'watch_commits' in json.dumps(response.json())
    # Unpinned in the same request: fine.
    response = api.patch(f'/api/storages/pachyderm/{pinned["id"]}', {'watch_commits': True, 'commit': ''},
                         format='json')
    assert response.status_code == 200 and response.json()['watch_commits'] is True


# ----------------------------------------------------------------------------- inside `start`
@db_transactional
def test_start_runs_the_watcher_inside_label_studio(api, project, pfs, pfs_client, monkeypatch, settings):
    """`label-studio-pachyderm start`: the watcher begins when Label Studio begins serving, in its process."""
    import label_studio.server

    from label_studio_pachyderm import cli
    from label_studio_pachyderm.exports import sweeper as sweeper_module
    from label_studio_pachyderm.imports import watcher as watcher_module

    settings.PACHYDERM_WATCH_REFRESH_SECONDS = REFRESH
    running, served = [], threading.Event()
    real_run = watcher_module.Watcher.run

    def run(self):
        running.append(self)
        real_run(self)

    monkeypatch.setattr(watcher_module.Watcher, 'run', run)
    sweepers, real_start = [], sweeper_module.Sweeper.start

    def start_sweeper(self):
        sweepers.append(self)
        return real_start(self)

    monkeypatch.setattr(sweeper_module.Sweeper, 'start', start_sweeper)
    monkeypatch.setattr(label_studio.server, '_app_run', lambda host, port: served.wait(WAIT))
    monkeypatch.setattr(label_studio.server, 'main', lambda: label_studio.server._app_run('127.0.0.1', 0) and None)
    monkeypatch.setattr(sys, 'argv', list(sys.argv))
    pfs_client.create_repo('default', 'images')
    put(pfs_client, 'images', {'0.png': PNG})
    create(api, project, pfs.address)
    thread = threading.Thread(target=cli.main, args=(['start', '--no-browser'],), daemon=True)
    thread.start()
    try:
        wait_for(lambda: running, what='the watcher thread')
        put(pfs_client, 'images', {'1.png': PNG})
        wait_for(lambda: files_imported(project, ['0.png', '1.png']), what='the commit imported in-process')
        # The outbox sweep runs in the Label Studio process too (and below, whatever PACHYDERM_WATCH says).
        assert len(sweepers) == 1 and sweepers[0].running
    finally:
        for watcher in running:
            watcher.stop()
        for one in sweepers:
            one.stop(timeout=60)
        served.set()
        thread.join(30)
    for watcher in running:
        for follower in list(watcher.followers.values()):
            follower.join(10)

    # PACHYDERM_WATCH=false: Label Studio serves, nothing watches.
    settings.PACHYDERM_WATCH = False
    running.clear()
    served.set()
    try:
        assert cli.main(['start']) == 0
        assert running == []
        assert len(sweepers) == 2
    finally:
        for one in sweepers:
            one.stop(timeout=60)
    assert not any(one.running for one in sweepers)


@pytest.mark.django_db
def test_openapi_and_the_form_layout_offer_the_toggle(api):
    schema = api.get('/docs/api/schema/json/').json()['components']['schemas']
    documented = [name for name, body in schema.items() if 'watch_commits' in (body.get('properties') or {})]
    assert documented and all('Export' not in name for name in documented)
    prop = schema[documented[0]]['properties']['watch_commits']
    assert prop['type'] == 'boolean' and 'commit' in prop['description']
    layout = api.get('/api/storages/pachyderm/form').json()
    assert 'Sync automatically when new commits land' in json.dumps(layout)
    assert 'watch_commits' not in json.dumps(api.get('/api/storages/export/pachyderm/form').json())
