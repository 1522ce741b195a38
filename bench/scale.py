"""The scale scenario (``--only scale``; not part of the default run): one very large repo, one
very large export.

* First sync of ``scale_files`` media files (default 1,000,000) and of a tenth of that in the
  same run: peak RSS of the large one, and its time per file against the small one's.
* Re-sync of the large repo after ``resync_added`` new files (one commit).
* The files preview and "Check connection" of the large storage, through Label Studio's
  request stack (``POST /api/storages/pachyderm/files`` and ``.../validate``).
* Export of ``scale_annotations`` annotations (default 100,000) in one commit, against Label
  Studio's S3 provider at ``scale_s3_annotations`` (it writes one object per request; the
  ratio is of the time per annotation, with both sizes stated).

Seeding a million files into the local PFS server takes most of the scenario's time; the
log says how long.
"""
from __future__ import annotations

import time

from . import content
from .report import Check
from .scenarios import PROJECT, _new_files, _row, _say


def scale(run) -> None:
    sizes = run.sizes
    big, small = sizes.scale_files, max(1, sizes.scale_files // 10)
    # The export first: it is the shorter half, so a run stopped during the long seeding still has it.
    # A size of 0 leaves that half out.
    if sizes.scale_annotations:
        _export(run, sizes.scale_annotations, sizes.scale_s3_annotations)
    if big:
        _imports(run, big, small)


# ----------------------------------------------------------------------------- the large repo
def _imports(run, big: int, small: int) -> None:
    added = run.sizes.resync_added
    scenario = f'7. Scale: first sync {big:,}'
    for count in (small, big):
        started = time.monotonic()
        run.seed_pfs(f'scale{count}', 'media', count)
        seeded = time.monotonic() - started
        _row(run, f'scale/seed{count}', f'7. Scale: seeding {count:,}', 'local PFS server (client writes)',
             dict(seconds=seeded, items=count), 'files', note=f'{run.sizes.seed_chunk:,} files per commit')

    fulls = {}
    for count in (small, big):
        repo = f'scale{count}'
        result = run.worker('full_sync', dict(provider='pachyderm', kind='media', count=count,
                                              address=run.pfs.address, repo=repo, prefix=content.MEDIA_DIR,
                                              title=repo), f'scale_full{count}')
        _say(run, f'pachyderm first sync {count:,}', result, 'tasks')
        _row(run, f'scale/full{count}', f'7. Scale: first sync {count:,}', 'pachyderm (first sync)', result, 'tasks')
        fulls[count] = result
    run.discard(fulls[small])
    run.table.checks += [
        Check(f'scale/full{big}', 'rss', None, 500, 'peak RSS'),
        Check(f'scale/full{big}', 'per_item', f'scale/full{small}', 1.5, f'{small:,}-file sync'),
    ]

    full = fulls[big]
    repo = f'scale{big}'
    run.client.write_commit(PROJECT, repo, 'master', _new_files(added), description='bench: new files')
    if full.get('error'):
        resync = checks = {'error': 'no first sync of the large repo'}
    else:
        checks = run.worker('storage_checks', dict(storage_id=full['storage_id'], limit=100),
                            'scale_checks', db_from=full['data_dir'])
        resync = run.worker('resync', dict(provider='pachyderm', storage_id=full['storage_id'], added=added),
                            'scale_resync', db_from=full['data_dir'])
        _say(run, f'pachyderm re-sync {big:,} + {added}', resync, 'new tasks')
    row = _row(run, 'scale/resync', f'7. Scale: re-sync {big:,} + {added} new', 'pachyderm (diff)', resync,
               'new tasks')
    row.metrics = {'seconds': resync.get('seconds')}
    run.table.checks.append(Check('scale/resync', 'at_most', limit=3, name='re-sync', metric='seconds', unit='s'))
    for key, label in (('files', f'files preview (first {100} files)'), ('validate', 'Check connection (validate)')):
        timing = checks.get(key) or {}
        result = dict(checks, seconds=timing.get('worst'), items=timing.get('requests', 0))
        if not checks.get('error'):
            run.log(f'  {label} on {big:,} files: worst {timing["worst"]:.2f} s of {timing["passes"]}')
        row = _row(run, f'scale/{key}', f'7. Scale: {big:,}-file repo', label, result, 'requests',
                   note=f'passes {timing.get("passes")}')
        row.metrics = {'worst': timing.get('worst')}
        run.table.checks.append(Check(f'scale/{key}', 'at_most', limit=2, name='slowest request', metric='worst',
                                      unit='s'))
    run.discard(checks)
    run.discard(resync)
    run.discard(full)


# ----------------------------------------------------------------------------- the large export
# The local PFS server (Python, SQLite) takes about a minute to apply a 100,000-file commit after
# the upload, several on a loaded machine: more than the run's 120 s call timeout, which a pachd
# answering in seconds never meets. The plugin's own setting, raised for this one process.
_EXPORT_ENV = {'PACHYDERM_GRPC_TIMEOUT': '900'}

def _export(run, count: int, s3_count: int) -> None:
    scenario = f'7. Scale: export {count:,} annotations'
    run.client.create_repo(PROJECT, 'scale_export', exist_ok=True)
    run.moto.command(op='bucket', bucket='scale-export')
    for key, n, repos, bucket in (('pachyderm', count, {'pachyderm': 'scale_export'}, 'unused'),
                                  ('s3', s3_count, {}, 'scale-export')):
        if not n:
            continue  # --scale-s3-annotations 0: no S3 peer in this run
        started = time.monotonic()
        prepared = run.worker('export_prepare', dict(count=n, address=run.pfs.address, pachyderm_repos=repos,
                                                     bucket=bucket), f'scale_export_prepare_{key}')
        run.log(f'  prepared {n:,} annotations for {key} in {time.monotonic() - started:.0f} s')
        if prepared.get('error'):
            _row(run, f'scale/export-{key}', scenario, key, prepared, 'annotations', items=n)
            continue
        result = run.worker('export_sync', dict(provider=key, storage_id=prepared['storages'][key], count=n),
                            f'scale_export_{key}', db_from=prepared['data_dir'], env=_EXPORT_ENV)
        if key == 's3' and not result.get('error'):
            objects = run.moto.count(bucket)
            if objects != n:
                result['error'] = f'{objects} objects in the bucket, expected {n}'
        label = 'pachyderm (one commit, task files)' if key == 'pachyderm' else f's3 (at {n:,})'
        _say(run, label, result, 'annotations')
        note = f'{result.get("commits")} commit' if 'commits' in result else ''
        _row(run, f'scale/export-{key}', scenario if key == 'pachyderm' else f'7. Scale: export {n:,} annotations',
             label, result, 'annotations', note=note)
        run.discard(result)
        run.discard(prepared)
    run.table.checks.append(Check('scale/export-pachyderm', 'rss', None, 500, 'peak RSS'))
    if s3_count:
        run.table.checks.append(Check('scale/export-pachyderm', 'per_item', 'scale/export-s3', None,
                                      f's3 at {s3_count:,}'))
