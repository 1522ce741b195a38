"""Export formats: time and peak memory to convert N annotated tasks and commit them.

    .venv/bin/python -m bench.formats [--tasks 10000] [--formats COCO,YOLO] [--out FILE]

A migrated SQLite database on tmpfs with one image project (the tests' rectangle-labels
config) and N tasks with one annotation each (two boxes, pfs:// image URIs). Each format is
then measured in a fresh process: ``formats.Conversion`` (every annotated task through LS's
export serializer into one JSON file, then LS's converter) and the commit of its output to a
local PFS server through ``PachdClient.write_commit``, as a target storage's sync writes it.
Peak RSS is the highest resident size sampled every 20 ms while the conversion and the commit
run; the baseline is the same process after Django and Label Studio were loaded, before them.

Prints a Markdown table; ``--out FILE`` writes it there too.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from bench.work.common import IMAGE_CONFIG, make_owner, make_project, rss_now_mb


def _env(base: str) -> dict:
    return {
        **os.environ, 'DJANGO_SETTINGS_MODULE': 'label_studio_pachyderm.settings', 'LABEL_STUDIO_BASE_DATA_DIR': base,
        'DATABASE_NAME': os.path.join(base, 'ls.sqlite3'), 'PACHYDERM_ALLOWED_HOSTS': '127.0.0.1',
        'SENTRY_DSN': '', 'FRONTEND_SENTRY_DSN': '', 'COLLECT_ANALYTICS': 'false', 'LATEST_VERSION_CHECK': 'false',
        'LOG_LEVEL': 'WARNING', 'PACHYDERM_REDIS_URL': '',
    }


class _PeakRss:
    """The highest resident set size seen while the block runs (sampled every 20 ms)."""

    def __enter__(self):
        import threading

        self.peak = rss_now_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_now_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_now_mb())
        return False


def _box(label: str, x: float) -> dict:
    return {'from_name': 'label', 'to_name': 'image', 'type': 'rectanglelabels', 'original_width': 640,
            'original_height': 480, 'image_rotation': 0,
            'value': {'x': x, 'y': 20, 'width': 30, 'height': 40, 'rotation': 0, 'rectanglelabels': [label]}}


def prepare(n: int) -> None:
    """The project: N tasks, one annotation each (bulk-created: no storage exists yet)."""
    from tasks.models import Annotation, Task

    user = make_owner()
    project = make_project(user, IMAGE_CONFIG, 'Formats')
    commit = 'c' * 32
    for start in range(0, n, 1000):
        tasks = Task.objects.bulk_create([
            Task(project=project, data={'image': f'pfs://default/images@{commit}/img/{i:06d}.png'})
            for i in range(start, min(n, start + 1000))])
        Annotation.objects.bulk_create([
            Annotation(task=t, project=project, completed_by=user, result=[_box('Cat', 10), _box('Dog', 50)])
            for t in tasks])
        Task.objects.filter(id__in=[t.id for t in tasks]).update(is_labeled=True, total_annotations=1)


def measure(name: str) -> dict:
    """One format, in this (fresh) process: conversion, then the commit of its files."""
    from label_studio_pachyderm import pachd
    from label_studio_pachyderm.exports import formats
    from label_studio_pachyderm.localpfs import start_server
    from label_studio_pachyderm.models import PachydermExportStorage
    from projects.models import Project

    project = Project.objects.get(title='Formats')
    with tempfile.TemporaryDirectory(prefix='lsp-bench-pfs-') as data_dir:
        server = start_server('127.0.0.1', 0, data_dir)
        try:
            client = pachd.PachdClient(server.address)
            client.create_repo('default', 'labels')
            storage = PachydermExportStorage(project=project, pachd_address=server.address, repo='labels',
                                             prefix='ls', export_formats=[name])
            baseline = rss_now_mb()
            profile = None
            if os.environ.get('BENCH_FORMATS_PROFILE'):
                import cProfile

                profile = cProfile.Profile()
                profile.enable()
            started = time.monotonic()
            with _PeakRss() as peak, formats.Conversion(storage, [name]) as conversion:
                converted = time.monotonic()
                if conversion.errors:
                    raise RuntimeError('; '.join(conversion.errors))
                listing = conversion.files()[name]
                commit = client.write_commit('default', 'labels', 'master', conversion.ops(),
                                             description=f'bench {name}')
            ended = time.monotonic()
            if profile is not None:
                import pstats

                profile.disable()
                pstats.Stats(profile, stream=sys.stderr).sort_stats('cumulative').print_stats(35)
            size = sum(f.size for f in client.list_files('default', 'labels', commit, f'ls/formats/{name}'))
        finally:
            server.stop()
    return {'format': name, 'tasks': conversion.tasks, 'files': len(listing), 'bytes': size,
            'convert_s': converted - started, 'commit_s': ended - converted, 'total_s': ended - started,
            'baseline_rss_mib': baseline, 'peak_rss_mib': peak.peak}


def _table(rows: list) -> str:
    lines = ['| format | annotated tasks | files | size | conversion | commit | total | RSS before | peak RSS |',
             '|---|---:|---:|---:|---:|---:|---:|---:|---:|']
    for r in rows:
        lines.append(f"| {r['format']} | {r['tasks']:,} | {r['files']:,} | {r['bytes'] / 2 ** 20:.1f} MiB | "
                     f"{r['convert_s']:.1f} s | {r['commit_s']:.1f} s | {r['total_s']:.1f} s | "
                     f"{r['baseline_rss_mib']:.0f} MiB | {r['peak_rss_mib']:.0f} MiB |")
    return '\n'.join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='python -m bench.formats', description=__doc__.splitlines()[0])
    parser.add_argument('--tasks', type=int, default=10000, help='annotated tasks (default 10000; not with a reused --db)')
    parser.add_argument('--formats', default='COCO,YOLO', help='formats, comma-separated (default COCO,YOLO)')
    parser.add_argument('--out', default='', help='also write the table to this file')
    parser.add_argument('--db', default='', help='reuse (or keep) the prepared database in this directory')
    parser.add_argument('--profile', action='store_true', help='cProfile of each format to stderr')
    parser.add_argument('--measure', default='', help=argparse.SUPPRESS)  # the child process: one format
    args = parser.parse_args(argv)

    if args.measure:  # child: the database is prepared, the environment set by the parent
        import django

        django.setup()
        print(json.dumps(measure(args.measure)))
        return 0

    base = args.db or tempfile.mkdtemp(prefix='lsp-bench-formats-',
                                       dir='/dev/shm' if os.path.isdir('/dev/shm') else None)
    reuse = bool(args.db) and os.path.exists(os.path.join(base, 'ls.sqlite3'))
    os.makedirs(base, exist_ok=True)
    env = _env(base)
    if args.profile:
        env['BENCH_FORMATS_PROFILE'] = '1'
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    if not reuse:
        started = time.monotonic()
        call_command('migrate', verbosity=0)
        prepare(args.tasks)
        print(f'migrated and prepared {args.tasks} tasks in {time.monotonic() - started:.0f} s', file=sys.stderr)
    from django.db import connection

    connection.close()
    rows = []
    for name in [n.strip() for n in args.formats.split(',') if n.strip()]:
        out = subprocess.run([sys.executable, '-m', 'bench.formats', '--measure', name], env=env, check=True,
                             stdout=subprocess.PIPE, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(f'{name}: {rows[-1]["total_s"]:.1f} s', file=sys.stderr)

    from .machine import describe, one_line

    table = _table(rows) + '\n\nMachine: ' + one_line(describe())
    print(table)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(table + '\n')
    if not args.db:
        subprocess.run(['rm', '-rf', base], check=False)
    return 0


if __name__ == '__main__':
    sys.exit(main())
