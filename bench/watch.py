"""Watch latency: from a commit on pachd to its task visible through Label Studio's API.

    .venv/bin/python -m bench.watch [--commits 100] [--storages 1,50] [--idle 60]

A migrated SQLite database on tmpfs, a local PFS server, and ``label-studio-pachyderm watch``
as its own process (inline syncs, the default refresh). For each count of watched storages
(one repo each, in one project) it writes ``--commits`` commits of one file, one at a time,
round-robin over the repos, and measures from just before the commit is written (so the upload
and FinishCommit count) until Label Studio's task list API (``GET /api/tasks?project=``, through
Django's test client in this process) counts the new task. Then the watcher's CPU time and
resident memory over ``--idle`` seconds with every storage watched and nothing landing (psutil).

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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='python -m bench.watch', description=__doc__.splitlines()[0])
    parser.add_argument('--commits', type=int, default=100, help='commits per storage count (default 100)')
    parser.add_argument('--storages', default='1,50', help='counts of watched storages (default 1,50)')
    parser.add_argument('--idle', type=float, default=60, help='seconds of idle measurement (default 60)')
    parser.add_argument('--out', default='', help='also write the table to this file')
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.storages.split(',') if n.strip()]

    base = tempfile.mkdtemp(prefix='lsp-bench-watch-', dir='/dev/shm' if os.path.isdir('/dev/shm') else None)
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

    import psutil
    from label_studio_pachyderm import pachd
    from label_studio_pachyderm.localpfs import start_server
    from label_studio_pachyderm.models import PachydermImportStorage
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

    def visible() -> int:
        return api.get(f'/api/tasks?project={project.id}&page_size=1').json()['total']

    # Each SubscribeCommit holds one of the local server's worker threads for as long as it runs
    # (pachd has no such bound): give it room for every watched storage plus the syncs' calls.
    from label_studio_pachyderm.localpfs import server as localpfs_server

    localpfs_server.MAX_WORKERS = max(localpfs_server.MAX_WORKERS, max(counts) + 32)
    server = start_server('127.0.0.1', 0, os.path.join(base, 'pfs'))
    client = pachd.PachdClient(server.address)
    log = open(os.path.join(base, 'watch.log'), 'wb')
    cli = os.path.join(os.path.dirname(sys.executable), 'label-studio-pachyderm')
    watcher = subprocess.Popen([cli, 'watch'], env=env, stdout=log, stderr=subprocess.STDOUT)
    rows = []
    repos = []
    try:
        for count in counts:
            while len(repos) < count:  # new storages join a running watcher
                repo = f'images-{len(repos)}'
                client.create_repo('default', repo)
                client.write_commit('default', repo, 'master', [pachd.FileOp.put('seed.png', PNG)])
                PachydermImportStorage.objects.create(project=project, title=repo, pachd_address=server.address,
                                                      repo=repo, use_blob_urls=True, watch_commits=True)
                repos.append(repo)
            deadline = time.monotonic() + 300
            while visible() < len(repos) + sum(r['commits'] for r in rows):
                assert time.monotonic() < deadline, 'the catch-up syncs did not finish'
                time.sleep(0.2)
            latencies = []
            expected = visible()
            for i in range(args.commits):
                repo = repos[i % len(repos)]
                t0 = time.monotonic()
                client.write_commit('default', repo, 'master', [pachd.FileOp.put(f'c{count}-{i}.png', PNG)])
                expected += 1
                deadline = t0 + 60
                while visible() < expected:
                    assert time.monotonic() < deadline, f'commit {i} not visible after 60 s'
                    time.sleep(0.02)
                latencies.append(time.monotonic() - t0)
            rows.append({'storages': count, 'commits': args.commits, 'p50': statistics.median(latencies),
                         'p95': _percentile(latencies, 95), 'max': max(latencies)})
            print(f'{count} storage(s): p50 {rows[-1]["p50"]:.2f} s, p95 {rows[-1]["p95"]:.2f} s', file=sys.stderr)
        time.sleep(10)  # the last syncs and meta updates are over
        proc = psutil.Process(watcher.pid)
        cpu0, t0 = sum(proc.cpu_times()[:2]), time.monotonic()
        time.sleep(args.idle)
        cpu = (sum(proc.cpu_times()[:2]) - cpu0) / (time.monotonic() - t0) * 100
        rss = proc.memory_info().rss / 2 ** 20
        threads = proc.num_threads()
    finally:
        watcher.terminate()
        watcher.wait(30)
        log.close()
        server.stop()
    lines = ['| Watched storages | Commits | p50 (s) | p95 (s) | max (s) |', '|---|---|---|---|---|']
    lines += [f'| {r["storages"]} | {r["commits"]} | {r["p50"]:.2f} | {r["p95"]:.2f} | {r["max"]:.2f} |' for r in rows]
    lines += ['', f'Idle, {len(repos)} watched storages, {args.idle:g} s: CPU {cpu:.2f} % of one core, '
                  f'RSS {rss:.0f} MiB, {threads} threads; load average {os.getloadavg()[0]:.2f}.']
    table = '\n'.join(lines)
    print(table)
    if args.out:
        with open(args.out, 'w') as handle:
            handle.write(table + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
