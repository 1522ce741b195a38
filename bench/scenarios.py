"""The scenarios: what is seeded where, which processes run, which rows and targets they give.

Contenders of one comparison run back to back, so they see the same machine load.
"""
from __future__ import annotations

import hashlib
import os
import time

from . import content
from .report import Check, Row

PROJECT = 'default'


def _row(run, key, scenario, contender, result, unit, items=None, note='') -> Row:
    return run.table.add(Row(
        key=key, scenario=scenario, contender=contender, items=items if items is not None else result.get('items', 0),
        unit=unit, seconds=result.get('seconds'), rss_mb=result.get('rss_mb'),
        rss_before_mb=result.get('rss_before_mb'), load=result.get('load'),
        note=note, error=result.get('error'),
    ))


def _say(run, label, result, unit):
    if not result.get('error'):
        run.log(f'  {label}: {result.get("items", 0):,} {unit} in {result["seconds"]:.2f} s, '
                f'peak RSS {result.get("rss_mb", 0):.0f} MB')


# ----------------------------------------------------------------------------- 1 and 2: imports
def _import(run, kind: str, count: int, scenario: str, key: str) -> None:
    repo = bucket = key
    prefix = content.MEDIA_DIR if kind == 'media' else content.TASK_DIR
    run.seed_pfs(repo, kind, count)
    run.seed_s3(bucket, kind, count)
    local_dir = run.seed_local(key, kind, count)
    contenders = [
        ('pachyderm', dict(provider='pachyderm', address=run.pfs.address, repo=repo, prefix=prefix)),
        ('s3', dict(provider='s3', bucket=bucket, prefix=prefix)),
        ('localfiles', dict(provider='localfiles', path=str(local_dir))),
    ]
    for name, params in contenders:
        result = run.worker('full_sync', dict(params, kind=kind, count=count, title=f'{key} {name}'),
                            f'{key}_{name}')
        _say(run, name, result, 'tasks')
        _row(run, f'{key}/{name}', scenario, name, result, 'tasks')
        run.discard(result)
    if kind == 'tasks':  # JSON tasks at media speed: >= 10x the S3 provider, >= 3x Local Files
        run.table.checks += [
            Check(f'{key}/pachyderm', 'speedup', f'{key}/s3', 10, 's3'),
            Check(f'{key}/pachyderm', 'speedup', f'{key}/localfiles', 3, 'localfiles'),
        ]
    else:
        run.table.checks += [
            Check(f'{key}/pachyderm', 'time', f'{key}/s3', 0.5, 's3'),
            Check(f'{key}/pachyderm', 'info', f'{key}/localfiles', None, 'localfiles'),
        ]


def import_media(run) -> None:
    _import(run, 'media', run.sizes.media_files, '1. Import media (blob mode)', 'media')


def import_tasks(run) -> None:
    _import(run, 'tasks', run.sizes.task_files, '2. Import JSON tasks (task mode)', 'tasks')


# ----------------------------------------------------------------------------- 3: re-sync
def resync(run) -> None:
    sizes = run.sizes
    for count, large in ((sizes.resync_small, False), (sizes.resync_large, True)):
        _resync(run, count, large, with_s3=run.config.s3_large or not large)


def _resync(run, count: int, large: bool, with_s3: bool) -> None:
    added = run.sizes.resync_added
    name = f'resync{count}'
    scenario = f'3. Re-sync {count:,} + {added} new'
    run.seed_pfs(name, 'media', count)
    if with_s3:
        run.seed_s3(name, 'media', count)

    # Pachyderm: a real full sync first (its time and peak RSS are rows of their own), then the re-sync.
    full = run.worker('full_sync', dict(provider='pachyderm', kind='media', count=count, address=run.pfs.address,
                                        repo=name, prefix=content.MEDIA_DIR, title=name), f'{name}_pachyderm_full')
    _say(run, f'pachyderm full sync {count:,}', full, 'tasks')
    _row(run, f'{name}/pachyderm-full', f'3. Full sync {count:,}', 'pachyderm (first sync)', full, 'tasks')
    if large:
        run.table.checks.append(Check(f'{name}/pachyderm-full', 'rss', None, 400, 'peak RSS'))
    prestate = None
    if with_s3:
        prestate = run.worker('s3_prestate', dict(bucket=name, prefix=content.MEDIA_DIR, count=count, title=name),
                              f'{name}_s3_prestate')

    # The change: `added` new files, one new commit / new objects.
    run.client.write_commit(PROJECT, name, 'master', _new_files(added), description='bench: new files')
    if with_s3:
        run.seed_s3(name, 'media', added, batch='new')

    if not full.get('error'):
        result = run.worker('resync', dict(provider='pachyderm', storage_id=full['storage_id'], added=added),
                            f'{name}_pachyderm_resync', db_from=full['data_dir'])
        _say(run, 'pachyderm re-sync', result, 'new tasks')
    else:
        result = {'error': 'no full sync to re-sync'}
    _row(run, f'{name}/pachyderm', scenario, 'pachyderm (diff)', result, 'new tasks')
    run.discard(full)
    run.discard(result)
    if with_s3:
        if not prestate.get('error'):
            result = run.worker('resync', dict(provider='s3', storage_id=prestate['storage_id'], added=added),
                                f'{name}_s3_resync', db_from=prestate['data_dir'])
            _say(run, 's3 re-sync', result, 'new tasks')
        else:
            result = {'error': 'no S3 prestate'}
        _row(run, f'{name}/s3', scenario, 's3 (lists all)', result, 'new tasks',
             note=f'lists {count + added:,} objects')
        run.discard(prestate)
        run.discard(result)
        run.table.checks.append(Check(f'{name}/pachyderm', 'speedup' if large else 'info', f'{name}/s3',
                                      10 if large else None, 's3'))


def _new_files(count: int):
    from label_studio_pachyderm import pachd

    return [pachd.FileOp.put(key, body) for key, body in content.objects('media', 0, count, batch='new')]


# ----------------------------------------------------------------------------- 4: export
def export(run) -> None:
    count = run.sizes.export_annotations
    repos = {'pachyderm': 'export_task', 'pachyderm-annotation': 'export_annotation'}
    for repo in (*repos.values(), 'export_each'):
        run.client.create_repo(PROJECT, repo, exist_ok=True)
    run.moto.command(op='bucket', bucket='export')
    prepared = run.worker('export_prepare', dict(count=count, address=run.pfs.address, pachyderm_repos=repos,
                                                 bucket='export'), 'export_prepare')
    scenario = f'4. Export {count:,} annotations'
    if prepared.get('error'):
        for name in ('pachyderm', 's3', 'one-commit-each'):
            _row(run, f'export/{name}', scenario, name, prepared, 'annotations', items=count)
        return
    storages = prepared['storages']

    contenders = [
        ('pachyderm', 'pachyderm (one commit, task files)', 'pachyderm', {'PACHYDERM_EXPORT_LAYOUT': 'task'}),
        ('pachyderm-annotation', 'pachyderm (one commit, annotation files)', 'pachyderm',
         {'PACHYDERM_EXPORT_LAYOUT': 'annotation'}),
        ('s3', 's3', 's3', {}),
    ]
    for key, label, provider, env in contenders:
        result = run.worker('export_sync', dict(provider=provider, storage_id=storages[key], count=count),
                            f'export_{key}', db_from=prepared['data_dir'], env=env)
        if key == 's3' and not result.get('error'):
            objects = run.moto.count('export')
            if objects != count:
                result['error'] = f'{objects} objects in the bucket, expected {count}'
        _say(run, label, result, 'annotations')
        note = f'{result.get("commits")} commit' if 'commits' in result else ''
        _row(run, f'export/{key}', scenario, label, result, 'annotations', note=note)
        run.discard(result)

    limit = run.sizes.per_commit_annotations or count
    result = run.worker('per_commit', dict(project_id=prepared['project_id'], address=run.pfs.address,
                                           repo='export_each', limit=min(limit, count)),
                        'export_one_commit_each', db_from=prepared['data_dir'])
    _say(run, 'one commit per annotation', result, 'annotations')
    row = _row(run, 'export/one-commit-each', scenario, 'one commit per annotation', result, 'annotations')
    if limit < count and not result.get('error'):
        # Clearly marked: measured on `limit` annotations, scaled linearly to `count`.
        row.seconds = result['seconds'] * count / limit
        row.items = count
        row.extrapolated = True
    run.discard(result)
    run.discard(prepared)
    run.table.checks += [
        Check('export/pachyderm', 'time', 'export/s3', 0.5, 's3'),
        Check('export/pachyderm', 'speedup', 'export/one-commit-each', 20, 'one-commit-each'),
        Check('export/pachyderm-annotation', 'info', 'export/s3', None, 's3'),
        Check('export/pachyderm-annotation', 'info', 'export/one-commit-each', None, 'one-commit-each'),
    ]


# ----------------------------------------------------------------------------- 5: proxy streaming
def proxy(run) -> None:
    from label_studio_pachyderm import pachd

    size = run.sizes.proxy_mib * 1024 * 1024
    repo, path = 'bigfile', 'media/big.mp4'
    run.client.create_repo(PROJECT, repo, exist_ok=True)
    started = time.monotonic()
    body = os.urandom(size)
    run.client.write_commit(PROJECT, repo, 'master', [pachd.FileOp.put(path, body)])
    run.log(f'  seeded pfs {repo}: one {run.sizes.proxy_mib} MiB file in {time.monotonic() - started:.0f} s')
    # Every contender's bytes are compared with these (on an untimed pass of the same path).
    common = dict(address=run.pfs.address, repo=repo, path=path, size=size, passes=run.sizes.proxy_passes,
                  sha256=hashlib.sha256(body).hexdigest())
    del body
    scenario = f'5. Stream {run.sizes.proxy_mib} MiB'
    raw = run.worker('raw_read', common, 'proxy_raw_read')
    _mib(raw)
    _say(run, 'raw client read', raw, 'MiB')
    _row(run, 'proxy/raw', scenario, 'PachdClient.read_file (no LS)', raw, 'MiB')
    run.discard(raw)
    # As a media element asks (audio, video): consecutive Range requests of at most Label
    # Studio's RESOLVER_PROXY_MAX_RANGE_SIZE; as an <img> asks: one GET of the whole file.
    # Targets: ranges pay Label Studio's per-request cost 32 times, so they may keep less.
    for key, range_mib, label, target in (
            ('proxy/ls', run.sizes.range_mib, f'LS proxy, {run.sizes.range_mib} MiB ranges', 0.8),
            ('proxy/ls-whole', 0, 'LS proxy, whole file (no Range)', 0.9)):
        proxied = run.worker('proxy', dict(common, range_bytes=range_mib * 1024 * 1024), key.replace('/', '_'))
        _mib(proxied)
        _say(run, label, proxied, 'MiB')
        _row(run, key, scenario, label, proxied, 'MiB')
        run.discard(proxied)
        run.table.checks.append(Check(key, 'throughput', 'proxy/raw', target, 'raw read'))


# ----------------------------------------------------------------------------- 7: predictions
def predictions(run) -> None:
    """A model's predictions onto tasks that exist: read from an output repo by a Sync, against Label
    Studio's own import of the same predictions (one JSON body), each on a copy of one database."""
    from label_studio_pachyderm import pachd

    from .work.predictions import prediction_files

    count = run.sizes.predictions
    run.seed_pfs('predict_images', 'media', count)
    run.client.create_repo(PROJECT, 'predict_output', exist_ok=True)
    started = time.monotonic()
    files = list(prediction_files(count))
    for offset in range(0, count, run.sizes.seed_chunk):
        run.client.write_commit(PROJECT, 'predict_output', 'master',
                                (pachd.FileOp.put(path, body) for path, body in files[offset:offset + run.sizes.seed_chunk]))
    run.log(f'  seeded pfs predict_output: {count:,} prediction files in {time.monotonic() - started:.0f} s')
    prepared = run.worker('predictions_prepare', dict(count=count, address=run.pfs.address, repo='predict_images',
                                                      prefix='img'), 'predictions_prepare')
    scenario = f'7. Attach {count:,} predictions to existing tasks'
    contenders = (('predictions/pachyderm', 'pachyderm (Sync reads the output repo)', 'predictions_attach'),
                  ('predictions/ls', 'LS POST /api/projects/<id>/import/predictions', 'predictions_import_ls'))
    for key, label, job in contenders:
        result = prepared if prepared.get('error') else run.worker(
            job, dict(count=count, storage_id=prepared['storage_id'], project_id=prepared['project_id'],
                      predictions_repo='predict_output'), key.replace('/', '_'), db_from=prepared['data_dir'])
        _say(run, label, result, 'predictions')
        _row(run, key, scenario, label, result, 'predictions', items=count)
        run.discard(result)
    run.discard(prepared)
    run.table.checks += [
        Check('predictions/pachyderm', 'speedup', 'predictions/ls', 3, 'LS import API'),
        Check('predictions/pachyderm', 'rss', limit=400),
    ]


def _mib(result: dict) -> None:
    if 'items' in result:
        result['items'] = result['items'] // (1024 * 1024)


# ----------------------------------------------------------------------------- 6: concurrent annotators
_ANNOTATOR_CONFIGS = (('baseline', 'no export storage (baseline)', '', False),
                      ('inline', 'pachyderm target, inline', 'annotators_inline', False),
                      ('rq', 'pachyderm target, RQ (2 workers)', 'annotators_rq', True))
_PHASES = {'saturated': 'back to back', 'paced': 'paced'}


def annotators(run) -> None:
    """Annotators submitting through a real Label Studio server: no target, inline export, RQ export."""
    from . import annotators as work

    seconds, count = run.sizes.annotators_seconds, run.sizes.annotators
    pace = run.sizes.annotators_pace_ms / 1000
    tasks = max(100, 25 * seconds)
    run.log(f'  load before: {work.loadavg()}')
    reference = work.reference_commits(run, 15)
    results = work.measure_all(run, [(key, repo, rq) for key, _, repo, rq in _ANNOTATOR_CONFIGS], seconds, count,
                               tasks, pace=pace, slices=run.sizes.annotators_slices, log=run.log,
                               database=run.config.annotators_db)
    for key, label, repo, rq in _ANNOTATOR_CONFIGS:
        result = results[key]
        if result.get('error'):
            run.log(f'  {label}: ERROR {result["error"]}')
        for phase, r in result['phases'].items():
            run.log(f'  {label}, {_PHASES[phase]}: {r["submits"]:,} submits, {r["rate"]:.1f}/s, p50 {r["p50"]:.0f} ms, '
                    f'p95 {r["p95"]:.0f} ms, max {r["max"]:.0f} ms'
                    + (f', {r.get("commits")} commits, all in the repo at most {_s(r.get("drain_seconds"))} s '
                       f'(median {_s(r.get("drain_median"))} s) after the last submit of a slice' if repo else ''))
        for line in result['problems'][:5]:
            run.log(f'    log: {line}')
    reference += work.reference_commits(run, 15)
    commit_ms = work.percentile([s * 1000 for s in reference], 50)
    run.log(f'  one small commit (client): p50 {commit_ms:.1f} ms over {len(reference)}; load after: {work.loadavg()}')
    base = results['baseline']
    for key, result in results.items():
        for phase, r in result['phases'].items():
            b = base['phases'].get(phase)
            if key != 'baseline' and b:
                r['added_p50'] = r['p50'] - b['p50']
                r['added_p95'] = r['p95'] - b['p95']
        result['error'] = result.get('error') or _annotator_errors(result, key != 'baseline')
    _annotator_rows(run, results, reference, commit_ms, seconds, count, pace, run.config.annotators_db)
    limit = work.COALESCE_SECONDS + 2
    for phase in _PHASES:
        if phase not in base['phases'] and not base.get('error'):
            continue
        for key, added in (('inline', 20), ('rq', 10)):  # the targets: added p95 at most 20 ms inline, 10 ms RQ
            run.table.checks += [
                Check(f'annotators/{key}/{phase}', 'at_most', limit=0, name='lost annotations', metric='lost'),
                Check(f'annotators/{key}/{phase}', 'at_most', limit=added, name='added p95 latency',
                      metric='added_p95', unit='ms'),
                Check(f'annotators/{key}/{phase}', 'at_most', limit=limit, name='all exported after last submit',
                      metric='drain_seconds', unit='s'),
                Check(f'annotators/{key}/{phase}', 'at_most', limit=0.99, name='commits per submit (fewer commits)',
                      metric='commits_per_submit'),
            ]


def _s(value) -> str:
    return f'{value:.2f}' if isinstance(value, (int, float)) else 'n/a'


def _annotator_errors(result: dict, exported: bool) -> str:
    """A configuration that did less than asked gives an error, not a number."""
    from .annotators import DRAIN_LIMIT

    problems = []
    if result.get('failures'):
        problems.append(f'{len(result["failures"])} submits failed (first: {result["failures"][0]})')
    if exported and result['phases']:
        for phase, r in result['phases'].items():
            if r.get('lost') or result.get('lost'):
                problems.append(f'{phase}: {r.get("lost") or result.get("lost")} annotations not in the repo {DRAIN_LIMIT:.0f} s after the '
                                f'last submit (e.g. {(r.get("missing") or result.get("missing") or [])[:3]})')
        if result.get('unfinished'):
            problems.append(f'unfinished commit {result["unfinished"]} left on the branch')
        if result.get('pending_exports') != 0:
            problems.append(f'outbox holds {result.get("pending_exports")} rows at the end')
    return '; '.join(problems) or None


def _annotator_rows(run, results, reference, commit_ms, seconds, count, pace, database) -> None:
    labels = {key: label for key, label, _, _ in _ANNOTATOR_CONFIGS}
    for phase, how in _PHASES.items():
        if not any(phase in r['phases'] for r in results.values()):
            continue
        scenario = (f'6. {count} annotators ({database}), {seconds} s, ' +
                    ('back to back' if phase == 'saturated' else f'1 submit/{pace:g} s each'))
        for key, result in results.items():
            r = result['phases'].get(phase, {})
            loads = [float(x.split()[0]) for x in (result.get('load_before', ''), result.get('load_after', ''))
                     if x and x != '?']
            row = run.table.add(Row(
                key=f'annotators/{key}/{phase}', scenario=scenario, contender=labels[key], items=r.get('submits', 0),
                unit='submits', seconds=r.get('window'), rss_mb=result.get('rss_mb'),
                load=max(loads) if loads else None, error=result.get('error') if r or result.get('error') else
                'not measured'))
            row.metrics = {k: r.get(k) for k in ('lost', 'added_p95', 'drain_seconds')}
            if r.get('commits') is not None and r.get('submits'):
                row.metrics['commits_per_submit'] = r['commits'] / r['submits']
    row = run.table.add(Row(key='annotators/commit', scenario=f'6. {count} annotators', items=len(reference),
                            contender='one small commit (client, reference)', unit='commits', seconds=sum(reference)))
    row.metrics = {'p50_ms': commit_ms}
    run.table.sections.append(_annotator_section(results, reference, commit_ms, pace, database))


def _annotator_section(results, reference, commit_ms, pace, database) -> str:
    from .annotators import COALESCE_SECONDS, percentile

    def ms(value):
        return f'{value:.1f}' if isinstance(value, (int, float)) else ''

    head = ['Configuration', 'Phase', 'Submits', 'Failed', 'Submits/s', 'p50 ms', 'p95 ms', 'max ms', 'added p50 ms',
            'added p95 ms', 'Commits', 'All in repo after last submit: max (median) s', 'Lost', 'Load before -> after',
            'Server peak RSS (MB)']
    lines = [f'### Concurrent annotators (export outbox), Label Studio on {database}', '',
             '| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for key, result in results.items():
        exported = key != 'baseline'
        for phase, r in result['phases'].items():
            lines.append('| ' + ' | '.join([
                key, 'back to back' if phase == 'saturated' else f'1 submit/{pace:g} s each', f'{r["submits"]}',
                f'{len(r["failures"])}', ms(r['rate']), ms(r['p50']), ms(r['p95']), ms(r['max']),
                ms(r.get('added_p50')), ms(r.get('added_p95')), f'{r.get("commits", "")}' if exported else '',
                f'{ms(r.get("drain_seconds"))} ({ms(r.get("drain_median"))})' if exported else '', f'{r.get("lost", "")}' if exported else '',
                f'{result.get("load_before", "")} -> {result.get("load_after", "")}', ms(result.get('rss_mb')),
            ]) + ' |')
    lines += ['', f'One small commit through the client (reference): p50 {commit_ms:.1f} ms, '
                  f'p95 {percentile([s * 1000 for s in reference], 95):.1f} ms over {len(reference)} commits. '
                  f'Coalesce window {COALESCE_SECONDS:g} s.', '']
    for key, result in results.items():
        if key != 'baseline' and 'pending_exports' in result:
            lines.append(f'- {key} at the end: unfinished commit {result.get("unfinished") or "none"}, '
                         f'outbox rows {result.get("pending_exports")}, last export error '
                         f'{result.get("export_error") or "none"}')
        if result.get('error'):
            lines.append(f'- {key}: ERROR {result["error"]}')
        for line in result.get('problems', [])[:8]:
            lines.append(f'- {key} log: `{line}`')
    return '\n'.join(lines)
