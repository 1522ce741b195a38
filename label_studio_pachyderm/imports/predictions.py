"""Predictions from a pipeline's output repo, attached to the tasks whose bytes they were computed from.

A source storage with ``predictions_repo`` set reads, for each task, a prediction file in that repo:
its path comes from the task file's path by ``predictions_path`` (``{dir}``, ``{stem}``, ``{ext}``,
``{path}``; default ``{dir}/{stem}.json``, so ``cats/1.jpg`` -> ``cats/1.json``), and its commit by
``predictions_match``:

* ``commit_set`` (default): the output commits computed from the task's own commit. A Pachyderm
  pipeline writes its output in a commit with the input commit's id (pachd's global ids), so a
  task pinned to commit C reads ``<predictions_repo>@C``; a rerun of the pipeline on the same
  input (its spec changed, a reprocess) is a new output commit, with a new id, whose provenance
  holds C, and is read too. Both are found with one WalkCommitSubvenance per sync (a pachd without
  it: the same id only). A task never gets a prediction computed from other bytes. Until one of
  them has finished, the task waits (the next sync looks again).
* ``branch_head``: the head of ``predictions_branch``, for predictions a script writes.

Attached as Label Studio Predictions, ``model_version`` ``<predictions_repo>@<commit>`` unless the
file names one, at most once per task and output commit, so a rerun of the pipeline (a new output
commit) adds a new prediction and a repeated sync adds none. An output commit finished with an error
is skipped and named in the sync's meta. Annotations are never touched. The task's
``meta.pachyderm`` records the output repo and commit (``predictions_repo``, ``predictions_commit``);
export commits name them (``exports/writer.py``).
"""
from __future__ import annotations

import collections
import json
import logging
import posixpath
import string
from dataclasses import dataclass, field
from typing import Optional

from .. import pachd

logger = logging.getLogger(__name__)

PLACEHOLDERS = ('dir', 'stem', 'ext', 'path')
DEFAULT_TEMPLATE = '{dir}/{stem}.json'
MATCHES = ('commit_set', 'branch_head')


# ----------------------------------------------------------------------------- the path template
def template_problem(template: str) -> Optional[str]:
    """Why ``template`` cannot name a prediction file (None when it can)."""
    try:
        parts = list(string.Formatter().parse(template or ''))
    except ValueError as exc:
        return f'{template!r} is not a path template: {exc}'
    names = [name for _, name, _, _ in parts if name is not None]
    unknown = [name for name in names if name not in PLACEHOLDERS]
    if unknown:
        return (f'unknown placeholder {{{unknown[0]}}}: use ' + ', '.join(f'{{{p}}}' for p in PLACEHOLDERS))
    if any(spec or conversion for _, name, spec, conversion in parts if name is not None):
        return 'placeholders take no format spec or conversion'
    if not names:
        return 'the template must use at least one placeholder, else every task reads the same file'
    literal = ''.join(text for text, _, _, _ in parts)
    if '..' in literal.replace('\\', '/').split('/'):
        return 'the template must stay inside the repo: no ".." path elements'
    if not prediction_path(template, 'a/b.png'):
        return 'the template names no file'
    return None


def prediction_path(template: str, path: str) -> str:
    """The prediction file of the task file ``path`` (repo-relative, no leading slash)."""
    path = path.lstrip('/')
    directory, name = posixpath.split(path)
    stem, ext = posixpath.splitext(name)
    filled = template.format(dir=directory, stem=stem, ext=ext.lstrip('.'), path=path)
    normal = posixpath.normpath('/' + filled).lstrip('/')
    return '' if normal in ('', '.') else normal


# ----------------------------------------------------------------------------- file shapes
def parse(content: bytes, path: str) -> list:
    """The predictions of one file: [{'result': [...], 'score': float|None, 'model_version': str|None}].

    Accepted: a list of result items; an object with ``result`` (and ``score``, ``model_version``);
    a list of such objects; a Label Studio task holding ``predictions``. Anything else is a
    ValueError naming the file."""
    try:
        body = json.loads(content)
    except ValueError as exc:
        raise ValueError(f'{path}: not JSON ({exc})') from None
    if isinstance(body, dict) and 'predictions' in body:
        body = body['predictions']
        if not isinstance(body, list):
            raise ValueError(f'{path}: "predictions" must be a list')
    if isinstance(body, dict):
        return [_one(body, path)]
    if isinstance(body, list):
        if body and all(isinstance(item, dict) and 'result' in item for item in body):
            return [_one(item, path) for item in body]
        if all(isinstance(item, dict) and ('value' in item or 'type' in item) for item in body):
            return [{'result': body, 'score': None, 'model_version': None}]
    raise ValueError(f'{path}: expected a list of result items, an object with "result", a list of those, or '
                     'a task with "predictions"')


def _one(item: dict, path: str) -> dict:
    result = item.get('result')
    if not isinstance(result, list) or not all(isinstance(r, dict) for r in result):
        raise ValueError(f'{path}: "result" must be a list of result items (objects)')
    score = item.get('score')
    if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
        raise ValueError(f'{path}: "score" must be a number')
    version = item.get('model_version')
    if version is not None and not isinstance(version, str):
        raise ValueError(f'{path}: "model_version" must be a string')
    return {'result': result, 'score': score, 'model_version': version}


# ----------------------------------------------------------------------------- attaching
@dataclass
class Outcome:
    attached: int = 0
    waiting: int = 0  # tasks whose output commit has not finished yet
    errors: list = field(default_factory=list)
    failed_commits: list = field(default_factory=list)  # output commits finished with an error


def attach_ready(storage, link_class) -> Outcome:
    """Attach every prediction that is ready to the storage's current tasks that lack it; see the
    module docstring. Never raises for one file or one commit: those go into the outcome. Output
    commits are read only for tasks that have not read them yet."""
    from tasks.models import Task

    outcome = Outcome()
    if not storage.predictions_repo:
        return outcome
    client = storage.get_client()
    current = link_class.objects.filter(storage=storage, object_exists=True)
    links = list(current.values_list('task_id', 'key', 'commit'))
    # a subquery, not a list of ids: tens of thousands of parameters cost more than the rows
    metas = dict(Task.objects.filter(id__in=current.values('task_id')).values_list('id', 'meta'))
    if storage.predictions_match == 'branch_head':
        head = _branch_head_ready(client, storage, outcome)
        wanted = {head: [(task_id, key) for task_id, key, _ in links]} if head else {}
    else:
        by_input = {}
        for task_id, key, commit in links:
            if commit:
                by_input.setdefault(commit, []).append((task_id, key))
        wanted = _wanted_by_commit_set(client, storage, by_input, outcome)
    template = storage.predictions_path or DEFAULT_TEMPLATE
    for output, pairs in wanted.items():
        # in the order of their prediction files, so that one stream of the output commit serves every chunk
        unread = sorted(((task_id, prediction_path(template, key)) for task_id, key in pairs
                         if output not in _outputs_read(metas.get(task_id))), key=lambda pair: pair[1])
        files = _OutputFiles(client, storage, output, streamed=len(unread) >= _STREAM_MIN)
        try:
            for start in range(0, len(unread), _TASKS_PER_WRITE):
                _attach(storage, output, unread[start:start + _TASKS_PER_WRITE], files, metas, outcome)
        finally:
            files.close()
    return outcome


def _wanted_by_commit_set(client, storage, by_input: dict, outcome) -> dict:
    """{good output commit id: [(task_id, key), ...]} under ``commit_set``: for each input commit, every
    finished output commit of ``predictions_repo`` computed from it; its tasks wait while it has none."""
    outputs = _outputs_of(client, storage, list(by_input))
    wanted, failed = {}, set()
    for commit, pairs in by_input.items():
        good = [info.id for info in outputs.get(commit, ()) if info.good]
        for info in outputs.get(commit, ()):
            if info.finished and info.error and info.id not in failed:
                failed.add(info.id)
                outcome.failed_commits.append({'commit': info.id, 'error': info.error})
        if not good:
            outcome.waiting += len(pairs)
        for output in good:
            wanted.setdefault(output, []).extend(pairs)
    return wanted


_STARTS_PER_WALK = 500  # input commits per WalkCommitSubvenance call: keeps each request small


def _outputs_of(client, storage, inputs: list) -> dict:
    """{input commit id: [CommitInfo of an output commit in predictions_repo, ...]}: the commits one step
    below each input commit (WalkCommitSubvenance, max_depth 1), mapped back by their direct provenance.
    Against a pachd without that call, the output commit of the same id, if there is one."""
    project, source, repo = storage.project_name, storage.repo, storage.predictions_repo
    found, asked = {}, set(inputs)
    try:
        for start in range(0, len(inputs), _STARTS_PER_WALK):
            for info in client.commit_subvenance(project, source, inputs[start:start + _STARTS_PER_WALK], max_depth=1):
                if (info.project, info.repo) != (project, repo):
                    continue
                for prov_project, prov_repo, prov_id in info.provenance:
                    if (prov_project, prov_repo) == (project, source) and prov_id in asked:
                        found.setdefault(prov_id, {})[info.id] = info
        return {commit: list(by_id.values()) for commit, by_id in found.items()}
    except pachd.PachdNotFound:
        pass  # an input commit is gone (squashed, dropped): ask about each below
    except pachd.PachdError as exc:
        if exc.code != 'UNIMPLEMENTED':
            raise
    for commit in inputs:
        try:
            found[commit] = [client.inspect_commit(project, repo, commit)]
        except pachd.PachdNotFound:
            pass  # the pipeline has not started on that input (or has no output for it)
    return found


def _outputs_read(meta) -> tuple:
    """The output commits already read for a task (``meta.pachyderm.predictions_commits``)."""
    return tuple(((meta or {}).get('pachyderm') or {}).get('predictions_commits') or ())


def _branch_head_ready(client, storage, outcome) -> str:
    """Under ``branch_head``: the id of the predictions branch's head once it finished without error, else ''
    and why in ``outcome`` (a missing branch is an error, an open head is waiting, a failed one is named)."""
    try:
        info = client.inspect_commit(storage.project_name, storage.predictions_repo, storage.predictions_branch or 'master')
    except pachd.PachdNotFound as exc:
        outcome.errors.append(f'predictions: {exc}')
        return ''
    if not info.finished:
        outcome.waiting += 1
        return ''
    if info.error:
        outcome.failed_commits.append({'commit': info.id, 'error': info.error})
        return ''
    return info.id


_TASKS_PER_WRITE = 500  # tasks whose predictions are written in one transaction
_STREAM_MIN = 16  # from this many files of one output commit on, read them in one GetFileTAR stream


def _attach(storage, output: str, pairs: list, files, metas: dict, outcome) -> None:
    """Attach the predictions of these tasks (``(task_id, prediction path)``, in path order) from one output
    commit, and note on each task that it was read: in one transaction, so a sync that dies between them
    reads it again rather than attaching twice."""
    from django.db import transaction
    from tasks.models import Prediction

    repo = storage.predictions_repo
    contents = files.take(sorted({path for _, path in pairs}))
    made = []
    for task_id, path in pairs:
        try:
            found = parse(contents[path], path) if contents.get(path) is not None else []
        except ValueError as exc:
            outcome.errors.append(f'predictions {repo}@{output}: {exc}')
            found = []
        made += [Prediction(task_id=task_id, project_id=storage.project_id,
                            result=Prediction.prepare_prediction_result(item['result'], storage.project),
                            score=item['score'], model_version=item['model_version'] or f'{repo}@{output}')
                 for item in found]
        metas[task_id] = _noted(metas.get(task_id) or {}, f'{storage.project_name}/{repo}', output)
    with transaction.atomic():
        Prediction.objects.bulk_create(made, batch_size=_TASKS_PER_WRITE)
        _count_on_tasks(made)
        _write_metas({task_id: metas[task_id] for task_id, _ in pairs})
    outcome.attached += len(made)


def _count_on_tasks(made: list) -> None:
    """Add the new predictions to LS's ``total_predictions`` of their tasks, as LS's own signal does for one
    prediction: an increment in the database (one UPDATE per distinct count), where LS's
    update_tasks_counters would recount every task's annotations and predictions."""
    from django.db.models import F
    from tasks.models import Task

    by_count = {}
    for task_id, count in collections.Counter(prediction.task_id for prediction in made).items():
        by_count.setdefault(count, []).append(task_id)
    for count, ids in by_count.items():
        Task.objects.filter(id__in=ids).update(total_predictions=F('total_predictions') + count)


def _write_metas(metas: dict) -> None:
    """Each task's new ``meta``, one parametrised UPDATE per task in one executemany: Django's bulk_update
    builds a CASE expression per row, which costs more than the predictions themselves."""
    from django.db import connection
    from tasks.models import Task

    field = Task._meta.get_field('meta')
    with connection.cursor() as cursor:
        cursor.executemany(
            f'UPDATE {connection.ops.quote_name(Task._meta.db_table)} SET {connection.ops.quote_name(field.column)} = %s '
            f'WHERE {connection.ops.quote_name(Task._meta.pk.column)} = %s',
            [(field.get_db_prep_save(meta, connection), task_id) for task_id, meta in metas.items()])


_END = '\U0010ffff'  # sorts after every path


class _OutputFiles:
    """The prediction files of one output commit, taken in path order, chunk after chunk. With ``streamed``,
    one GetFileTAR of every file the template can name serves all the chunks in turn (a path it passes
    over without bringing is not there); otherwise, and for files too big for the stream, one GetFile each."""

    def __init__(self, client, storage, output: str, streamed: bool):
        self.client, self.project, self.repo, self.output = client, storage.project_name, storage.predictions_repo, output
        self.glob = _glob_of(storage.predictions_path)
        self.streamed = streamed
        self.stream = None
        self.ahead = None  # the first file past the last chunk taken
        self.seen_until = ''  # every path up to this one was in the stream, if it is there at all (_END: every path)
        self.last = {}  # the previous chunk's files: tasks of one task file share a path across chunks

    def take(self, paths: list) -> dict:
        """{path: content} of the files there are among ``paths`` (sorted, none before those taken before)."""
        contents = {path: self.last[path] for path in paths if path in self.last}
        big = set()
        if self.streamed and self.seen_until != _END:
            try:
                self._stream_until(paths, contents, big)
            except pachd.PachdNotFound:
                self.seen_until = _END  # the glob matches nothing: no file is there
            except pachd.PachdError as exc:
                logger.info('predictions: streaming %s@%s failed (%s); reading file by file', self.repo, self.output, exc)
                self.streamed = False
        for path in paths:
            if path not in contents and (path in big or path > self.seen_until or not self.streamed):
                try:
                    contents[path] = self.client.get_file_bytes(self.project, self.repo, self.output, path)
                except pachd.PachdNotFound:
                    pass  # no prediction for this file in that commit
        self.last = contents
        return contents

    def _stream_until(self, paths: list, contents: dict, big: set) -> None:
        if self.stream is None:
            self.stream = self.client.read_files(self.project, self.repo, self.output, self.glob, start=paths[0])
        wanted = set(paths)
        while True:
            item, self.ahead = self.ahead or next(self.stream, None), None
            if item is None:
                self.seen_until = _END
                return
            path, content = item
            if path > paths[-1]:
                self.ahead, self.seen_until = item, paths[-1]
                return
            if path in wanted:
                if content is None:
                    big.add(path)
                else:
                    contents[path] = content

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()


def _glob_of(template: str) -> str:
    """A pachd glob matching every file the template can name: ``**`` and the template's literal ending
    (``{dir}/{stem}.json`` -> ``**.json``) when it has one free of glob characters and slashes."""
    parts = list(string.Formatter().parse(template or DEFAULT_TEMPLATE))
    ending = parts[-1][0] if parts and parts[-1][1] is None else ''
    if not ending or '/' in ending or any(char in pachd.GLOB_CHARACTERS or char == '\\' for char in ending):
        return '**'
    return '**' + ending


def _noted(meta: dict, repo: str, output: str) -> dict:
    """The task's meta, noting that this output commit was read for it (also when it had no file)."""
    lineage = dict(meta.get('pachyderm') or {})
    lineage.update(predictions_repo=repo, predictions_commit=output,
                   predictions_commits=[*_outputs_read(meta), output])
    return {**meta, 'pachyderm': lineage}
