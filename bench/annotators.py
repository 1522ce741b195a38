"""Scenario 6: concurrent annotators submitting through real Label Studio servers (the export outbox).

Three configurations, measured in the same run:

* ``baseline``: the project has no export storage;
* ``inline``: a Pachyderm target storage, the default mode (the submitting request may be the writer);
* ``rq``: the same with ``PACHYDERM_REDIS_URL`` set (Redis db 13, a queue of this run's own) and two
  ``label-studio-pachyderm worker`` processes.

Each configuration has its own Label Studio server (``label-studio-pachyderm start``, Label
Studio's own server, SQLite, on a fresh copy of the migrated template database), a user made by
``start --username --password --user-token``, a project and tasks imported through the API.
``annotators`` threads, each with its own ``requests`` session and the user's token, POST
annotations to ``/api/tasks/<id>/annotations/``: back to back, then paced. The three servers
stay up side by side and take turns in slices (see ``measure_all``), so drifting load on a
shared machine hits all three alike. After every slice of an exported configuration the target
repo is polled through the plugin's pachd client until every annotation submitted so far is in
its task file with the submitted result; at the end: no unfinished commit on the branch, the
outbox empty (``meta.pending_exports`` of the storage GET).

Only traffic to 127.0.0.1; every process started here is stopped in ``finally``.
"""
from __future__ import annotations

import json
import os
import secrets
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from .services import REPO_DIR, _stop, free_port, wait_for_port
from .work.common import TEXT_CONFIG

COALESCE_SECONDS = 5.0  # PACHYDERM_EXPORT_COALESCE_SECONDS: the plugin's default, set explicitly on the servers
DRAIN_LIMIT = 120.0  # seconds to wait for the repo to hold everything before counting what is missing
PREFIX = 'annotations'
USER = 'annotator@example.com'
PASSWORD = 'bench-pass-123'
CONFIG = TEXT_CONFIG  # a text task with one choice: the cheapest annotation to serialise
REDIS_URL = 'redis://127.0.0.1:6379/13'
COMMAND = str(Path(sys.executable).parent / 'label-studio-pachyderm')


def percentile(values: list, q: float) -> float:
    if not values:
        return float('nan')
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(q / 100 * (len(ordered) - 1)))))
    return ordered[index]


def loadavg() -> str:
    try:
        return ' '.join(Path('/proc/loadavg').read_text().split()[:3])
    except OSError:
        return '?'


class PostgresDatabases:
    """Label Studio on PostgreSQL: one database migrated once, then a copy of it per server.

    Connection from POSTGRE_HOST/PORT/USER/PASSWORD (default 127.0.0.1:5432, postgres/postgres);
    the databases are named after this process and dropped at the end.
    """

    def __init__(self, run):
        self.run = run
        self.where = dict(host=os.environ.get('POSTGRE_HOST', '127.0.0.1'),
                          port=int(os.environ.get('POSTGRE_PORT', '5432')),
                          user=os.environ.get('POSTGRE_USER', 'postgres'),
                          password=os.environ.get('POSTGRE_PASSWORD', 'postgres'))
        self.template = f'bench_annotators_{os.getpid()}_template'
        self.made: list = []

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(dbname='postgres', autocommit=True, connect_timeout=10, **self.where) as conn:
            conn.execute(sql)

    def env(self, name: str) -> dict:
        return dict(DJANGO_DB='default', POSTGRE_NAME=name, POSTGRE_HOST=self.where['host'],
                    POSTGRE_PORT=str(self.where['port']), POSTGRE_USER=self.where['user'],
                    POSTGRE_PASSWORD=self.where['password'])

    def migrate_template(self) -> None:
        self._admin(f'CREATE DATABASE {self.template}')
        self.made.append(self.template)
        data_dir = self.run.root / 'ls' / 'annotators_pg_template'
        data_dir.mkdir(parents=True, exist_ok=True)
        log = self.run.logs / 'annotators_pg_template.log'
        with open(log, 'w') as out:
            subprocess.run([sys.executable, '-m', 'bench.work', 'migrate', '{}'], cwd=REPO_DIR, check=True,
                           env=self.run.env(data_dir, self.env(self.template)), stdout=out, stderr=subprocess.STDOUT,
                           timeout=900)

    def copy(self, name: str) -> dict:
        database = f'bench_annotators_{os.getpid()}_{name}'
        self._admin(f'CREATE DATABASE {database} TEMPLATE {self.template}')
        self.made.append(database)
        return self.env(database)

    def drop_all(self) -> None:
        for database in reversed(self.made):
            try:
                self._admin(f'DROP DATABASE IF EXISTS {database} WITH (FORCE)')
            except Exception:
                pass
        self.made = []


class Server:
    """One Label Studio server (and, in RQ mode, its workers) on one data directory."""

    def __init__(self, run, name: str, env_extra: dict, workers: int = 0):
        self.run = run
        self.name = name
        self.data_dir = run.root / 'ls' / f'annotators_{name}'
        self.env_extra = env_extra
        self.workers_wanted = workers
        self.port = 0
        self.token = secrets.token_hex(20)
        self.process = None
        self.workers: list = []
        self.logs: list = []

    @property
    def base(self) -> str:
        return f'http://127.0.0.1:{self.port}'

    def env(self) -> dict:
        return self.run.env(self.data_dir, self.env_extra)

    def start(self, postgres: 'PostgresDatabases' = None) -> 'Server':
        from .runner import _copy_db

        self.data_dir.mkdir(parents=True, exist_ok=True)
        if postgres is not None:
            self.env_extra = {**self.env_extra, **postgres.copy(self.name)}
        else:
            _copy_db(self.run.template, self.data_dir)
        self.port = free_port()
        log_path = self.run.logs / f'annotators_{self.name}_server.log'
        self.logs.append(log_path)
        self.process = subprocess.Popen(
            [COMMAND, 'start', '--no-browser', '--internal-host', '127.0.0.1', '--port', str(self.port),
             '--username', USER, '--password', PASSWORD, '--user-token', self.token, '--enable-legacy-api-token'],
            cwd=REPO_DIR, env=self.env(), stdout=open(log_path, 'ab'), stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.process, f'Label Studio ({self.name})', timeout=300)
        for n in range(self.workers_wanted):
            log_path = self.run.logs / f'annotators_{self.name}_worker{n + 1}.log'
            self.logs.append(log_path)
            self.workers.append(subprocess.Popen(
                [COMMAND, 'worker', self.env_extra['PACHYDERM_RQ_QUEUE']], cwd=REPO_DIR, env=self.env(),
                stdout=open(log_path, 'ab'), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        return self

    def rss_peak_mb(self):
        try:
            for line in Path(f'/proc/{self.process.pid}/status').read_text().splitlines():
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) / 1024
        except (OSError, ValueError, AttributeError):
            pass
        return None

    def stop(self) -> None:
        for worker in self.workers:
            _stop(worker)
        _stop(self.process)

    def log_problems(self) -> list:
        """Lines of the server and worker logs that report an error (evidence for the report)."""
        lines = []
        for path in self.logs:
            try:
                text = path.read_text(errors='replace')
            except OSError:
                continue
            for line in text.splitlines():
                if any(word in line for word in ('Traceback', 'ERROR', 'Error:', 'database is locked',
                                                 'not exported yet', 'export not started')):
                    lines.append(f'{path.name}: {line.strip()[:300]}')
        return lines


def _session(token: str):
    import requests

    session = requests.Session()
    session.headers['Authorization'] = f'Token {token}'
    session.trust_env = False  # never a proxy: 127.0.0.1 only
    return session


def _ok(response, *codes):
    if response.status_code not in (codes or (200,)):
        raise RuntimeError(f'{response.request.method} {response.url}: HTTP {response.status_code} '
                           f'{response.text[:300]}')
    return response.json() if response.content else {}


def _prepare_project(server: Server, tasks: int) -> tuple:
    """(project id, task ids) made through the API."""
    api = _session(server.token)
    deadline = time.monotonic() + 120
    while True:  # the port opens a moment before Django answers
        try:
            _ok(api.get(f'{server.base}/api/projects/', timeout=30))
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    project = _ok(api.post(f'{server.base}/api/projects/', json=dict(title='annotators', label_config=CONFIG),
                           timeout=60), 201)
    ids = []
    for start in range(0, tasks, 1000):
        body = [{'text': f'task {i}'} for i in range(start, min(tasks, start + 1000))]
        answer = _ok(api.post(f'{server.base}/api/projects/{project["id"]}/import?return_task_ids=true',
                              json=body, timeout=300), 201)
        ids += answer['task_ids']
    if len(ids) != tasks:
        raise AssertionError(f'imported {len(ids)} tasks, expected {tasks}')
    api.close()
    return project['id'], sorted(ids)


class Annotator(threading.Thread):
    def __init__(self, server: Server, number: int, task_ids: list, start_at: threading.Event, stop_at: float,
                 first_at: float = 0.0, pace: float = 0.0):
        super().__init__(name=f'annotator-{number}', daemon=True)
        self.first_at = first_at  # paced: monotonic time of this annotator's first submit
        self.pace = pace  # paced: seconds from one submit's start to the next (0: submit again at once)
        self.server = server
        self.number = number
        self.task_ids = task_ids  # a list, or an iterator shared by the slices of one phase
        self.tag = ''  # makes result ids unique across slices
        self.start_at = start_at
        self.stop_at = stop_at
        self.submits: list = []  # (sent monotonic, latency s, annotation id, task id, result)
        self.failures: list = []  # (status or exception text)
        self.warmup_ids: list = []

    def submit(self, session, task_id: int, n: int):
        result = [{'id': f'a{self.number}{self.tag}n{n}', 'from_name': 'sentiment', 'to_name': 'text', 'type': 'choices',
                   'value': {'choices': ['pos' if (n + self.number) % 2 else 'neg']}}]
        sent = time.monotonic()
        response = session.post(f'{self.server.base}/api/tasks/{task_id}/annotations/',
                                json={'result': result, 'lead_time': 1.5}, timeout=120)
        return sent, time.monotonic() - sent, response, result

    def run(self):
        session = _session(self.server.token)
        try:
            self.start_at.wait(600)
            n = 0
            while time.monotonic() < self.stop_at:
                if self.pace:
                    due = self.first_at + n * self.pace
                    if due >= self.stop_at:
                        break
                    time.sleep(max(0.0, due - time.monotonic()))
                task_id = (self.task_ids[n % len(self.task_ids)] if isinstance(self.task_ids, list)
                           else next(self.task_ids))
                try:
                    sent, latency, response, result = self.submit(session, task_id, n)
                except Exception as exc:  # a timeout or a dropped connection: a failed submit
                    self.failures.append(f'{type(exc).__name__}: {exc}'[:200])
                    n += 1
                    continue
                if response.status_code == 201:
                    self.submits.append((sent, latency, response.json()['id'], task_id, result))
                else:
                    self.failures.append(f'HTTP {response.status_code} {response.text[:200]}')
                n += 1
        finally:
            session.close()


def _warm_up(server: Server, task_ids: list) -> None:
    """One submit per session before anything is measured (Django's first request loads the URLconf)."""
    for number, task_id in enumerate(task_ids):
        annotator = Annotator(server, 100 + number, [task_id], threading.Event(), 0)
        session = _session(server.token)
        _, _, response, _ = annotator.submit(session, task_id, 0)
        session.close()
        _ok(response, 201)


def _create_storage(run, server: Server, project_id: int, repo: str) -> int:
    api = _session(server.token)
    try:
        storage = _ok(api.post(f'{server.base}/api/storages/export/pachyderm', json=dict(
            project=project_id, title=f'annotators {server.name}', pachd_address=run.pfs.address, repo=repo,
            branch='master', prefix=PREFIX), timeout=300), 201)
        deadline = time.monotonic() + 180
        while True:  # creating a target syncs it (SYNC_ON_TARGET_STORAGE_CREATION); in RQ mode a worker does
            state = _ok(api.get(f'{server.base}/api/storages/export/pachyderm/{storage["id"]}', timeout=60))
            if state['status'] == 'completed':
                return storage['id']
            if state['status'] in ('failed', 'completed_with_errors') or time.monotonic() > deadline:
                raise RuntimeError(f'the first sync of the target ended {state["status"]}: {state.get("traceback")}')
            time.sleep(0.5)
    finally:
        api.close()


def _storage_meta(server: Server, storage_id: int) -> dict:
    api = _session(server.token)
    try:
        return _ok(api.get(f'{server.base}/api/storages/export/pachyderm/{storage_id}', timeout=60))
    finally:
        api.close()


class RepoCheck:
    """Which submitted annotations a commit of the target holds, with the submitted result.

    Task layout: ``annotations/<task id>.json`` holds the task and all its annotations. Files
    are read again only when their hash changed since the last look.
    """

    def __init__(self, client, repo: str, expected: list):
        self.client = client
        self.repo = repo
        self.expected = expected  # [(annotation id, task id, result)]
        self.files: dict = {}  # path -> (hash, {annotation id: result})

    def missing(self, commit: str) -> list:
        entries = {entry.path: entry for entry in self.client.list_files('default', self.repo, commit, PREFIX)}
        for path, entry in entries.items():
            if self.files.get(path, ('',))[0] == entry.hash and entry.hash:
                continue
            body = json.loads(self.client.get_file_bytes('default', self.repo, commit, path))
            self.files[path] = (entry.hash, {a['id']: a.get('result') for a in body.get('annotations') or []})
        missing = []
        for annotation_id, task_id, result in self.expected:
            path = f'{PREFIX}/{task_id}.json'
            held = self.files.get(path, ('', {}))[1] if path in entries else {}
            if held.get(annotation_id) != result:
                missing.append((annotation_id, 'absent' if annotation_id not in held else 'content differs'))
        return missing


def _drain(run, repo: str, expected: list, last_submit: float, check: RepoCheck = None) -> dict:
    """Poll the branch until one finished head holds everything; seconds after the last submit."""
    check = check or RepoCheck(run.client, repo, expected)
    check.expected = expected
    seen, missing = '', expected
    deadline = last_submit + DRAIN_LIMIT
    while time.monotonic() < deadline:
        head = run.client.branch_head('default', repo, 'master')
        if head != seen and run.client.inspect_commit('default', repo, head).finished:
            observed = time.monotonic()
            missing = check.missing(head)
            seen = head
            if not missing:
                return dict(drain_seconds=observed - last_submit, lost=0, missing=[])
        time.sleep(0.1)
    return dict(drain_seconds=None, lost=len(missing), missing=missing[:10])


def reference_commits(run, count: int) -> list:
    """Seconds of ``count`` small commits (one 200-byte file each) through the client: the unit of 'one commit'."""
    from label_studio_pachyderm import pachd

    run.client.create_repo('default', 'annotators_reference', exist_ok=True)
    seconds = []
    for n in range(count):
        started = time.perf_counter()
        run.client.write_commit('default', 'annotators_reference', 'master',
                                [pachd.FileOp.put(f'ref/{n % 10}.json', json.dumps({'n': n, 'pad': 'x' * 180}).encode())],
                                description='bench: reference commit')
        seconds.append(time.perf_counter() - started)
    return seconds


def _redis():
    from redis import Redis

    return Redis.from_url(REDIS_URL)


def _wait_for_workers(queue: str, wanted: int, server: Server) -> None:
    redis = _redis()
    deadline = time.monotonic() + 180
    while redis.scard(f'rq:workers:{queue}') < wanted:
        for worker in server.workers:
            if worker.poll() is not None:
                raise RuntimeError(f'an RQ worker exited with status {worker.returncode} (see {server.logs})')
        if time.monotonic() > deadline:
            raise RuntimeError(f'{wanted} RQ workers did not register on {queue} within 180 s')
        time.sleep(0.5)


def _clean_redis(queue: str, storage_ids) -> None:
    """Remove what this run left in Redis db 13: its queue's keys, their jobs, the storages' flags."""
    try:
        redis = _redis()
        keys = [key for key in redis.scan_iter(match=f'rq:*{queue}*', count=1000)]
        jobs = set()
        for key in keys:
            kind = redis.type(key)
            if kind == b'zset':
                jobs.update(redis.zrange(key, 0, -1))
            elif kind == b'list':
                jobs.update(redis.lrange(key, 0, -1))
        for job in jobs:
            job = job.decode() if isinstance(job, bytes) else job
            job = job.split(':')[0]
            keys += [f'rq:job:{job}', f'rq:results:{job}', f'rq:job:{job}:dependents']
        for sid in storage_ids:
            keys += [f'pachyderm:export:scheduled:{sid}', f'pachyderm:export:failures:{sid}']
        if keys:
            redis.delete(*keys)
        redis.srem('rq:queues', f'rq:queue:{queue}')  # RQ's registry of queue names
    except Exception:
        pass


def _phase(server: Server, task_ids: list, annotators: int, seconds: float, pace: float, tag: str = '') -> dict:
    """``annotators`` threads submitting for ``seconds``: back to back (pace 0) or one submit per ``pace`` s each.

    ``task_ids``: one list for all, or one iterator per annotator (carried on from slice to slice).
    """
    go = threading.Event()
    started = time.monotonic() + 0.5
    threads = [Annotator(server, k, task_ids[k] if isinstance(task_ids, tuple) else task_ids[k::annotators], go,
                         started + seconds, first_at=started + k * pace / annotators, pace=pace)
               for k in range(annotators)]
    for thread in threads:
        thread.tag = tag
        thread.start()
    while time.monotonic() < started:
        time.sleep(0.01)
    go.set()
    for thread in threads:
        thread.join(seconds + 300)
    if any(thread.is_alive() for thread in threads):
        raise RuntimeError('an annotator did not finish within 300 s of the end')
    submits = [s for thread in threads for s in thread.submits]
    failures = [f for thread in threads for f in thread.failures]
    if not submits:
        raise RuntimeError(f'no submit succeeded ({failures[:3]})')
    last = max(sent + latency for sent, latency, *_ in submits)
    latencies = [latency * 1000 for _, latency, *_ in submits]
    return dict(submits=len(submits), failures=failures, window=last - started, latencies=latencies, last=last,
                expected=[(aid, tid, result) for _, _, aid, tid, result in submits])


def _summary(latencies: list, submits: int, window: float) -> dict:
    return dict(submits=submits, window=window, rate=submits / window if window else 0.0,
                p50=percentile(latencies, 50), p95=percentile(latencies, 95), max=max(latencies),
                mean=statistics.fmean(latencies))


def _commits(run, repo: str) -> int:
    return len(list(run.client.list_commits('default', repo, branch='master')))


class Config:
    """One configuration's server, project and target, kept up for the whole scenario."""

    def __init__(self, run, name: str, repo: str, rq: bool):
        self.name, self.repo, self.rq = name, repo, rq
        env = {'PACHYDERM_EXPORT_COALESCE_SECONDS': str(COALESCE_SECONDS), 'LOG_LEVEL': 'WARNING'}
        self.queue = f'bench-annotators-{os.getpid()}-{int(time.time())}-{name}'
        if rq:
            env.update(PACHYDERM_REDIS_URL=REDIS_URL, PACHYDERM_RQ_QUEUE=self.queue)
        self.server = Server(run, name, env, workers=2 if rq else 0)
        self.storage_id = None
        self.task_ids: list = []
        self.expected: list = []  # every submitted annotation so far (annotation id, task id, result)
        self.out = dict(name=name, failures=[], problems=[], phases={})

    def prepare(self, run, tasks: int, annotators: int, postgres: PostgresDatabases = None) -> None:
        if self.rq:
            _clean_redis(self.queue, [1, 2, 3])  # storage ids of a fresh database: no stale "scheduled" flag
        self.server.start(postgres)
        if self.rq:
            _wait_for_workers(self.queue, 2, self.server)
        project_id, task_ids = _prepare_project(self.server, tasks + annotators)
        warmup, self.task_ids = task_ids[:annotators], task_ids[annotators:]
        _warm_up(self.server, warmup)
        if self.repo:
            run.client.create_repo('default', self.repo, exist_ok=True)
            self.storage_id = _create_storage(run, self.server, project_id, self.repo)

    def finish(self, run) -> None:
        if self.repo and not self.out.get('error'):
            unfinished = run.client.unfinished_head('default', self.repo, 'master')
            self.out['unfinished'] = unfinished.id if unfinished else None
            meta = _storage_meta(self.server, self.storage_id)['meta'] or {}
            self.out['pending_exports'] = meta.get('pending_exports')
            self.out['export_error'] = meta.get('last_export_error')
        self.out['rss_mb'] = self.server.rss_peak_mb()

    def stop(self) -> None:
        try:
            self.server.stop()
        finally:
            if self.rq:
                _clean_redis(self.queue, [self.storage_id] if self.storage_id else [1, 2, 3])
            self.out['problems'] = self.server.log_problems()


def measure_all(run, configs: list, seconds: int, annotators: int, tasks: int, pace: float = 0.0,
                slices: int = 6, log=print, database: str = 'sqlite') -> dict:
    """Every configuration, its servers up side by side, measured in interleaved slices.

    The machine is shared, and its load drifts within minutes: so each phase is cut into
    ``slices`` slices of ``seconds / slices``, and the configurations take turns, their order
    rotating from slice to slice; each configuration sees the same stretches of load. After a
    slice of an exported configuration the next one starts only once its repo holds
    everything (that wait is the "time until everything is in the repo"), so one
    configuration's export work never lands in another's slice.

    Phases: ``saturated`` (every annotator submits again as soon as its submit returned) and,
    with ``pace``, ``paced`` (one submit per annotator every ``pace`` seconds, staggered).
    """
    import itertools

    runs = [Config(run, name, repo, rq) for name, repo, rq in configs]
    postgres = PostgresDatabases(run) if database == 'postgres' else None
    load_before = loadavg()
    try:
        if postgres is not None:
            postgres.migrate_template()
            log(f'  PostgreSQL {postgres.where["host"]}:{postgres.where["port"]}: template database migrated')
        for config in runs:
            config.prepare(run, tasks, annotators, postgres)
            log(f'  {config.name}: server up at {config.server.base}' + (f', storage {config.storage_id} -> '
                                                                          f'{config.repo}' if config.repo else ''))
        phases = [('saturated', 0.0)] + ([('paced', pace)] if pace else [])
        for number, (phase, phase_pace) in enumerate(phases):
            for config in runs:
                half = len(config.task_ids) // len(phases)
                ids = config.task_ids[number * half:(number + 1) * half]
                config.iters = tuple(itertools.cycle(ids[k::annotators]) for k in range(annotators))
                config.acc = dict(latencies=[], submits=0, window=0.0, drains=[], commits=0, failures=[])
            for turn in range(slices):
                order = runs[turn % len(runs):] + runs[:turn % len(runs)]
                for config in order:
                    before = _commits(run, config.repo) if config.repo else 0
                    part = _phase(config.server, config.iters, annotators, seconds / slices, phase_pace,
                                  tag=f'{phase[0]}{turn}')
                    acc = config.acc
                    acc['latencies'] += part['latencies']
                    acc['submits'] += part['submits']
                    acc['window'] += part['window']
                    config.expected += part['expected']
                    config.out['failures'] += part['failures']
                    acc['failures'] += part['failures']
                    if config.repo:
                        if not hasattr(config, 'check'):
                            config.check = RepoCheck(run.client, config.repo, config.expected)
                        drained = _drain(run, config.repo, config.expected, part['last'], config.check)
                        acc['commits'] += _commits(run, config.repo) - before
                        if drained['lost']:
                            acc['lost'] = drained['lost']
                            acc['missing'] = drained['missing']
                            raise RuntimeError(f'{config.name}: {drained["lost"]} annotations not in the repo '
                                               f'{DRAIN_LIMIT:.0f} s after the last submit')
                        acc['drains'].append(drained['drain_seconds'])
            for config in runs:
                acc = config.acc
                result = config.out['phases'][phase] = _summary(acc['latencies'], acc['submits'], acc['window'])
                result['failures'] = acc['failures']
                if config.repo:
                    result.update(commits=acc['commits'], lost=0, drain_seconds=max(acc['drains']),
                                  drain_median=statistics.median(acc['drains']))
        for config in runs:
            config.finish(run)
    except Exception as exc:
        message = f'{type(exc).__name__}: {exc}'[:400]
        for config in runs:
            config.out.setdefault('error', message)
            acc = getattr(config, 'acc', None)
            if acc and acc.get('lost'):
                config.out['lost'] = acc['lost']
                config.out['missing'] = acc.get('missing')
    finally:
        for config in runs:
            try:
                config.stop()
            except Exception:
                pass
        if postgres is not None:
            postgres.drop_all()
        load_after = loadavg()
        for config in runs:
            config.out.update(load_before=load_before, load_after=load_after)
    return {config.name: config.out for config in runs}
