"""Large inputs: a 1 GiB media file through a real Label Studio server's storage proxy, a 100,000-row
JSONL task file, and 100,000 files in one repo.

Slow (about 4 minutes together on 2 CPUs), so they live in their own module:
``pytest tests/test_large.py -s`` prints the figures (throughput, peak RSS, durations).

The local PFS server runs as its own process here (``label-studio-pachyderm pfs-server``), so the
memory figures of Label Studio's side and of the PFS server are measured separately.
"""
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from types import SimpleNamespace

import pytest
from label_studio_pachyderm import pachd

from conftest import TEXT_CONFIG
from waiting import wait_for

MiB = 1024 * 1024
CLI = os.path.join(os.path.dirname(sys.executable), 'label-studio-pachyderm')


# ----------------------------------------------------------------------------- helpers
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _vm_hwm(pid: int) -> int:
    """Peak RSS of a live process over its lifetime (bytes), from /proc."""
    with open(f'/proc/{pid}/status') as status:
        for line in status:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) * 1024
    return 0


class RssPeak:
    """Samples the RSS of some processes in a thread; ``peak[pid]`` is the highest seen."""

    def __init__(self, *pids, interval=0.01):
        import psutil

        self._procs = {pid: psutil.Process(pid) for pid in pids}
        self.start = {pid: p.memory_info().rss for pid, p in self._procs.items()}
        self.peak = dict(self.start)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            for pid, proc in self._procs.items():
                try:
                    self.peak[pid] = max(self.peak[pid], proc.memory_info().rss)
                except Exception:
                    pass
            self._stop.wait(self._interval)

    def growth(self, pid) -> int:
        return self.peak[pid] - self.start[pid]

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)


def _mib(n: int) -> str:
    return f'{n / MiB:.0f} MiB'


@pytest.fixture
def pfs_proc(tmp_path):
    """The local PFS server as a separate process (``label-studio-pachyderm pfs-server``)."""
    port = _free_port()
    log = open(tmp_path / 'pfs-server.log', 'wb')
    proc = subprocess.Popen(
        [CLI, 'pfs-server', '--host', '127.0.0.1', '--port', str(port), '--data-dir', str(tmp_path / 'pfs-data')],
        stdout=log, stderr=subprocess.STDOUT,
    )
    address = f'grpc://127.0.0.1:{port}'
    client = pachd.PachdClient(address, timeout=60)
    wait_for(lambda: list(client.list_repos()) or True, 60, 'the PFS server to start', ignore=pachd.PachdError,
             process=proc, log=tmp_path / 'pfs-server.log')
    yield SimpleNamespace(address=address, port=port, pid=proc.pid, client=client)
    client.close()
    _stop(proc)
    log.close()


# ----------------------------------------------------------------------------- 3a. 1 GiB through the proxy
GIB = 1024 * MiB
TOKEN = 'large0test0token0abcdef0123456789'


def _seed_one_gib(client, repo, path) -> str:
    """Write 1 GiB (1024 distinct 1 MiB chunks, generated on the fly) and return its sha256."""
    digest = hashlib.sha256()
    block = hashlib.sha256(b'large-file').digest() * (MiB // 32)

    def chunks():
        for i in range(GIB // MiB):
            chunk = i.to_bytes(8, 'big') + block[8:]
            digest.update(chunk)
            yield chunk

    client.create_repo('default', repo)
    client.write_commit('default', repo, 'master', [pachd.FileOp.put(path, chunks())], description='1 GiB')
    return digest.hexdigest()


@pytest.fixture
def ls_server(tmp_path, pfs_proc):
    """A real Label Studio server with the plugin, started as a user would: ``label-studio-pachyderm start``."""
    port = _free_port()
    base = tempfile.mkdtemp(prefix='lsp-large-ls-', dir='/dev/shm' if os.path.isdir('/dev/shm') else None)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(('POSTGRE_', 'DJANGO_', 'DATABASE_', 'PYTEST_'))}
    env.update(
        LABEL_STUDIO_BASE_DATA_DIR=base, PACHYDERM_ALLOWED_HOSTS=f'127.0.0.1:{pfs_proc.port}',
        SENTRY_DSN='', FRONTEND_SENTRY_DSN='', COLLECT_ANALYTICS='false', LATEST_VERSION_CHECK='false',
        # Label Studio cuts a proxied response off after RESOLVER_PROXY_TIMEOUT (20 s by default); the
        # full-body read of 1 GiB on a busy 2-CPU CI machine may need longer.
        RESOLVER_PROXY_TIMEOUT='300',
    )
    log_path = tmp_path / 'label-studio.log'
    log = open(log_path, 'wb')
    proc = subprocess.Popen(
        [CLI, 'start', '--no-browser', '--port', str(port), '--username', 'large@example.com',
         '--password', 'large-pass-123', '--user-token', TOKEN, '--enable-legacy-api-token'],
        cwd=base, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    import requests

    url = f'http://127.0.0.1:{port}'
    started = time.time()
    try:
        wait_for(lambda: requests.get(f'{url}/health', timeout=2).status_code == 200, 300, 'Label Studio to start',
                 interval=0.5, ignore=requests.RequestException, process=proc, log=log_path)
        print(f'\nLabel Studio server ready in {time.time() - started:.0f}s')
        session = requests.Session()
        session.headers['Authorization'] = f'Token {TOKEN}'
        yield SimpleNamespace(url=url, pid=proc.pid, session=session, log=log_path)
    finally:
        _stop(proc)
        log.close()
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
def test_one_gib_file_through_the_proxy_with_bounded_memory(pfs_proc, ls_server):
    started = time.time()
    source_sha = _seed_one_gib(pfs_proc.client, 'media', 'videos/big.mp4')
    seeded = time.time() - started
    print(f'seeded 1 GiB in {seeded:.1f}s ({GIB / MiB / seeded:.0f} MiB/s); PFS server peak RSS so far '
          f'{_mib(_vm_hwm(pfs_proc.pid))}')

    s, url = ls_server.session, ls_server.url
    r = s.post(f'{url}/api/projects', json={'title': 'big media',
                                             'label_config': '<View><Video name="v" value="$video"/></View>'})
    assert r.status_code == 201, r.text
    project_id = r.json()['id']
    r = s.post(f'{url}/api/storages/pachyderm', json={
        'project': project_id, 'title': 'media', 'pachd_address': pfs_proc.address, 'repo': 'media',
        'use_blob_urls': True})
    assert r.status_code == 201, r.text
    r = s.post(f"{url}/api/storages/pachyderm/{r.json()['id']}/sync")
    assert r.status_code == 200 and r.json()['status'] == 'completed' and r.json()['last_sync_count'] == 1, r.text
    tasks = s.get(f'{url}/api/tasks', params={'project': project_id}).json()['tasks']
    assert len(tasks) == 1
    task = s.get(f"{url}/api/tasks/{tasks[0]['id']}").json()
    resolve = task['data']['video']  # Label Studio already points the task at its proxy
    assert resolve.startswith(f"/tasks/{task['id']}/resolve/?fileuri="), resolve
    proxy = url + resolve

    # --- consecutive Range requests over the whole file
    step = 8 * MiB  # Label Studio's RESOLVER_PROXY_MAX_RANGE_SIZE: it never serves more per request
    digest, position, requests_made = hashlib.sha256(), 0, 0
    with RssPeak(ls_server.pid, pfs_proc.pid) as mem:
        started = time.time()
        while position < GIB:
            last = min(position + step, GIB) - 1
            r = s.get(proxy, headers={'Range': f'bytes={position}-{last}'}, stream=True)
            assert r.status_code == 206, (r.status_code, r.text[:300])
            assert r.headers['Content-Range'] == f'bytes {position}-{last}/{GIB}'
            assert int(r.headers['Content-Length']) == last - position + 1
            received = 0
            for chunk in r.iter_content(MiB):
                digest.update(chunk)
                received += len(chunk)
            assert received == last - position + 1, (position, received)
            position += received
            requests_made += 1
        ranged_seconds = time.time() - started
    assert digest.hexdigest() == source_sha
    assert requests_made == GIB // step
    range_rate = GIB / MiB / ranged_seconds
    print(f'Range reads: {requests_made} requests, {ranged_seconds:.1f}s, {range_rate:.0f} MiB/s; '
          f'LS RSS {_mib(mem.start[ls_server.pid])} -> peak {_mib(mem.peak[ls_server.pid])} '
          f'(+{_mib(mem.growth(ls_server.pid))}); PFS server peak {_mib(mem.peak[pfs_proc.pid])}')
    assert mem.growth(ls_server.pid) < 200 * MiB

    # --- one request without Range: the whole body streamed
    with RssPeak(ls_server.pid, pfs_proc.pid) as full_mem:
        started = time.time()
        r = s.get(proxy, stream=True)
        assert r.status_code == 200, r.text[:300]
        assert int(r.headers['Content-Length']) == GIB and r.headers['Accept-Ranges'] == 'bytes'
        digest, received = hashlib.sha256(), 0
        for chunk in r.iter_content(MiB):
            digest.update(chunk)
            received += len(chunk)
        full_seconds = time.time() - started
    assert received == GIB and digest.hexdigest() == source_sha
    print(f'Full read: {full_seconds:.1f}s, {GIB / MiB / full_seconds:.0f} MiB/s; '
          f'LS RSS {_mib(full_mem.start[ls_server.pid])} -> peak {_mib(full_mem.peak[ls_server.pid])} '
          f'(+{_mib(full_mem.growth(ls_server.pid))}); PFS server peak {_mib(full_mem.peak[pfs_proc.pid])}')
    print(f'Lifetime peak RSS (VmHWM): LS {_mib(_vm_hwm(ls_server.pid))}, PFS server {_mib(_vm_hwm(pfs_proc.pid))}')
    assert full_mem.growth(ls_server.pid) < 200 * MiB
    # Neither side ever held the file: both stay far below 1 GiB.
    assert _vm_hwm(ls_server.pid) < 1024 * MiB and _vm_hwm(pfs_proc.pid) < 512 * MiB


# ----------------------------------------------------------------------------- 3b. 100,000-row JSONL
@pytest.mark.django_db(transaction=True)
def _create_and_sync(api, project, pfs_proc, repo, use_blob_urls):
    """A source storage on ``repo`` and its first sync over the API, with the memory it took:
    (storage id, the sync's answer, seconds, RssPeak of this process and the PFS server)."""
    r = api.post('/api/storages/pachyderm', {'project': project.id, 'title': repo, 'repo': repo,
                                             'pachd_address': pfs_proc.address, 'use_blob_urls': use_blob_urls},
                 format='json')
    assert r.status_code == 201, r.content
    sid = r.json()['id']
    with RssPeak(os.getpid(), pfs_proc.pid) as mem:
        started = time.time()
        r = api.post(f'/api/storages/pachyderm/{sid}/sync')
        seconds = time.time() - started
    assert r.status_code == 200, r.content
    return sid, r.json(), seconds, mem


@pytest.mark.slow
def test_jsonl_with_100k_rows_imports_each_row_once(api, text_project, pfs_proc):
    from label_studio_pachyderm.models import PachydermImportStorageLink
    from tasks.models import Task

    rows = 100_000
    client = pfs_proc.client
    client.create_repo('default', 'tasks')
    body = b''.join(b'{"text": "row %d"}\n' % i for i in range(rows))
    client.write_commit('default', 'tasks', 'master', [pachd.FileOp.put('big.jsonl', body)])
    del body
    assert text_project.label_config == TEXT_CONFIG

    sid, storage, seconds, mem = _create_and_sync(api, text_project, pfs_proc, 'tasks', use_blob_urls=False)
    print(f'\nJSONL {rows} rows: first sync {seconds:.1f}s ({rows / seconds:.0f} tasks/s); test process RSS '
          f'{_mib(mem.start[os.getpid()])} -> peak {_mib(mem.peak[os.getpid()])} (+{_mib(mem.growth(os.getpid()))}); '
          f'PFS server peak {_mib(mem.peak[pfs_proc.pid])}')
    assert storage['status'] == 'completed', storage
    assert storage['last_sync_count'] == rows
    assert Task.objects.filter(project=text_project).count() == rows
    links = PachydermImportStorageLink.objects.filter(storage_id=sid)
    assert links.count() == rows
    assert sorted(links.values_list('row_index', flat=True)) == list(range(rows))
    texts = set(Task.objects.filter(project=text_project).values_list('data__text', flat=True))
    assert texts == {f'row {i}' for i in range(rows)}
    # Memory stays bounded: the import never holds all rows as pending tasks at once.
    assert mem.growth(os.getpid()) < 150 * MiB  # one 100,000-task batch took +220 MiB

    started = time.time()
    again = api.post(f'/api/storages/pachyderm/{sid}/sync').json()
    resync = time.time() - started
    assert again['status'] == 'completed' and again['last_sync_count'] == 0, again
    started = time.time()
    rescan = api.post(f'/api/storages/pachyderm/{sid}/sync', {'full_rescan': True}, format='json').json()
    full = time.time() - started
    assert rescan['status'] == 'completed' and rescan['last_sync_count'] == 0, rescan
    assert rescan['meta']['tasks_existed'] == rows
    assert Task.objects.filter(project=text_project).count() == rows
    print(f'JSONL re-sync {resync:.1f}s, full rescan {full:.1f}s: 0 new tasks')


# ----------------------------------------------------------------------------- 3c. 100,000 files
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_100k_files_first_sync_then_exactly_the_new_ones(api, project, pfs_proc):
    from label_studio_pachyderm.models import PachydermImportStorageLink
    from tasks.models import Task

    client = pfs_proc.client
    client.create_repo('default', 'images')
    started = time.time()
    for c in range(10):  # 10 commits of 10,000 files
        client.write_commit('default', 'images', 'master',
                            (pachd.FileOp.put(f'{c:02d}/{i:05d}.png', b'png %d %d' % (c, i)) for i in range(10_000)))
    print(f'\nseeded 100,000 files in 10 commits: {time.time() - started:.1f}s')

    sid, storage, seconds, mem = _create_and_sync(api, project, pfs_proc, 'images', use_blob_urls=True)
    print(f'100,000 files: first sync {seconds:.1f}s ({100_000 / seconds:.0f} tasks/s); test process RSS +'
          f'{_mib(mem.growth(os.getpid()))} (peak {_mib(mem.peak[os.getpid()])}); '
          f'PFS server peak {_mib(mem.peak[pfs_proc.pid])}')
    assert storage['status'] == 'completed', storage
    assert storage['last_sync_count'] == 100_000 and storage['meta']['sync_mode'] == 'full'
    assert Task.objects.filter(project=project).count() == 100_000
    assert PachydermImportStorageLink.objects.filter(storage_id=sid).values('key').distinct().count() == 100_000

    head = client.write_commit('default', 'images', 'master',
                               [pachd.FileOp.put(f'new/{i}.png', b'new %d' % i) for i in range(10)])
    started = time.time()
    storage = api.post(f'/api/storages/pachyderm/{sid}/sync').json()
    resync = time.time() - started
    print(f're-sync after adding 10 files: {resync:.1f}s')
    assert storage['status'] == 'completed', storage
    assert storage['meta']['sync_mode'] == 'incremental' and storage['meta']['commit'] == head
    assert storage['last_sync_count'] == 10
    assert Task.objects.filter(project=project).count() == 100_010
    new_keys = set(PachydermImportStorageLink.objects.filter(storage_id=sid, key__startswith='new/')
                   .values_list('key', flat=True))
    assert new_keys == {f'new/{i}.png' for i in range(10)}
    inner = Task.objects.filter(project=project).order_by('-inner_id').values_list('inner_id', flat=True)[:1]
    assert list(inner) == [100_010]
