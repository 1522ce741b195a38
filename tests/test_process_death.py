"""Writers killed with SIGKILL mid-flush: their annotation changes are written anyway, with nothing new submitted.

Real processes, as in life: Label Studio started with ``label-studio-pachyderm start``, the local
PFS server as its own process reached through a TCP proxy that freezes like a hung pachd, and (in
background mode) ``label-studio-pachyderm worker`` processes with their RQ work-horses. A writer is
killed with SIGKILL while it holds the branch's lease and waits on the frozen pachd; its in-memory
retry dies with it. The outbox sweep (``sweeper``) of a process that is alive finds the rows once
they are older than a retry and the dead writer's lease has run out, says so on the storage
(``pending_exports``, ``last_export_error``) and hands the storage to a writer.

1. Inline mode: Label Studio itself is killed (its writer thread held the lease) and started again on
   the same data directory with pachd still frozen; the storage shows the waiting rows and why;
   once pachd thaws every file lands.
2. Background mode: both workers and their work-horses are killed; Label Studio stays up, its sweep
   schedules a new flush job that two fresh workers run.

Both run on SQLite and, in the PostgreSQL lane, on a PostgreSQL database of their own shared by
every process, as production runs it (``label_studio_db``).

Figures (startup, seconds from kill / thaw to the files) are printed: ``pytest -s``.
"""
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest
import requests
from label_studio_pachyderm import pachd

from conftest import IMAGE_CONFIG, require_service
import waiting
from tcp_proxy import FreezingProxy
from test_export import RESULT
from test_rq import redis_or_none

CLI = os.path.join(os.path.dirname(sys.executable), 'label-studio-pachyderm')
TOKEN = 'death0test0token0abcdef0123456789'
RETRY, LEASE, GRPC_TIMEOUT = 2.0, 4.0, 60.0
PERIOD = min(5.0, max(0.5, RETRY / 4))  # sweeper.period() for RETRY
MARGIN = 30.0  # a loaded 2-CPU machine: process scheduling, SQLite waits, gRPC reconnects
PREFIX = 'ls'
REDIS_DB = 7


# ----------------------------------------------------------------------------- helpers
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout, what, interval=0.2, log=None):
    """``waiting.wait_for`` that takes any error as "not yet" (a server restarting, a pachd frozen)."""
    return waiting.wait_for(predicate, timeout, what, interval=interval, ignore=(Exception,), log=log)


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process and everything in its process group (started with start_new_session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def _stop(proc: subprocess.Popen) -> None:
    """End a process we started (and its group): SIGTERM, then SIGKILL."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of its group
    except (ProcessLookupError, PermissionError):
        pass
    if proc.poll() is None:
        proc.wait(timeout=10)


def _tail(path, n=4000) -> str:
    try:
        return path.read_text(errors='replace')[-n:]
    except OSError:
        return ''


def _utc(text):
    moment = datetime.fromisoformat(str(text))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class Database:
    """Read-only looks into Label Studio's database, as an operator would with sqlite3 or psql:
    the SQLite file at ``path``, or the PostgreSQL database ``postgres`` (psycopg's connect keywords)."""

    def __init__(self, path=None, postgres=None):
        self.path, self.postgres = path, postgres

    def _rows(self, sql, args=()):
        if self.postgres is not None:
            import psycopg

            with psycopg.connect(**self.postgres, connect_timeout=10) as conn:
                return conn.execute(sql.replace('?', '%s'), args).fetchall()
        conn = sqlite3.connect(f'file:{self.path}?mode=ro', uri=True, timeout=30)
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()

    def export_lease(self):
        """(holder, expires_at) of the export lease of the one target branch, or None."""
        rows = self._rows('SELECT holder, expires_at FROM io_storages_pachyderm_pachydermlease WHERE key LIKE ?',
                          ('export:%',))
        return rows[0] if rows else None

    def lease_held(self) -> bool:
        lease = self.export_lease()
        return bool(lease and lease[0] and lease[1] and _utc(lease[1]) > datetime.now(timezone.utc))

    def pending(self, storage_id) -> int:
        return self._rows('SELECT count(*) FROM io_storages_pachyderm_pachydermexportoutboxentry '
                          'WHERE storage_id = ?', (storage_id,))[0][0]


def _ls_env(base, proxy, **extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(('POSTGRE_', 'DJANGO_', 'DATABASE_', 'PYTEST_', 'PACHYDERM_'))}
    env.update(
        LABEL_STUDIO_BASE_DATA_DIR=base, PACHYDERM_ALLOWED_HOSTS=f'127.0.0.1:{proxy.port}',
        SENTRY_DSN='', FRONTEND_SENTRY_DSN='', COLLECT_ANALYTICS='false', LATEST_VERSION_CHECK='false',
        SYNC_ON_TARGET_STORAGE_CREATION='false',
        PACHYDERM_EXPORT_RETRY_SECONDS=str(RETRY), PACHYDERM_LEASE_SECONDS=str(LEASE),
        # Long enough that a flush against the frozen pachd still hangs when it is killed.
        PACHYDERM_GRPC_TIMEOUT=str(GRPC_TIMEOUT),
        **extra,
    )
    return env


class LabelStudio:
    """``label-studio-pachyderm start`` as a user runs it, in its own process group."""

    def __init__(self, base, env, logs):
        self.base, self.env, self.logs = base, env, logs
        self.proc = None
        self.runs = 0
        self.url = None

    def start(self) -> float:
        """Start and wait until /health answers; returns the seconds it took."""
        self.runs += 1
        port = _free_port()
        self.url = f'http://127.0.0.1:{port}'
        self.log_path = self.logs / f'label-studio-{self.runs}.log'
        self._log = open(self.log_path, 'wb')
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [CLI, 'start', '--no-browser', '--port', str(port), '--username', 'death@example.com',
             '--password', 'death-pass-123', '--user-token', TOKEN, '--enable-legacy-api-token'],
            cwd=self.base, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

        def healthy():
            assert self.proc.poll() is None, 'Label Studio exited:\n' + _tail(self.log_path)
            try:
                return requests.get(f'{self.url}/health', timeout=3).status_code == 200
            except requests.RequestException:
                return False

        deadline = time.monotonic() + 300
        while not healthy():
            assert time.monotonic() < deadline, 'Label Studio did not start:\n' + _tail(self.log_path)
            time.sleep(0.5)
        took = time.monotonic() - started
        print(f'\nLabel Studio (run {self.runs}) ready in {took:.1f} s')
        return took

    def kill(self) -> None:
        _kill_group(self.proc)
        self._log.close()

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self._log.close()

    # --- the HTTP API, token auth
    def api(self, method, path, timeout=60, **kwargs):
        return requests.request(method, self.url + path, headers={'Authorization': f'Token {TOKEN}'},
                                timeout=timeout, **kwargs)

    def storage(self, sid) -> dict:
        r = self.api('GET', f'/api/storages/export/pachyderm/{sid}', timeout=30)
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture
def pfs(tmp_path):
    """The local PFS server as its own process, and a freezing TCP proxy in front of it."""
    port = _free_port()
    log_path = tmp_path / 'pfs-server.log'
    log = open(log_path, 'wb')
    proc = subprocess.Popen(
        [CLI, 'pfs-server', '--host', '127.0.0.1', '--port', str(port), '--data-dir', str(tmp_path / 'pfs-data')],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    proxy = None
    client = pachd.PachdClient(f'grpc://127.0.0.1:{port}', timeout=60)
    try:
        def up():
            assert proc.poll() is None, _tail(log_path)
            list(client.list_repos())
            return True

        wait_for(up, 60, 'the PFS server to start')
        proxy = FreezingProxy(f'127.0.0.1:{port}')
        client.create_repo('default', 'labels')
        yield SimpleNamespace(client=client, proxy=proxy, address=f'grpc://{proxy.address}')
    finally:
        if proxy is not None:
            proxy.thaw()
            proxy.close()
        client.close()
        _stop(proc)
        log.close()


@pytest.fixture
def base_dir():
    base = tempfile.mkdtemp(prefix='lsp-death-', dir='/dev/shm' if os.path.isdir('/dev/shm') else None)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def label_studio_db(base_dir):
    """The database the Label Studio processes share: ({env of the processes}, Database). On the
    PostgreSQL lane (DJANGO_DB=default) a fresh PostgreSQL database of its own, dropped after, as
    production runs it; else the SQLite file in ``base_dir``."""
    if os.environ.get('DJANGO_DB') != 'default' or not os.environ.get('POSTGRE_HOST'):
        yield {}, Database(path=os.path.join(base_dir, 'label_studio.sqlite3'))
        return
    import psycopg

    server = dict(host=os.environ['POSTGRE_HOST'], port=int(os.environ.get('POSTGRE_PORT', 5432)),
                  user=os.environ['POSTGRE_USER'], password=os.environ['POSTGRE_PASSWORD'])
    name = f'lsp_death_{uuid.uuid4().hex[:12]}'
    with psycopg.connect(**server, dbname='postgres', autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE {name}')
    env = {'DJANGO_DB': 'default', 'POSTGRE_NAME': name, 'POSTGRE_HOST': server['host'],
           'POSTGRE_PORT': str(server['port']), 'POSTGRE_USER': server['user'], 'POSTGRE_PASSWORD': server['password']}
    try:
        yield env, Database(postgres=dict(server, dbname=name))
    finally:
        with psycopg.connect(**server, dbname='postgres', autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS {name} WITH (FORCE)')


def _project_with_target(ls, pfs, n_tasks):
    """A project with an image labeling config, a Pachyderm target and ``n_tasks`` tasks: (storage id, task ids)."""
    r = ls.api('POST', '/api/projects', json={'title': 'process death', 'label_config': IMAGE_CONFIG})
    assert r.status_code == 201, r.text
    project_id = r.json()['id']
    r = ls.api('POST', '/api/storages/export/pachyderm', json={
        'project': project_id, 'title': 'labels', 'pachd_address': pfs.address, 'repo': 'labels',
        'branch': 'master', 'prefix': PREFIX})
    assert r.status_code == 201, r.text
    sid = r.json()['id']
    r = ls.api('POST', f'/api/projects/{project_id}/import',
               json=[{'image': f'/img/{i}.png'} for i in range(n_tasks)])
    assert r.status_code == 201, r.text
    r = ls.api('GET', '/api/tasks', params={'project': project_id, 'page_size': 100})
    assert r.status_code == 200, r.text
    task_ids = sorted(t['id'] for t in r.json()['tasks'])
    assert len(task_ids) == n_tasks
    return sid, task_ids


def _submit_together(ls, task_ids, client_timeout):
    """One annotation per task, all at once from threads. Returns (threads, outcomes {task id: code or error})."""
    outcomes = {}
    barrier = threading.Barrier(len(task_ids))

    def submit(task_id):
        barrier.wait(30)
        try:
            r = ls.api('POST', f'/api/tasks/{task_id}/annotations/', json={'result': RESULT}, timeout=client_timeout)
            outcomes[task_id] = r.status_code
        except requests.RequestException as exc:
            outcomes[task_id] = exc.__class__.__name__

    threads = [threading.Thread(target=submit, args=(t,), daemon=True) for t in task_ids]
    for thread in threads:
        thread.start()
    return threads, outcomes


def _files(client):
    """{path: parsed JSON} of every exported file under the prefix (empty before the branch exists)."""
    try:
        entries = list(client.list_files('default', 'labels', 'master', PREFIX))
    except pachd.PachdNotFound:
        return {}
    found = {}
    for entry in entries:
        with client.read_file('default', 'labels', 'master', entry.path) as stream:
            found[entry.path.strip('/')] = json.loads(stream.read())
    return found


def _annotation_ids(ls, task_ids):
    ids = {}
    for task_id in task_ids:
        r = ls.api('GET', f'/api/tasks/{task_id}/annotations/')
        assert r.status_code == 200, r.text
        ids[task_id] = [a['id'] for a in r.json()]
        assert len(ids[task_id]) == 1, (task_id, r.json())
    return ids


def _all_landed(client, annotations):
    """True when every task's file is on the branch with its annotation in it."""
    files = _files(client)
    for task_id, ids in annotations.items():
        data = files.get(f'{PREFIX}/{task_id}.json')
        if data is None:
            return False
        written = {a.get('id') for a in data.get('annotations', [])} if isinstance(data, dict) else set()
        if not set(ids) <= written:
            return False
    return True


def _check_clean_branch(client):
    commits = list(client.list_commits('default', 'labels', 'master'))
    assert commits and all(c.finished for c in commits), [(c.id, c.finished) for c in commits]
    assert client.unfinished_head('default', 'labels', 'master') is None
    return commits


def _settled(ls, sid):
    meta = ls.storage(sid)['meta']
    return meta.get('pending_exports') == 0 and not meta.get('last_export_error') and meta


# ----------------------------------------------------------------------------- 1. inline mode
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_inline_writer_killed_mid_flush_is_taken_over_by_the_restarted_server(pfs, base_dir, label_studio_db,
                                                                             tmp_path):
    submits = 4
    database_env, db = label_studio_db
    ls = LabelStudio(base_dir, _ls_env(base_dir, pfs.proxy, **database_env), tmp_path)
    try:
        first_start = ls.start()
        sid, task_ids = _project_with_target(ls, pfs, submits)

        pfs.proxy.freeze()
        threads, outcomes = _submit_together(ls, task_ids, client_timeout=GRPC_TIMEOUT - 10)
        # Mid-flush, provably: every row recorded, every submit answered (a submit never waits for
        # pachd), and the lease held by the process's writer thread, which hangs on the frozen pachd
        # (its heartbeat renews the lease).
        wait_for(lambda: db.pending(sid) == submits, 60, f'{submits} outbox rows')
        wait_for(lambda: sum(code == 201 for code in outcomes.values()) == submits, 60, 'every submit to return')
        wait_for(db.lease_held, 30, 'the writer to hold the branch lease')
        assert not any(t.is_alive() for t in threads)
        assert db.lease_held() and db.pending(sid) == submits, (outcomes, db.export_lease())
        ls.kill()
        killed = time.monotonic()
        print(f'SIGKILL of Label Studio mid-flush: {submits} rows pending, lease {db.export_lease()}')
        assert db.pending(sid) == submits
        for thread in threads:
            thread.join(30)

        # Started again on the same data dir, pachd still frozen: the sweep takes the rows over
        # once they are older than a retry and the dead writer's lease has run out.
        second_start = ls.start()
        bound = RETRY + LEASE + 3 * PERIOD + MARGIN

        def waiting_shown():
            meta = ls.storage(sid)['meta']
            return meta.get('pending_exports') == submits and meta.get('last_export_error') and meta

        meta = wait_for(waiting_shown, bound, 'the storage to show the waiting rows and why')
        shown = time.monotonic()
        print(f'storage shows pending_exports={meta["pending_exports"]} {shown - killed:.1f} s after the kill '
              f'({shown - killed - second_start:.1f} s after the restart answered; bound {bound:.1f} s): '
              f'{meta["last_export_error"]!r}')
        assert f'{submits} annotation changes not exported yet' in meta['last_export_error']
        annotations = _annotation_ids(ls, task_ids)
        assert not _all_landed(pfs.client, annotations)  # nothing could have reached the frozen pachd

        thawed, landed, bound, meta, commits = _thaw_and_land(pfs, ls, db, sid, annotations)
        print(f'inline: startup {first_start:.1f} s / restart {second_start:.1f} s; all {submits} files '
              f'{landed - thawed:.1f} s after the thaw (bound {bound:.1f} s), {landed - killed:.1f} s after '
              f'the kill; {len(commits)} commit(s), all finished; meta {meta}')
    finally:
        pfs.proxy.thaw()
        ls.stop()


def _thaw_and_land(pfs, ls, db, sid, annotations):
    """Thaw pachd, submit nothing: every file lands within the bound, the outbox drains, the card clears.
    Returns (thawed, landed, bound, meta, commits)."""
    pfs.proxy.thaw()
    thawed = time.monotonic()
    bound = RETRY + LEASE + PERIOD + MARGIN
    wait_for(lambda: _all_landed(pfs.client, annotations), bound, 'every annotation file after the thaw',
             interval=0.3)
    landed = time.monotonic()
    meta = wait_for(lambda: _settled(ls, sid), 30, 'pending_exports 0 and the error cleared')
    commits = _check_clean_branch(pfs.client)
    assert db.pending(sid) == 0
    return thawed, landed, bound, meta, commits


# ----------------------------------------------------------------------------- 2. background mode (RQ)
class Workers:
    """``label-studio-pachyderm worker`` processes; each forks a work-horse per job."""

    def __init__(self, env, logs, conn, queue):
        self.env, self.logs, self.conn, self.queue = env, logs, conn, queue
        self.procs = []
        self._logs = []

    def start(self, count) -> float:
        from rq import Worker

        started = time.monotonic()
        new = []
        for _ in range(count):
            log = open(self.logs / f'worker-{len(self.procs) + 1}.log', 'wb')
            self._logs.append(log)
            proc = subprocess.Popen([CLI, 'worker'], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            self.procs.append(proc)
            new.append(proc)

        def registered():
            for proc in new:
                assert proc.poll() is None, 'a worker exited:\n' + ''.join(
                    _tail(self.logs / f'worker-{i + 1}.log') for i in range(len(self.procs)))
            pids = {w.pid for w in Worker.all(connection=self.conn) if self.queue in w.queue_names()}
            return all(proc.pid in pids for proc in new)

        wait_for(registered, 180, f'{count} worker(s) to register', interval=0.5)
        took = time.monotonic() - started
        print(f'{count} worker(s) ready in {took:.1f} s')
        return took

    def horses(self):
        import psutil

        found = []
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    found += psutil.Process(proc.pid).children(recursive=True)
                except psutil.NoSuchProcess:
                    pass
        return found

    def kill_all(self):
        """SIGKILL every worker and every work-horse (a horse is in its own process group)."""
        import psutil

        victims = []
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    victims.append(psutil.Process(proc.pid))
                except psutil.NoSuchProcess:
                    pass
        victims += self.horses()
        for victim in victims:
            try:
                victim.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        for proc in self.procs:
            _kill_group(proc)
        gone, alive = psutil.wait_procs(victims, timeout=30)
        assert not alive, alive
        self.procs = []
        return victims

    def stop(self):
        import psutil

        horses = self.horses()
        for proc in self.procs:
            _stop(proc)
        for horse in horses:
            try:
                horse.kill()
            except psutil.NoSuchProcess:
                pass
        for log in self._logs:
            log.close()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_rq_workers_and_horses_killed_mid_flush_rows_are_written_by_fresh_workers(pfs, base_dir, label_studio_db,
                                                                                 tmp_path):
    url = f'redis://localhost:6379/{REDIS_DB}'
    conn = redis_or_none(url)
    require_service('Redis', conn is not None, f'start one on {url}')
    from rq import Queue
    from rq.registry import ScheduledJobRegistry, StartedJobRegistry

    queue_name = f'lsp-death-{uuid.uuid4().hex[:8]}'
    database_env, db = label_studio_db
    env = _ls_env(base_dir, pfs.proxy, PACHYDERM_REDIS_URL=url, PACHYDERM_RQ_QUEUE=queue_name,
                  PACHYDERM_EXPORT_COALESCE_SECONDS='0.5', **database_env)
    submits = 3
    ls = LabelStudio(base_dir, env, tmp_path)
    workers = Workers(env, tmp_path, conn, queue_name)
    sid = None
    try:
        ls_start = ls.start()
        first_workers = workers.start(2)
        sid, task_ids = _project_with_target(ls, pfs, submits)

        pfs.proxy.freeze()
        threads, outcomes = _submit_together(ls, task_ids, client_timeout=30)
        for thread in threads:
            thread.join(60)
        assert all(code == 201 for code in outcomes.values()), outcomes  # saves never wait on pachd here
        annotations = _annotation_ids(ls, task_ids)
        wait_for(lambda: db.pending(sid) == submits, 30, f'{submits} outbox rows')
        # Submit, flush job scheduled, RQ's scheduler enqueues it, a worker forks a work-horse, the
        # horse takes the lease: each step waits on a loaded machine (one run took over 60 s).
        wait_for(lambda: db.lease_held() and workers.horses(), 60 + 2 * MARGIN, 'a work-horse to hold the branch lease',
                 log=lambda: '\n'.join(f'--- {name}\n' + _tail(tmp_path / name, 1900) for name in
                                       ('worker-1.log', 'worker-2.log', f'label-studio-{ls.runs}.log')))
        queue = Queue(queue_name, connection=conn)
        left_in_redis = {'queued': queue.count, 'scheduled': ScheduledJobRegistry(queue=queue).count,
                         'started': StartedJobRegistry(queue=queue).count,
                         'flush marker': bool(conn.exists(f'pachyderm:export:scheduled:{queue_name}:{sid}'))}
        victims = workers.kill_all()
        killed = time.monotonic()
        print(f'SIGKILL of {len(victims)} processes (2 workers and their work-horses) mid-flush; '
              f'{db.pending(sid)} rows pending; Redis then held {left_in_redis}')
        assert db.pending(sid) == submits

        fresh_workers = workers.start(2)
        lock = f'rq:scheduler-lock:{queue_name}'
        print(f'the dead scheduler\'s lock {lock}: ttl {conn.ttl(lock)} s; fresh workers\' logs say '
              f'{[line for i in (3, 4) for line in _tail(tmp_path / f"worker-{i}.log").splitlines() if "cheduler" in line]}')
        # pachd still frozen: a live writer takes the branch over (the sweep's flush job on a fresh
        # work-horse, after the dead one's lease ran out) and the storage says why rows wait.
        # + SCHEDULER_SLACK: the sweep's flush job is scheduled (enqueue_in), and the dead worker's
        # RQ scheduler lock keeps the fresh workers from running a scheduler; the sweep enqueues a
        # job left that late itself (sweeper.SCHEDULER_SLACK, 5 s).
        bound = RETRY + LEASE + 3 * PERIOD + 5.0 + MARGIN

        def taken_over():
            meta = ls.storage(sid)['meta']
            return meta.get('pending_exports') == submits and db.lease_held() and workers.horses() and meta

        meta = wait_for(taken_over, bound + fresh_workers, 'a fresh work-horse to take the branch over')
        print(f'taken over {time.monotonic() - killed:.1f} s after the kill; storage says '
              f'{meta.get("last_export_error")!r}')
        if not (left_in_redis['queued'] or left_in_redis['scheduled']):
            # No job survived in Redis: only the sweep can have handed the rows over, and it says so.
            assert f'{submits} annotation changes not exported yet' in (meta.get('last_export_error') or ''), meta
            assert 'stopped' in meta['last_export_error'], meta
        assert not _all_landed(pfs.client, annotations)
        print('Label Studio\'s sweep: ' + (' | '.join(
            line.strip() for line in _tail(ls.log_path, 200000).splitlines() if 'enqueued it directly' in line)
            or 'no late flush job enqueued directly (a scheduler was running)'))

        thawed, landed, bound, meta, commits = _thaw_and_land(pfs, ls, db, sid, annotations)
        print(f'rq: Label Studio startup {ls_start:.1f} s, workers {first_workers:.1f} s / fresh {fresh_workers:.1f} s; '
              f'all {submits} files {landed - thawed:.1f} s after the thaw (bound {bound:.1f} s), '
              f'{landed - killed:.1f} s after the kill; {len(commits)} commit(s), all finished; meta {meta}')
    finally:
        pfs.proxy.thaw()
        workers.stop()
        ls.stop()
        _forget_queue(conn, queue_name, sid)


def _forget_queue(conn, queue_name, sid):
    """Remove what this test left in Redis: its queue, jobs, executions, workers and flush markers."""
    if conn is None:
        return
    keys = list(conn.scan_iter(f'*{queue_name}*'))
    for key in conn.scan_iter('rq:job:*'):
        if conn.type(key) == b'hash' and conn.hget(key, 'origin') == queue_name.encode():
            job_id = key.decode().split(':', 2)[2]
            keys += [key, f'rq:executions:{job_id}', f'rq:results:{job_id}',
                     *conn.scan_iter(f'rq:execution:*{job_id}*')]
    for key in conn.scan_iter('rq:worker:*'):
        if conn.type(key) == b'hash' and queue_name.encode() in (conn.hget(key, 'queues') or b'').split(b','):
            keys.append(key)
            conn.srem('rq:workers', key)
    conn.srem('rq:queues', f'rq:queue:{queue_name}')
    if sid is not None:
        keys += [f'pachyderm:export:{kind}:{queue_name}:{sid}' for kind in ('scheduled', 'failures')]
    if keys:
        conn.delete(*keys)
