"""Predictions latency: from a pipeline's FinishCommit of an output commit to its prediction visible
through Label Studio's API, with ``label-studio-pachyderm watch`` as its own process.

    .venv/bin/python -m bench.predictions_latency [--commits 50] [--out FILE]

One watched source storage on ``images@master`` with ``predictions_repo`` set to ``preds``, whose
``master`` branch has provenance on ``images@master`` (as a pipeline's output branch has: every
input commit opens an output commit of the same id). For each of ``--commits`` input commits of one
new image: the input commit lands, its task appears (the watcher's sync), then this process plays
the pipeline worker, writing the prediction file into the open output commit and finishing it;
the clock runs from FinishCommit's answer until ``GET /api/predictions/?task=`` lists the prediction.
Prints a Markdown table; ``--out FILE`` writes it there too.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from .watch import PNG, _percentile, print_table, setup_label_studio

BOX = [{'from_name': 'label', 'to_name': 'image', 'type': 'rectanglelabels',
        'value': {'x': 10, 'y': 10, 'width': 20, 'height': 20, 'rectanglelabels': ['Box']}}]


def _wait(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f'{what} after {seconds:.0f} s'
        time.sleep(0.02)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='python -m bench.predictions_latency', description=__doc__.splitlines()[0])
    parser.add_argument('--commits', type=int, default=50, help='input commits, each with its output (default 50)')
    parser.add_argument('--out', default='', help='also write the table to this file')
    args = parser.parse_args(argv)

    base, env, project, api = setup_label_studio('lsp-bench-predictions-')
    from label_studio_pachyderm import pachd
    from label_studio_pachyderm.localpfs import start_server
    from label_studio_pachyderm.models import PachydermImportStorage
    from pachyderm_sdk import Client
    from pachyderm_sdk.api import pfs
    from tasks.models import Task

    server = start_server('127.0.0.1', 0, os.path.join(base, 'pfs'))
    client = pachd.PachdClient(server.address)
    sdk = Client(host='127.0.0.1', port=server.port)
    client.create_repo('default', 'images')
    client.create_repo('default', 'preds')
    sdk.pfs.create_branch(branch=pfs.Branch.from_uri('preds@master'), provenance=[pfs.Branch.from_uri('images@master')])
    sdk.pfs.finish_commit(commit=pfs.Commit.from_uri('preds@master'))  # the output branch's first, empty head
    PachydermImportStorage.objects.create(project=project, title='images', pachd_address=server.address, repo='images',
                                          use_blob_urls=True, watch_commits=True, predictions_repo='preds')
    log = open(os.path.join(base, 'watch.log'), 'wb')
    cli = os.path.join(os.path.dirname(sys.executable), 'label-studio-pachyderm')
    watcher = subprocess.Popen([cli, 'watch'], env=env, stdout=log, stderr=subprocess.STDOUT)

    def prediction_listed(task_id: int) -> bool:
        return api.get(f'/api/predictions/?task={task_id}').json() != []

    after_finish = []
    try:
        _wait(lambda: server.open_subscriptions().get('default/preds@master'), 120, 'the watcher follows preds@master')
        for i in range(args.commits):
            path = f'img/{i:04}.png'
            commit = client.write_commit('default', 'images', 'master', [pachd.FileOp.put(path, PNG)])
            task_id = _wait(lambda: Task.objects.filter(project=project, meta__pachyderm__path=path)
                            .values_list('id', flat=True).first(), 60, f'the task of {path}')
            time.sleep(0.2)  # the input's sync is over: the output commit lands on a quiet watcher, as in life
            output = pfs.Commit(repo=pfs.Repo(name='preds'), id=commit)
            sdk.pfs.put_file_from_bytes(commit=output, path=f'img/{i:04}.json', data=json.dumps(BOX).encode())
            sdk.pfs.finish_commit(commit=output)
            finished = time.monotonic()
            _wait(lambda: prediction_listed(task_id), 60, f'the prediction of {path}')
            after_finish.append(time.monotonic() - finished)
    finally:
        watcher.terminate()
        watcher.wait(30)
        log.close()
        server.stop()
    load = ' '.join(open('/proc/loadavg').read().split()[:3]) if os.path.exists('/proc/loadavg') else ''
    table = '\n'.join([
        '| Output commits | from FinishCommit p50 (s) | p95 (s) | max (s) |', '|---|---|---|---|',
        f'| {len(after_finish)} | {statistics.median(after_finish):.2f} | {_percentile(after_finish, 95):.2f} | '
        f'{max(after_finish):.2f} |', '', f'Target: p95 at most 2 s. Load average at the end: {load}.'])
    print_table(table, args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
