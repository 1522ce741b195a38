"""Watch latency: from a commit on pachd to its task visible through Label Studio's API.

    .venv/bin/python -m bench.watch [--commits 100] [--storages 1,50,1000] [--idle 60] [--restart-down 5]

A migrated SQLite database on tmpfs, a local PFS server, and ``label-studio-pachyderm watch``
as its own process (inline syncs, the default refresh). For each count of watched storages
(one repo each, in one project) it writes ``--commits`` commits of one file, one at a time,
each on a storage picked at random, and measures until Label Studio's task list API
(``GET /api/tasks?project=``, through Django's test client in this process) counts the new
task: from just before the commit is written (so the upload counts) and from FinishCommit's
answer. Then the watcher's CPU time, resident memory and threads over ``--idle`` seconds with
every storage watched and nothing landing (psutil). Last, the local PFS server is stopped for
``--restart-down`` seconds and started again on the same port and data, and ``--landing`` storages
get a commit at once: the time until every storage is subscribed again (counted on the server),
every card reads completed and the new files are tasks, and how many syncs that took.

Prints a Markdown table; ``--out FILE`` writes it there too.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

PNG = b'\x89PNG\r\n\x1a\n' + bytes(range(256)) * 40


def _percentile(values, q):
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[index]


def _restart_and_catch_up(server, down: float, repos: list, landing: int, model, start_server, visible,
                          rng) -> dict:
    """Stop the local PFS server for ``down`` seconds, start it again on the same port and data, land one
    commit on each of ``landing`` random storages at once, and time until every storage is subscribed
    again, every card reads completed again, and the new files are tasks. Counts the syncs that ran
    after the restart: only storages with something new need one."""
    from django.utils import timezone
    from label_studio_pachyderm import pachd

    port, data_dir = server.port, server.data_dir
    expected = visible() + landing
    server.stop()
    time.sleep(down)
    restarted_at = timezone.now()
    t0 = time.monotonic()
    server = start_server('127.0.0.1', port, data_dir)
    client = pachd.PachdClient(server.address)
    for i, repo in enumerate(rng.sample(repos, landing)):
        client.write_commit('default', repo, 'master', [pachd.FileOp.put(f'after-restart-{i}.png', PNG)])
    landed = time.monotonic() - t0
    client.close()
    subscribed = caught_up = None
    deadline = t0 + 600
    while caught_up is None:
        assert time.monotonic() < deadline, 'the catch-up after the restart did not finish in 10 minutes'
        if subscribed is None and sum(server.open_subscriptions().values()) >= len(repos):
            subscribed = time.monotonic() - t0
        if subscribed is not None and model.objects.exclude(status='completed').count() == 0 \
                and visible() >= expected:
            caught_up = time.monotonic() - t0
        time.sleep(0.2)
    syncs = model.objects.filter(last_sync__gte=restarted_at).count()
    return {'server': server, 'subscribed': subscribed, 'caught_up': caught_up, 'landed': landed,
            'landing': landing, 'syncs': syncs}


def print_table(table: str, out: str = '') -> None:
    """The Markdown table to the terminal and, with ``out``, to that file."""
    print(table)
    if out:
        with open(out, 'w') as handle:
            handle.write(table + '\n')


def setup_label_studio(prefix: str):
    """A migrated SQLite database on tmpfs, Django set up in this process, a user, a project and an API client
    logged in as that user: (base directory, environment for a watcher process, project, api)."""
    base = tempfile.mkdtemp(prefix=prefix, dir='/dev/shm' if os.path.isdir('/dev/shm') else None)
    db = os.path.join(base, 'ls.sqlite3')
    env = {
        **os.environ, 'DJANGO_SETTINGS_MODULE': 'label_studio_pachyderm.settings', 'LABEL_STUDIO_BASE_DATA_DIR': base,
        'DATABASE_NAME': db, 'PACHYDERM_ALLOWED_HOSTS': '127.0.0.1', 'SENTRY_DSN': '', 'FRONTEND_SENTRY_DSN': '',
        'COLLECT_ANALYTICS': 'false', 'LATEST_VERSION_CHECK': 'false', 'LOG_LEVEL': 'WARNING',
        'PACHYDERM_REDIS_URL': '',
    }
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    started = time.monotonic()
    call_command('migrate', verbosity=0)
    print(f'migrated in {time.monotonic() - started:.0f} s', file=sys.stderr)
    from organizations.models import Organization
    from projects.models import Project
    from rest_framework.test import APIClient
    from users.models import User

    user = User.objects.create_user(email='bench@example.com', password='bench12345')
    user.active_organization = Organization.create_organization(created_by=user, title='Bench')
    user.save()
    project = Project.objects.create(title='Watch', created_by=user, organization=user.active_organization,
                                     label_config='<View><Image name="image" value="$image"/></View>')
    api = APIClient()
    api.force_authenticate(user)
    return base, env, project, api


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='python -m bench.watch', description=__doc__.splitlines()[0])
    parser.add_argument('--commits', type=int, default=100, help='commits per storage count (default 100)')
    parser.add_argument('--storages', default='1,50', help='counts of watched storages (default 1,50)')
    parser.add_argument('--idle', type=float, default=60, help='seconds of idle measurement (default 60)')
    parser.add_argument('--restart-down', type=float, default=5,
                        help='seconds the local PFS server is down before the catch-up is timed (default 5; 0: none)')
    parser.add_argument('--landing', type=int, default=100,
                        help='storages that get a commit right after the restart (default 100)')
    parser.add_argument('--seed', type=int, default=1, help='seed of the random storage each commit lands on')
    parser.add_argument('--out', default='', help='also write the table to this file')
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.storages.split(',') if n.strip()]

    base, env, project, api = setup_label_studio('lsp-bench-watch-')
    import psutil
    from label_studio_pachyderm import pachd
    from label_studio_pachyderm.localpfs import start_server
    from label_studio_pachyderm.models import PachydermImportStorage

    def visible() -> int:
        return api.get(f'/api/tasks?project={project.id}&page_size=1').json()['total']

    import random

    rng = random.Random(args.seed)
    server = start_server('127.0.0.1', 0, os.path.join(base, 'pfs'))
    client = pachd.PachdClient(server.address)
    log = open(os.path.join(base, 'watch.log'), 'wb')
    cli = os.path.join(os.path.dirname(sys.executable), 'label-studio-pachyderm')
    watcher = subprocess.Popen([cli, 'watch'], env=env, stdout=log, stderr=subprocess.STDOUT)
    rows = []
    repos = []
    try:
        for count in counts:
            added = time.monotonic()
            while len(repos) < count:  # new storages join a running watcher
                repo = f'images-{len(repos)}'
                client.create_repo('default', repo)
                client.write_commit('default', repo, 'master', [pachd.FileOp.put('seed.png', PNG)])
                PachydermImportStorage.objects.create(project=project, title=repo, pachd_address=server.address,
                                                      repo=repo, use_blob_urls=True, watch_commits=True)
                repos.append(repo)
            deadline = time.monotonic() + 600
            while visible() < len(repos) + sum(r['commits'] for r in rows):
                assert time.monotonic() < deadline, 'the catch-up syncs did not finish'
                time.sleep(0.5)
            print(f'{count} storage(s) followed and caught up {time.monotonic() - added:.0f} s after the first was '
                  'added', file=sys.stderr)
            time.sleep(5)  # the last catch-up syncs' meta updates are over
            latencies, after_finish = [], []
            expected = visible()
            for i in range(args.commits):
                repo = rng.choice(repos)
                t0 = time.monotonic()
                client.write_commit('default', repo, 'master', [pachd.FileOp.put(f'c{count}-{i}.png', PNG)])
                finished = time.monotonic()
                expected += 1
                deadline = t0 + 60
                while visible() < expected:
                    assert time.monotonic() < deadline, f'commit {i} not visible after 60 s'
                    time.sleep(0.02)
                latencies.append(time.monotonic() - t0)
                after_finish.append(time.monotonic() - finished)
            rows.append({'storages': count, 'commits': args.commits, 'p50': statistics.median(latencies),
                         'p95': _percentile(latencies, 95), 'max': max(latencies),
                         'f50': statistics.median(after_finish), 'f95': _percentile(after_finish, 95)})
            print(f'{count} storage(s): p50 {rows[-1]["p50"]:.2f} s, p95 {rows[-1]["p95"]:.2f} s; from FinishCommit '
                  f'p95 {rows[-1]["f95"]:.2f} s', file=sys.stderr)
        time.sleep(10)  # the last syncs and meta updates are over
        proc = psutil.Process(watcher.pid)
        cpu0, t0 = sum(proc.cpu_times()[:2]), time.monotonic()
        time.sleep(args.idle)
        cpu = (sum(proc.cpu_times()[:2]) - cpu0) / (time.monotonic() - t0) * 100
        rss = proc.memory_info().rss / 2 ** 20
        threads = proc.num_threads()
        load_idle = open('/proc/loadavg').read().split()[:3] if os.path.exists('/proc/loadavg') else []
        print(f'idle: CPU {cpu:.2f} %, RSS {rss:.0f} MiB, {threads} threads', file=sys.stderr)
        catch_up = None
        if args.restart_down > 0:
            catch_up = _restart_and_catch_up(server, args.restart_down, repos, min(args.landing, len(repos)),
                                             PachydermImportStorage, start_server, visible, rng)
            server = catch_up.pop('server')
            print(f'catch-up: {catch_up}', file=sys.stderr)
        rss_end = proc.memory_info().rss / 2 ** 20
        threads_end = proc.num_threads()
    finally:
        watcher.terminate()
        watcher.wait(30)
        log.close()
        server.stop()
    lines = ['| Watched storages | Commits | p50 (s) | p95 (s) | max (s) | from FinishCommit p50 (s) | p95 (s) |',
             '|---|---|---|---|---|---|---|']
    lines += [f'| {r["storages"]} | {r["commits"]} | {r["p50"]:.2f} | {r["p95"]:.2f} | {r["max"]:.2f} | '
              f'{r["f50"]:.2f} | {r["f95"]:.2f} |' for r in rows]
    lines += ['', f'Idle, {len(repos)} watched storages, {args.idle:g} s: CPU {cpu:.2f} % of one core, '
                  f'RSS {rss:.0f} MiB, {threads} threads; load average at the end of it {" ".join(load_idle)}.']
    if catch_up:
        lines += ['', f'pachd (the local PFS server) down {args.restart_down:g} s, then started again, and one '
                      f'commit landed on each of {catch_up["landing"]} random storages (all written '
                      f'{catch_up["landed"]:.1f} s after the restart): all {len(repos)} storages subscribed again '
                      f'{catch_up["subscribed"]:.1f} s after the restart, every card completed and every new file '
                      f'a task {catch_up["caught_up"]:.1f} s after it, with {catch_up["syncs"]} syncs (a storage '
                      f'with nothing new needs none); watcher RSS then {rss_end:.0f} MiB, {threads_end} threads.']
    table = '\n'.join(lines)
    print_table(table, args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
