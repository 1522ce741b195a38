"""``bash bench/run.sh --profile``: where the Pachyderm import, export and proxy spend their time.

Same processes as the comparison (fresh process, fresh database copy, the local PFS
server in its own process), with cProfile and a SQL counter around the measured
block. Writes bench/results/profile.md (+ the raw .prof files for snakeviz & co).
"""
from __future__ import annotations

import json
from pathlib import Path

from . import content
from .config import Config
from .runner import Run

WORKLOADS = [
    # (name, title, job, unit)
    ('import_media', 'Import sync, media (blob mode)', 'full_sync', 'tasks'),
    ('import_tasks', 'Import sync, JSON tasks (task mode)', 'full_sync', 'tasks'),
    ('export_task', 'Export sync, task layout (default)', 'export_sync', 'annotations'),
    ('export_annotation', 'Export sync, annotation layout', 'export_sync', 'annotations'),
    ('proxy', 'Storage proxy, 8 MiB Range requests', 'proxy', 'MiB'),
]


# Which workloads a scenario name of --only selects.
_SELECTS = {'import_media': ('import_media',), 'import_tasks': ('import_tasks',),
            'export': ('export_task', 'export_annotation'), 'proxy': ('proxy',)}


class ProfileRun(Run):
    logs_name = 'profile/logs'

    def needs_s3(self) -> bool:
        return False

    def execute(self) -> int:
        summaries = []
        try:
            self.start()
            sizes = self.sizes
            out = Path(self.results_dir) / 'profile'
            out.mkdir(parents=True, exist_ok=True)
            if 'import_media' in self.config.only:
                self.seed_pfs('media', 'media', sizes.media_files)
            if 'import_tasks' in self.config.only:
                self.seed_pfs('tasks', 'tasks', sizes.task_files)
            selected = {w for name in self.config.only for w in _SELECTS.get(name, ())}
            for name, title, job, unit in WORKLOADS:
                if name not in selected:
                    continue
                params, env, db_from = self._params(name, out)
                if params is None:
                    continue
                result = self.worker(job, params, f'profile_{name}', db_from=db_from, env=env)
                if unit == 'MiB' and 'items' in result:
                    result['items'] //= 2**20
                summary_path = Path(params['profile'] + '.json')
                summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
                summaries.append((name, title, unit, result, summary))
                if not result.get('error'):
                    self.log(f'  {title}: {result["items"]:,} {unit} in {result["seconds"]:.2f} s (profiled)')
        finally:
            self.stop()
        path = Path(self.results_dir) / 'profile.md'
        path.write_text(_markdown(summaries, self.sizes))
        print(f'written: {path}')
        return 0

    _prepared = None

    def _params(self, name: str, out: Path):
        profile = str(out / name)
        sizes = self.sizes
        if name.startswith('import_'):
            kind = name.split('_')[1]
            count = sizes.media_files if kind == 'media' else sizes.task_files
            prefix = content.MEDIA_DIR if kind == 'media' else content.TASK_DIR
            return dict(provider='pachyderm', kind=kind, count=count, address=self.pfs.address, repo=kind,
                        prefix=prefix, profile=profile), None, None
        if name.startswith('export_'):
            if self._prepared is None:
                for repo in ('export_task', 'export_annotation'):
                    self.client.create_repo('default', repo, exist_ok=True)
                self._prepared = self.worker(
                    'export_prepare', dict(count=sizes.export_annotations, address=self.pfs.address,
                                           pachyderm_repos={'task': 'export_task', 'annotation': 'export_annotation'},
                                           bucket='unused'), 'profile_export_prepare')
            if self._prepared.get('error'):
                return None, None, None
            layout = name.split('_')[1]
            return (dict(provider='pachyderm', storage_id=self._prepared['storages'][layout],
                         count=sizes.export_annotations, profile=profile),
                    {'PACHYDERM_EXPORT_LAYOUT': layout}, self._prepared['data_dir'])
        if name == 'proxy':
            import os

            from label_studio_pachyderm import pachd

            size = sizes.proxy_mib * 1024 * 1024
            self.client.create_repo('default', 'bigfile', exist_ok=True)
            self.client.write_commit('default', 'bigfile', 'master',
                                     [pachd.FileOp.put('media/big.mp4', os.urandom(size))])
            return dict(address=self.pfs.address, repo='bigfile', path='media/big.mp4', size=size, passes=1,
                        range_bytes=sizes.range_mib * 1024 * 1024, profile=profile), None, None
        return None, None, None


def run_profile(config: Config) -> int:
    return ProfileRun(config).execute()


def _markdown(summaries, sizes) -> str:
    lines = ['# Profile of the Pachyderm storage (cProfile, measured block only)', '',
             'cProfile roughly doubles the time of Python-heavy code; read the shares, not the absolute seconds.',
             'Work on gRPC\'s own threads is not profiled: it shows as the caller waiting (queue.put, stream reads).',
             '']
    for name, title, unit, result, summary in summaries:
        lines += [f'## {title}', '']
        if result.get('error'):
            lines += [f'ERROR: {result["error"]}', '']
            continue
        items = result['items'] or 1
        seconds = result['seconds']
        lines += [
            f'{result["items"]:,} {unit} in {seconds:.2f} s under the profiler '
            f'({seconds / items * 1000:.2f} ms per item); SQL: {summary.get("sql_statements", 0):,} statements '
            f'({summary.get("sql_statements", 0) / items:.2f} per item), {summary.get("sql_seconds", 0):.2f} s.',
            '',
            '| Cost | Calls | Seconds (cumulative) | Share |', '|---|---|---|---|',
        ]
        for bucket in summary.get('buckets', []):
            share = bucket['seconds'] / seconds * 100 if seconds else 0
            lines.append(f'| {bucket["label"]} | {bucket["calls"]:,} | {bucket["seconds"]:.2f} | {share:.0f}% |')
        lines += ['', 'SQL statements by kind: ' + ', '.join(f'`{k}` x{n:,}' for k, n in summary.get('sql_kinds', [])),
                  '', '<details><summary>Top functions by cumulative time</summary>', '',
                  '| Function | Calls | Own s | Cumulative s |', '|---|---|---|---|']
        for row in summary.get('top_cumulative', []):
            lines.append(f'| `{row["function"]}` | {row["calls"]:,} | {row["own"]:.2f} | {row["cumulative"]:.2f} |')
        lines += ['', '</details>', '', '<details><summary>Top functions by own time</summary>', '',
                  '| Function | Calls | Own s | Cumulative s |', '|---|---|---|---|']
        for row in summary.get('top_own', []):
            lines.append(f'| `{row["function"]}` | {row["calls"]:,} | {row["own"]:.2f} | {row["cumulative"]:.2f} |')
        lines += ['', '</details>', '']
    lines += ['Sizes: ' + ', '.join(f'{k}={v}' for k, v in vars(sizes).items()), '']
    return '\n'.join(lines)
