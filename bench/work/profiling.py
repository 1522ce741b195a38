"""Where the measured block spends its time: cProfile plus a count of SQL statements.

Only the measured block is profiled (the same block the comparison times), so
Django start-up and fixture building do not show. cProfile sees the calling thread:
work on gRPC's own threads shows up as time the caller waits for them.
"""
from __future__ import annotations

import cProfile
import json
import pstats
import re
import time
from collections import Counter
from contextlib import contextmanager

from . import common

# Named costs: (label, regex on "file:line(function)" of pstats). The cumulative time of
# the best-matching entry is reported; nested entries of the same label are not added twice.
BUCKETS = [
    ('SQL: Django cursor execute (incl. SQLite)', r'django/db/backends/utils\.py:\d+\(_execute\)$'),
    ('LS serializer: .data (ExportData / StorageAnnotation)', r'rest_framework/serializers\.py:\d+\(data\)$'),
    ('plugin: client.list_files (WalkFile stream)', r'pachd/client\.py:\d+\(list_files\)$'),
    ('plugin: client.get_file_bytes (per task file)', r'pachd/client\.py:\d+\(get_file_bytes\)$'),
    ('plugin: client.write_commit (whole export write)', r'pachd/client\.py:\d+\(write_commit\)$'),
    ('  of which: waiting on the gRPC upload (queue.put)', r'queue\.py:\d+\(put\)$'),
    ('  of which: building ModifyFile requests', r'pachd/client\.py:\d+\(_modify_requests\)$'),
    ('betterproto: message parse', r'betterproto/__init__\.py:\d+\(parse\)$'),
    ('betterproto: message serialise', r'betterproto/__init__\.py:\d+\(__bytes__\)$'),
    ('plugin importer: _flush (bulk_create tasks+links)', r'importer\.py:\d+\(_flush\)$'),
    ('plugin importer: _process_paths', r'importer\.py:\d+\(_process_paths\)$'),
    ('plugin importer: _finish (webhooks, FSM, states)', r'importer\.py:\d+\(_finish\)$'),
    ('Django: QuerySet.bulk_create', r'django/db/models/query\.py:\d+\(bulk_create\)$'),
    ('LS: project.summary.update_data_columns', r'projects/models\.py:\d+\(update_data_columns\)$'),
    ('LS: project.update_tasks_states', r'projects/models\.py:\d+\(update_tasks_states\)$'),
    ('LS: backfill_fsm_states_for_tasks', r'fsm/functions\.py:\d+\(backfill_fsm_states_for_tasks\)$'),
    ('LS: storage.info_update_progress', r'io_storages/base_models\.py:\d+\(info_update_progress\)$'),
    ('LS: load_tasks_json', r'io_storages/utils\.py:\d+\(load_tasks_json\)$'),
    ('plugin exporter: _save_links', r'exporter\.py:\d+\(_save_links\)$'),
    ('Django test client: GET (whole request)', r'django/test/client\.py:\d+\(get\)$'),
    ('LS proxy: TaskResolveStorageUri.get', r'io_storages/proxy_api\.py:\d+\(get\)$'),
    ('plugin: get_bytes_stream (inspect + open)', r'label_studio_pachyderm/models\.py:\d+\(get_bytes_stream\)$'),
    ('plugin: client.inspect_file', r'pachd/client\.py:\d+\(inspect_file\)$'),
    ('LS proxy: time_limited_chunker (streaming the body)', r'io_storages/proxy_api\.py:\d+\(time_limited_chunker\)$'),
    ('plugin: FileStream.iter_chunks', r'pachd/streams\.py:\d+\(iter_chunks\)$'),
]


class _SqlCounter:
    def __init__(self):
        self.count = 0
        self.seconds = 0.0
        self.kinds = Counter()

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seconds += time.perf_counter() - started
            self.count += 1
            self.kinds[_statement_kind(sql)] += 1


def _statement_kind(sql: str) -> str:
    """'INSERT tasks_task', 'SELECT io_storages_pachyderm_...' : what and where, without values."""
    words = sql.split()
    verb = words[0].upper() if words else '?'
    match = re.search(r'(?:FROM|INTO|UPDATE)\s+"?([\w]+)"?', sql, re.IGNORECASE)
    return f'{verb} {match.group(1) if match else ""}'.strip()


def profiled(run, params: dict) -> None:
    from django.db import connection

    profiler = cProfile.Profile()
    sql = _SqlCounter()

    @contextmanager
    def hook():
        with connection.execute_wrapper(sql):
            profiler.enable()
            try:
                yield
            finally:
                profiler.disable()

    common.TIMED_HOOKS.append(hook)
    run(params)
    path = params['profile']
    profiler.dump_stats(path + '.prof')
    stats = pstats.Stats(profiler)
    summary = dict(
        sql_statements=sql.count, sql_seconds=sql.seconds, sql_kinds=sql.kinds.most_common(12),
        buckets=_buckets(stats), top_cumulative=_top(stats, 'cumulative', 25), top_own=_top(stats, 'tottime', 20),
    )
    with open(path + '.json', 'w') as out:
        json.dump(summary, out, indent=1)


def _label(func) -> str:
    filename, line, name = func
    short = re.sub(r'^.*/site-packages/', '', filename)
    short = re.sub(r'^.*/work/main/', '', short)
    return f'{short}:{line}({name})'


def _buckets(stats: pstats.Stats) -> list:
    found = []
    for label, pattern in BUCKETS:
        best = None
        for func, (cc, nc, tt, ct, callers) in stats.stats.items():
            if re.search(pattern, _label(func)) and (best is None or ct > best[1]):
                best = (nc, ct)
        if best:
            found.append(dict(label=label, calls=best[0], seconds=best[1]))
    return found


def _top(stats: pstats.Stats, key: str, n: int) -> list:
    index = 3 if key == 'cumulative' else 2
    rows = sorted(stats.stats.items(), key=lambda item: item[1][index], reverse=True)[:n]
    return [dict(function=_label(func), calls=nc, own=tt, cumulative=ct) for func, (cc, nc, tt, ct, _) in rows]
