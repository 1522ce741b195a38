"""Labeling rounds: a target's working branch promoted to the branch pipelines read, in one step.

A target storage with ``promote_to`` set exports to its own ``branch`` (the working branch of the
round, e.g. ``staging``); nothing downstream reads it. A reviewer then promotes the round:

1. The outbox rows recorded before the promote began are written to the working branch, by the
   target's one writer (``outbox.drain_recorded``), so the round holds every annotation submitted
   before it, and none submitted after (those stay pending and are written after the promote).
2. A round commit is made on the working branch: no file changes, a description that is the
   round's card (project, labeling config hash, annotations per label, annotators, the source
   commits the labels were made on, who promoted and when), with a machine-readable line
   (``ROUND_MARKER``). ``pfs inspect-commit`` shows it. A promote retried after a failure finds its
   round commit still at the head and uses it again.
3. The round commit gets the card as pachd commit metadata too (``METADATA_PREFIX`` keys: the card's
   JSON and a few flat keys a pipeline can read without parsing it), written again on every promote
   or rollback to it, so a retry, or a promote after pachd was upgraded, fills in what is missing. A
   failure here fails the promote before anything moved; a pachd older than 2.12 (no metadata API:
   UNIMPLEMENTED) gets the description alone, and the answer says the metadata was not written.
4. ONE pachd transaction (``PachdClient.move_branches``) moves ``<repo>@<promote_to>`` to the round
   commit and, with ``with_inputs``, ``<source repo>@<inputs_branch>`` of each source repo to the
   newest input commit of the round's tasks: a pipeline reading labels and images sees a
   consistent pair or nothing new.

A rollback (``commit=<an earlier round commit>``) moves the same branches back to what that round's
card names. Two promotes of one target at once: the second is refused (``PromoteBusy``), never
queued behind the first.
"""
from __future__ import annotations

import hashlib
import json
import logging
from typing import Optional

from django.utils import timezone

from .. import pachd, tables
from ..connection import pachd_identity
from ..leases import Lease, lease_seconds
from . import outbox

logger = logging.getLogger(__name__)

ROUND_MARKER = 'Label-Studio-Pachyderm-Round:'
DEFAULT_INPUTS_BRANCH = 'labeled'
# The round commit's metadata keys, all under one prefix so they never clash with keys of others.
METADATA_PREFIX = 'label-studio-pachyderm/'
CARD_KEY = METADATA_PREFIX + 'round'  # the whole card, JSON, as in the description's ROUND_MARKER line


class PromoteBusy(Exception):
    """Another promote of the same target is running."""


class PromoteRefused(ValueError):
    """The promote cannot be done as asked; ``field`` names the input to fix."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def card_of(description: str) -> Optional[dict]:
    """The round card a commit description carries, or None when the commit is not a round's."""
    for line in (description or '').splitlines():
        if line.startswith(ROUND_MARKER):
            try:
                card = json.loads(line[len(ROUND_MARKER):])
            except ValueError:
                return None
            return card if isinstance(card, dict) else None
    return None


def card_of_info(info) -> Optional[dict]:
    """A commit's round card: from its metadata when it has the card there, else from its description."""
    stored = dict(info.metadata).get(CARD_KEY)
    if stored:
        try:
            card = json.loads(stored)
        except ValueError:
            card = None
        if isinstance(card, dict):
            return card
    return card_of(info.description)


def metadata_of(card: dict) -> dict:
    """The metadata keys a round commit carries: the card, and flat copies of what a pipeline
    most often needs (so it need not parse JSON to know which round or labeling config it reads)."""
    who = card.get('promoted_by') or {}
    return {
        CARD_KEY: _card_json(card),
        METADATA_PREFIX + 'round-number': str(card['round']),
        METADATA_PREFIX + 'project-id': str(card['project']['id']),
        METADATA_PREFIX + 'label-config-sha256': card['label_config_sha256'],
        METADATA_PREFIX + 'annotations': str(card['annotations']),
        METADATA_PREFIX + 'promoted-by': who.get('email') or str(who.get('id') or ''),
        METADATA_PREFIX + 'cut': card['recorded_before'],
    }


def promote(storage, user, with_inputs: bool = False, inputs_branch: str = DEFAULT_INPUTS_BRANCH,
            commit: Optional[str] = None) -> dict:
    """Promote the working branch's round (or roll back to the round commit ``commit``); see the module
    docstring. Returns what moved where; raises PromoteRefused, PromoteBusy or a PachdError, and then
    nothing has moved."""
    if not storage.promote_to:
        raise PromoteRefused('promote_to', 'This target storage has no "Promote to" branch: set one to use rounds')
    began = timezone.now()
    recorded = set(outbox.pending(storage).values_list('id', flat=True))  # committed before the promote began
    guard = Lease('promote:' + outbox.target_key(storage), lease_seconds())
    if not guard.acquire():
        raise PromoteBusy(f'another promote of {_where(storage, storage.branch_name)} is running; '
                          'try again when it has finished')
    guard.start_heartbeat()
    try:
        client = storage.get_client()
        if commit:
            card = _round_card(client, storage, commit)
            round_commit = commit
        else:
            round_commit, card = _make_round(client, storage, user, began, recorded)
        # before any branch moves: a failure leaves the round commit at the head, for a retry to reuse
        metadata = _write_metadata(client, storage, round_commit, card)
        moves = [(storage.project_name, storage.repo, storage.promote_to, round_commit)]
        if with_inputs:
            moves += [(project, repo, inputs_branch, head) for (project, repo), head in
                      _checked_inputs(storage, card).items()]
        before = {(p, r, b): _head_or_none(client, p, r, b) for p, r, b, _ in moves}
        client.move_branches(moves)
    finally:
        guard.release()
    moved = [{'branch': f'{p}/{r}@{b}', 'from': before[(p, r, b)], 'to': head} for p, r, b, head in moves]
    outcome = {'round': card, 'commit': round_commit, 'rollback': bool(commit), 'moved': moved,
               'promoted_at': str(timezone.now()), 'metadata': metadata}
    _remember(storage, outcome)
    logger.info('Pachyderm storage %s: %s round %s to %s', storage.id, 'rolled back to' if commit else 'promoted',
                round_commit, ', '.join(f"{m['branch']}={m['to']}" for m in moved))
    return outcome


def rounds(storage) -> dict:
    """The round commits of the working branch, newest first, and which one ``promote_to`` holds."""
    client = storage.get_client()
    current = _head_or_none(client, storage.project_name, storage.repo, storage.promote_to) if storage.promote_to else None
    found = []
    for info in _history(client, storage):
        card = card_of_info(info)
        if card is not None:
            found.append({'commit': info.id, 'current': info.id == current,
                          'started': info.started.isoformat() if info.started else None, 'card': card,
                          'metadata': CARD_KEY in dict(info.metadata)})
    return {'promote_to': storage.promote_to or None, 'current': current, 'rounds': found}


# ----------------------------------------------------------------------------- a new round
def _make_round(client, storage, user, began, recorded: set):
    """Write what was recorded before ``began``, then the round commit; (commit id, card)."""
    writer = Lease(outbox.target_key(storage), lease_seconds())
    if not writer.acquire_within(lease_seconds()):
        raise PromoteBusy(f'the export writer of {_where(storage, storage.branch_name)} is busy; try again')
    writer.start_heartbeat()
    try:
        if recorded:
            _drain(storage, writer, recorded, began)
        head = _head_or_none(client, storage.project_name, storage.repo, storage.branch_name)
        if head:
            info = client.inspect_commit(storage.project_name, storage.repo, head)
            card = card_of(info.description)
            if card is not None:
                return head, card  # an earlier promote made it and failed after: nothing new since
        number = 1 + sum(1 for info in _history(client, storage) if card_of(info.description) is not None)
        card = _card(storage, user, began, number)
        commit = client.write_commit(storage.project_name, storage.repo, storage.branch_name, [],
                                     description=_description(storage, card),
                                     marker=f'{outbox.MARKER} {writer.holder}')
        if not writer.renew():
            raise pachd.PachdError(f'the export lease of {_where(storage, storage.branch_name)} was lost while the '
                                   'round commit was written; promote again')
        return commit, card
    finally:
        writer.release()


def _drain(storage, writer, recorded: set, began) -> None:
    """The round's waiting changes written; a failure is a PachdError whatever layer reported it (the
    export writer reports pachd's errors as a ValidationError, for the sync's status)."""
    from rest_framework.exceptions import ValidationError

    try:
        outbox.drain_recorded(storage, writer, recorded, began)
    except ValidationError as exc:
        message = '; '.join(str(item) for item in (exc.detail if isinstance(exc.detail, list) else [exc.detail]))
        unreachable = 'cannot reach pachd' in message or 'no answer in time' in message
        failure = pachd.PachdUnavailable if unreachable else pachd.PachdError
        raise failure(f"the round's annotations could not be written to {_where(storage, storage.branch_name)}: "
                      f'{message}') from None


def _history(client, storage) -> list:
    """The working branch's commits, newest first ([] while the branch does not exist)."""
    try:
        return list(client.list_commits(storage.project_name, storage.repo, storage.branch_name))
    except pachd.PachdNotFound:
        return []


def _card(storage, user, began, number: int) -> dict:
    """What the round holds, from the database: the annotations created before ``began`` that are on the
    working branch (an export link of this storage says so). An annotation saved just as the promote
    began but committed after its snapshot of the outbox is in neither the files nor the card."""
    from tasks.models import Annotation

    project = storage.project
    exported = storage.links.model.objects.filter(storage_id=storage.id).values('annotation_id')
    annotations = (Annotation.objects.filter(project=project, created_at__lte=began, was_cancelled=False,
                                             id__in=exported).select_related('completed_by', 'task'))
    labels: dict = {}
    annotators: dict = {}
    sources: dict = {}  # (project, repo) -> {commit ids}
    count = 0
    for annotation in annotations.iterator(chunk_size=2000):
        count += 1
        for label in sorted(_labels_of(annotation.result)):
            labels[label] = labels.get(label, 0) + 1
        person = annotation.completed_by
        if person is not None:
            annotators[person.id] = person.email
        lineage = ((annotation.task.meta or {}).get('pachyderm') or {}) if annotation.task else {}
        if lineage.get('repo') and lineage.get('commit'):
            sources.setdefault((lineage.get('project') or 'default', lineage['repo']), set()).add(lineage['commit'])
    return {
        'round': number,
        'project': {'id': project.id, 'title': project.title},
        'label_config_sha256': hashlib.sha256((project.label_config or '').encode()).hexdigest(),
        'annotations': count,
        'labels': dict(sorted(labels.items())),
        'annotators': [{'id': uid, 'email': email} for uid, email in sorted(annotators.items())],
        'source_commits': {f'{p}/{r}': sorted(ids) for (p, r), ids in sorted(sources.items())},
        'inputs': _newest_inputs(storage, sources),
        'working_branch': _where(storage, storage.branch_name),
        'promote_to': _where(storage, storage.promote_to),
        'promoted_by': {'id': getattr(user, 'id', None), 'email': getattr(user, 'email', None)},
        'recorded_before': began.isoformat(),
    }


def _labels_of(result) -> set:
    """The label and choice names of one annotation's result items."""
    found = set()
    for item in result if isinstance(result, list) else ():
        value = item.get('value') if isinstance(item, dict) else None
        for key, names in (value.items() if isinstance(value, dict) else ()):
            if (key in ('choices', 'labels', 'taxonomy') or key.endswith('labels')) and isinstance(names, list):
                found.update(name if isinstance(name, str) else '/'.join(map(str, name)) for name in names)
    return found


def _newest_inputs(storage, sources: dict) -> dict:
    """For each source repo, the newest of the commits the round's tasks were made from, on the
    source storage's pachd (None for a repo no source storage of the project reads on this pachd)."""
    newest = {}
    for (project, repo), ids in sources.items():
        source = _source_storage(storage, project, repo)
        if source is None:
            newest[f'{project}/{repo}'] = None
            continue
        client = source.get_client()
        infos = [client.inspect_commit(project, repo, commit) for commit in sorted(ids)]
        best = max(infos, key=lambda info: (info.started is not None, info.started or 0))
        newest[f'{project}/{repo}'] = best.id
    return newest


def _source_storage(storage, project: str, repo: str):
    """A source storage of the same Label Studio project reading ``project/repo`` on the target's pachd."""
    model = tables.import_storage_model()
    for source in model.objects.filter(project_id=storage.project_id, repo=repo):
        if source.project_name == project and pachd_identity(source) == pachd_identity(storage):
            return source
    return None


def _checked_inputs(storage, card: dict) -> dict:
    inputs = card.get('inputs') or {}
    missing = [name for name, head in inputs.items() if not head]
    if missing:
        raise PromoteRefused('with_inputs', f'cannot move the inputs: no source storage of this project reads '
                             f'{", ".join(missing)} on the same pachd as the target, and one transaction cannot '
                             'span two pachd')
    if not inputs:
        raise PromoteRefused('with_inputs', 'this round has no input commits to move (no annotated task came '
                             'from a Pachyderm source storage)')
    return {tuple(name.split('/', 1)): head for name, head in inputs.items()}


def _description(storage, card: dict) -> str:
    labels = ', '.join(f'{name}: {n}' for name, n in card['labels'].items()) or 'none'
    people = ', '.join(f"{a['email'] or '?'} (id {a['id']})" for a in card['annotators']) or 'none'
    sources = '; '.join(f'{repo}@{",".join(ids)}' for repo, ids in card['source_commits'].items()) or 'none'
    who = card['promoted_by']
    return '\n'.join([
        f"Labeling round {card['round']} of Label Studio project {card['project']['id']} "
        f"\"{card['project']['title']}\", for {card['promote_to']}",
        f"annotations: {card['annotations']} (per label: {labels})",
        f'annotators: {people}',
        f'source commits: {sources}',
        f"labeling config sha256: {card['label_config_sha256']}",
        f"promoted by {who['email'] or '?'} (id {who['id']}); recorded before {card['recorded_before']}",
        ROUND_MARKER + ' ' + _card_json(card),
    ])


def _card_json(card: dict) -> str:
    return json.dumps(card, sort_keys=True, separators=(',', ':'))


def _write_metadata(client, storage, commit: str, card: dict) -> dict:
    """The card set as the round commit's metadata; what the answer says about it. Setting the same
    keys again changes nothing, so a retry or a rollback simply writes them again."""
    keys = metadata_of(card)
    try:
        client.set_commit_metadata(storage.project_name, storage.repo, commit, keys)
    except pachd.PachdError as exc:
        if exc.code != 'UNIMPLEMENTED':
            raise
        # pachd before 2.12 has no metadata API: the description alone carries the card
        logger.info('Pachyderm storage %s: pachd has no commit metadata (%s); the round card is in the '
                    'description only', storage.id, exc)
        return {'written': False, 'reason': f'pachd has no commit metadata API (pachd 2.12 or newer has): {exc}'}
    return {'written': True, 'keys': sorted(keys)}


# ----------------------------------------------------------------------------- rollback
def _round_card(client, storage, commit: str) -> dict:
    if not pachd.is_commit_id(commit):
        raise PromoteRefused('commit', f"'{commit}' is not a commit id (32 hex digits)")
    try:
        info = client.inspect_commit(storage.project_name, storage.repo, commit)
    except pachd.PachdNotFound:
        raise PromoteRefused('commit', f'commit {commit} is not in {storage.project_name}/{storage.repo}') from None
    card = card_of(info.description)
    if card is None:
        raise PromoteRefused('commit', f'commit {commit} is not a labeling round of this storage (GET .../rounds '
                             'lists them)')
    return card


# ----------------------------------------------------------------------------- small parts
def _where(storage, branch: str) -> str:
    return f'{storage.project_name}/{storage.repo}@{branch}'


def _head_or_none(client, project: str, repo: str, branch: str) -> Optional[str]:
    try:
        return client.branch_head(project, repo, branch) or None
    except pachd.PachdNotFound:
        return None


def _remember(storage, outcome: dict) -> None:
    """The last promote in the storage's meta, for the card and the API."""
    model = type(storage)
    meta = dict(model.objects.filter(id=storage.id).values_list('meta', flat=True).first() or {})
    meta['last_promote'] = {key: outcome[key] for key in ('commit', 'rollback', 'moved', 'promoted_at')}
    meta['last_promote']['round'] = outcome['round'].get('round')
    meta['last_promote']['metadata_written'] = outcome['metadata']['written']
    model.objects.filter(id=storage.id).update(meta=meta)
