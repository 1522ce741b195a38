"""Task files (.json/.jsonl): every per-file problem is a per-file error, never an aborted sync.

The sync tests run against real Label Studio models and API and the local PFS server over gRPC;
the parser tests feed ``taskfiles.parse_task_file`` directly, including a deterministic fuzz test
that checks it against Label Studio's own loader.
"""
import json

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from io_storages.utils import load_tasks_json_lso
from label_studio_pachyderm import pachd
from label_studio_pachyderm.imports import taskfiles
from label_studio_pachyderm.models import PachydermImportStorageLink
from tasks.models import Task


def put(client, repo, files):
    ops = [pachd.FileOp.put(p, d if isinstance(d, bytes) else d.encode()) for p, d in files.items()]
    return client.write_commit('default', repo, 'master', ops)


def parse(blob: bytes, chunk: int = 7):
    """(rows, row_errors, file_error) of a blob fed in chunks of ``chunk`` bytes."""
    chunks = [blob[i:i + chunk] for i in range(0, len(blob), chunk)]
    rows, row_errors, file_error = [], [], None
    try:
        for item in taskfiles.parse_task_file(chunks, 'k.json'):
            if isinstance(item, taskfiles.RowError):
                row_errors.append(item)
            else:
                rows.append((item.row_index, item.task_data))
    except taskfiles.TaskFileError as exc:
        file_error = str(exc)
    return rows, row_errors, file_error


# ----------------------------------------------------------------------------- a sync with bad files
@pytest.mark.django_db(transaction=True)
def test_bad_task_files_are_per_file_errors_and_good_files_import(api, text_project, pfs, pfs_client, settings,
                                                                   monkeypatch):
    settings.PACHYDERM_MAX_TASK_FILE_MB = 0.001  # 1,048 bytes
    pfs_client.create_repo('default', 'tasks')
    put(pfs_client, 'tasks', {
        'good.json': json.dumps([{'text': 'g1'}, {'data': {'text': 'g2'}}]),
        'strings.json': '["a", "b"]',
        'number.json': '5',
        'null.json': 'null',
        'mixed.jsonl': '{"text": "m0"}\n["not", "an", "object"]\n{"text": \n{"text": "m3"}\n',
        'latin1.json': '{"text": "caf\xe9"}'.encode('latin-1'),
        'skip.json': '{"text": "s", "allow_skip": "sometimes"}',
        'preds.json': '{"data": {"text": "p"}, "predictions": "all of them"}',
        'nul.json': '[{"text": "a\\u0000b"}, {"text": "after nul"}]',
        'big.json': json.dumps([{'text': 'x' * 100}] * 20),
    })
    read = []  # files whose content the sync took from pachd, alone or in a stream of several
    original, original_run = pachd.PachdClient.read_file, pachd.PachdClient.read_files

    def recording_read_file(self, project, repo, commit, path, *args, **kwargs):
        read.append(path.lstrip('/'))
        return original(self, project, repo, commit, path, *args, **kwargs)

    def recording_read_files(self, *args, **kwargs):
        for path, content in original_run(self, *args, **kwargs):
            if content is not None:
                read.append(path)
            yield path, content

    monkeypatch.setattr(pachd.PachdClient, 'read_file', recording_read_file)
    monkeypatch.setattr(pachd.PachdClient, 'read_files', recording_read_files)
    body = {'project': text_project.id, 'title': 'src', 'pachd_address': pfs.address, 'repo': 'tasks'}
    r = api.post('/api/storages/pachyderm', body, format='json')
    assert r.status_code == 201, r.content
    r = api.post(f'/api/storages/pachyderm/{r.json()["id"]}/sync', {}, format='json')
    assert r.status_code == 200, r.content
    storage = r.json()

    assert storage['status'] == 'completed_with_errors', storage
    texts = sorted(t.data['text'] for t in Task.objects.filter(project=text_project))
    assert texts == ['after nul', 'g1', 'g2', 'm0', 'm3']
    assert storage['last_sync_count'] == 5
    trace = storage['traceback']
    assert 'strings.json (row 0): a task must be a JSON object, this row is a JSON string' in trace
    assert 'strings.json (row 1)' in trace
    assert 'number.json: cannot load tasks' in trace and 'null.json: cannot load tasks' in trace
    assert 'mixed.jsonl (row 1): a task must be a JSON object, this row is a JSON array' in trace
    assert 'mixed.jsonl (row 2): line is not valid JSON' in trace
    assert 'latin1.json: cannot load tasks' in trace and 'utf-8' in trace
    assert 'skip.json (the file): "allow_skip" must be true or false' in trace
    assert 'preds.json (the file): "predictions" must be a list of JSON objects' in trace
    assert 'nul.json (row 0): it contains a NUL character' in trace
    assert 'big.json: ' in trace and 'PACHYDERM_MAX_TASK_FILE_MB' in trace
    assert 'big.json' not in read, 'a file over the limit must be refused before reading it'
    assert 'good.json' in read
    assert storage['meta']['files_failed'] == 9
    assert storage['meta']['rows_failed'] == 7
    # JSONL rows keep Label Studio's numbering: m3 is row 3 even though rows 1 and 2 were bad.
    rows = dict(PachydermImportStorageLink.objects.filter(key='mixed.jsonl').values_list('row_index', 'task__data'))
    assert sorted(rows) == [0, 3]


@pytest.mark.django_db(transaction=True)
def test_many_bad_rows_are_counted_not_listed_one_by_one(api, text_project, pfs, pfs_client):
    pfs_client.create_repo('default', 'tasks')
    lines = ''.join('"row %d"\n' % i if i % 2 else '{"text": "ok %d"}\n' % i for i in range(100))
    put(pfs_client, 'tasks', {'rows.jsonl': lines})
    body = {'project': text_project.id, 'title': 'src', 'pachd_address': pfs.address, 'repo': 'tasks'}
    sid = api.post('/api/storages/pachyderm', body, format='json').json()['id']
    storage = api.post(f'/api/storages/pachyderm/{sid}/sync', {}, format='json').json()
    assert storage['status'] == 'completed_with_errors'
    assert storage['last_sync_count'] == 50
    assert storage['meta']['rows_failed'] == 50
    trace = storage['traceback'].splitlines()
    assert len(trace) == 21 and trace[-1] == 'rows.jsonl: 30 more rows with problems, skipped'


# ----------------------------------------------------------------------------- the parser
def test_jsonl_is_parsed_as_a_stream():
    consumed = []

    def chunks():
        for i in range(1000):
            consumed.append(i)
            yield ('{"text": "%d"}\n' % i).encode()

    items = taskfiles.parse_task_file(chunks(), 'big.jsonl')
    assert next(items).task_data == {'text': '0'}
    # The first rows come out long before the end of the input has been read.
    assert len(consumed) < 1000
    assert sum(1 for _ in items) == 999 and len(consumed) == 1000


def test_json_array_is_parsed_as_a_stream():
    consumed = []

    def chunks():
        yield b'['
        for i in range(100_000):
            consumed.append(i)
            yield (',' if i else '').encode() + b'{"text": "%d"}' % i
        yield b']'

    items = taskfiles.parse_task_file(chunks(), 'big.json')
    assert next(items).row_index == 0
    assert len(consumed) < 100_000


def test_a_source_error_propagates_unchanged():
    class Boom(pachd.PachdUnavailable):
        pass

    def chunks(first):
        yield first
        raise Boom('cannot reach pachd')

    for first in (b'[{"a": 1}, ', b'{"a": 1}\n{"b"', b'{"a"'):
        with pytest.raises(Boom):
            list(taskfiles.parse_task_file(chunks(first), 'k.json'))


@pytest.mark.parametrize('blob, rows, bad_rows, file_error', [
    (b'{"a": 1}', [(None, {'a': 1})], [], None),
    (b' \n{\n  "a": 1\n}\n\n', [(None, {'a': 1})], [], None),
    (b'{"a": 1}\n\n', [(None, {'a': 1})], [], None),
    (b'{"a": 1}\n{"b": 2}', [(0, {'a': 1}), (1, {'b': 2})], [], None),
    (b'[]', [], [], None),
    (b'["a", 1, null, [], {"ok": true}]', [(4, {'ok': True})], [0, 1, 2, 3], None),
    (b'{"a": 1}\n7\n', [(0, {'a': 1})], [1], None),
    (b'[{"a": 1}, {"b": ', [(0, {'a': 1})], [], 'not valid JSON'),
    (b'', [], [], 'empty'),
    (b'   \n\t', [], [], 'empty'),
    (b'"text"', [], [], 'must start with'),
    (b'\xef\xbb\xbf{"a": 1}', [], [], 'the byte 0xef'),
    (b'{"a": NaN}', [], [], 'NaN is not valid JSON'),
    (b'{"a": "\xff"}', [], [], 'utf-8'),
    (b'[' * 100_000, [], [], 'nested deeper than 500 levels'),
    (b'{"a":' * 100_000, [], [], 'not valid JSON'),
    (b'{"a": 1}\n{"s": "\\ud800"}', [(0, {'a': 1})], [1], None),
], ids=lambda value: repr(value)[:40] if isinstance(value, bytes) else None)
def test_parser_cases(blob, rows, bad_rows, file_error):
    got_rows, got_errors, got_file_error = parse(blob)
    assert got_rows == rows
    assert [e.row_index for e in got_errors] == bad_rows
    if file_error is None:
        assert got_file_error is None
    else:
        assert got_file_error and file_error in got_file_error


# ----------------------------------------------------------------------------- fuzz, against LS's loader
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
_tasks = st.dictionaries(st.sampled_from(['text', 'data', 'allow_skip', 'predictions', 'annotations', 'x']),
                         _json_values, max_size=3)
_rows = st.lists(st.one_of(_tasks, _json_values), max_size=5)


@st.composite
def _task_file_bytes(draw):
    shape = draw(st.sampled_from(['array', 'object', 'jsonl', 'bytes', 'mutated']))
    if shape == 'array':
        blob = json.dumps(draw(_rows)).encode()
    elif shape == 'object':
        blob = json.dumps(draw(_tasks), indent=draw(st.sampled_from([None, 2]))).encode()
    elif shape == 'jsonl':
        sep = draw(st.sampled_from(['\n', '\r\n', '\n\n']))
        blob = sep.join(json.dumps(row) for row in draw(_rows)).encode()
    elif shape == 'bytes':
        blob = draw(st.binary(max_size=40))
    else:
        blob = bytearray(json.dumps(draw(_rows)).encode())
        for _ in range(draw(st.integers(1, 3))):
            if blob:
                blob[draw(st.integers(0, len(blob) - 1))] = draw(st.sampled_from(b'{}[]",:\n \x00\xff\x0c'))
        blob = bytes(blob)
    lead = draw(st.sampled_from([b'', b' ', b'\n\n', b'\t ']))
    return lead + blob


@hsettings(derandomize=True, max_examples=400, deadline=None, database=None,
           suppress_health_check=[HealthCheck.too_slow])
@given(blob=_task_file_bytes(), chunk=st.integers(1, 64))
def test_fuzz_parser_never_raises_and_agrees_with_label_studio(blob, chunk):
    rows, row_errors, file_error = parse(blob, chunk)  # any exception here fails the test
    assert all(isinstance(task, dict) for _, task in rows)
    assert all(taskfiles.row_problem(task) is None for _, task in rows)
    try:
        expected = [(o.row_index, o.task_data) for o in load_tasks_json_lso(blob, 'k.json')]
    except Exception:
        # Label Studio refuses the file: something must be reported, nothing imported beyond what
        # precedes the problem.
        assert file_error or row_errors
        return
    good = [(i, t) for i, t in expected if taskfiles.row_problem(t) is None]
    assert rows == good
    assert len(row_errors) == len(expected) - len(good)
    assert file_error is None
