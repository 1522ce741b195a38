"""Labeling rounds: promote a target's working branch to the branch pipelines read, in one pachd
transaction, with the round's card on the promoted commit; roll back; list the rounds.

Real Label Studio (API client), the local PFS server over gRPC, its transactions.
"""
import json
import threading
import time

import pytest
from label_studio_pachyderm import leases, pachd
from label_studio_pachyderm.exports import outbox, rounds
from label_studio_pachyderm.models import PachydermExportStorage
from rest_framework.test import APIClient
from tasks.models import Annotation, Task

from tcp_proxy import FreezingProxy
from test_export import RESULT, annotate
from waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

DOG = [{**RESULT[0], 'value': {**RESULT[0]['value'], 'rectanglelabels': ['Dog']}}]
PNG = b'\x89PNG\r\n\x1a\n' + b'0' * 64


@pytest.fixture
def repos(pfs_client, settings):
    settings.SYNC_ON_TARGET_STORAGE_CREATION = False
    pfs_client.create_repo('default', 'images')
    pfs_client.create_repo('default', 'labels')


def add_images(client, names):
    return client.write_commit('default', 'images', 'master', [pachd.FileOp.put(n, PNG) for n in names])


def source(api, project, address):
    r = api.post('/api/storages/pachyderm', {'project': project.id, 'pachd_address': address, 'repo': 'images',
                                             'use_blob_urls': True}, format='json')
    assert r.status_code == 201, r.content
    return r.json()['id']


def sync_source(api, sid):
    r = api.post(f'/api/storages/pachyderm/{sid}/sync')
    assert r.status_code == 200 and r.json()['status'] == 'completed', r.content


def target(api, project, address, **fields):
    body = {'project': project.id, 'title': 'labels', 'pachd_address': address, 'repo': 'labels',
            'branch': 'staging', 'promote_to': 'master', **fields}
    r = api.post('/api/storages/export/pachyderm', body, format='json')
    assert r.status_code == 201, r.content
    return r.json()['id']


def promote(api, tid, **body):
    return api.post(f'/api/storages/export/pachyderm/{tid}/promote', body, format='json')


def second_client(api):
    """Another client of the same user (for another thread); it returns as soon as a change is
    recorded, as a browser's submit does, without waiting for the writer."""
    client = APIClient()
    client.force_authenticate(api.handler._force_user)
    return client


def files(client, ref, repo='labels'):
    try:
        return sorted(f.path for f in client.list_files('default', repo, ref))
    except pachd.PachdNotFound:
        return []


def annotations_on(client, ref):
    found = set()
    for path in files(client, ref):
        found |= {a['id'] for a in json.loads(client.get_file_bytes('default', 'labels', ref, path))['annotations']}
    return found


def head(client, branch, repo='labels'):
    try:
        return client.branch_head('default', repo, branch)
    except pachd.PachdNotFound:
        return None


def task_of(project, path):
    return Task.objects.get(project=project, meta__pachyderm__path=path)


def sdk_metadata(sdk_client, commit_id, repo='labels'):
    """The commit's metadata as the official sdk reads it (what a pipeline or pachctl sees)."""
    from pachyderm_sdk.api import pfs as sdk_pfs

    info = sdk_client.pfs.inspect_commit(commit=sdk_pfs.Commit(repo=sdk_pfs.Repo.from_uri(repo), id=commit_id))
    return dict(info.metadata)


def sdk_replace_metadata(sdk_client, commit_id, mapping, repo='labels'):
    from pachyderm_sdk.api import metadata as sdk_md
    from pachyderm_sdk.api import pfs as sdk_pfs

    picker = sdk_pfs.CommitPicker(id=sdk_pfs.CommitPickerCommitByGlobalId(
        repo=sdk_pfs.RepoPicker(name=sdk_pfs.RepoPickerRepoName(name=repo)), id=commit_id))
    sdk_client.metadata.edit_metadata(edits=[sdk_md.Edit(commit=picker, replace=sdk_md.EditReplace(replacement=mapping))])


def card_metadata(card):
    m = rounds.METADATA_PREFIX
    return {m + 'round': json.dumps(card, sort_keys=True, separators=(',', ':')),
            m + 'round-number': str(card['round']), m + 'project-id': str(card['project']['id']),
            m + 'label-config-sha256': card['label_config_sha256'], m + 'annotations': str(card['annotations']),
            m + 'promoted-by': card['promoted_by']['email'], m + 'cut': card['recorded_before']}


def test_label_promote_label_more_promote_roll_back(api, user, project, pfs, pfs_client, sdk_client, repos):
    first_images = add_images(pfs_client, ['a.png', 'b.png', 'c.png'])
    sync_source(api, source(api, project, pfs.address))
    tid = target(api, project, pfs.address)
    a, b, c = (task_of(project, p) for p in ('a.png', 'b.png', 'c.png'))
    annotate(api, a)
    annotate(api, b, DOG)
    assert files(pfs_client, 'staging') == [f'{a.id}.json', f'{b.id}.json']
    assert head(pfs_client, 'master') is None  # pipelines see nothing before a promote

    r = promote(api, tid)
    assert r.status_code == 200, r.content
    one = r.json()
    assert one['rollback'] is False and one['moved'] == [
        {'branch': 'default/labels@master', 'from': None, 'to': one['commit']}]
    assert head(pfs_client, 'master') == one['commit'] == head(pfs_client, 'staging')
    assert files(pfs_client, 'master') == [f'{a.id}.json', f'{b.id}.json']
    card = one['round']
    assert card['round'] == 1 and card['annotations'] == 2 and card['labels'] == {'Cat': 1, 'Dog': 1}
    assert card['annotators'] == [{'id': user.id, 'email': user.email}]
    assert card['source_commits'] == {'default/images': [first_images]}
    assert card['promoted_by'] == {'id': user.id, 'email': user.email}
    assert card['project']['id'] == project.id and len(card['label_config_sha256']) == 64
    # The card is on the commit itself, for pachctl and `pfs inspect-commit`.
    description = pfs_client.inspect_commit('default', 'labels', one['commit']).description
    assert description.startswith(f'Labeling round 1 of Label Studio project {project.id}')
    assert 'annotations: 2 (per label: Cat: 1, Dog: 1)' in description
    assert f'annotators: {user.email} (id {user.id})' in description
    assert f'source commits: default/images@{first_images}' in description
    assert rounds.card_of(description) == card
    # ... and as pachd commit metadata, for a pipeline: the card's JSON and flat keys
    assert sdk_metadata(sdk_client, one['commit']) == card_metadata(card)
    assert one['metadata'] == {'written': True, 'keys': sorted(card_metadata(card))}
    assert PachydermExportStorage.objects.get(id=tid).meta['last_promote']['metadata_written'] is True

    annotate(api, c)  # the next round's work reaches the working branch only
    assert f'{c.id}.json' in files(pfs_client, 'staging')
    assert files(pfs_client, 'master') == [f'{a.id}.json', f'{b.id}.json']
    two = promote(api, tid).json()
    assert two['round']['round'] == 2 and two['round']['annotations'] == 3
    assert two['moved'][0]['from'] == one['commit'] and head(pfs_client, 'master') == two['commit']
    assert files(pfs_client, 'master') == sorted(f'{t.id}.json' for t in (a, b, c))

    assert sdk_metadata(sdk_client, two['commit']) == card_metadata(two['round'])
    listed = api.get(f'/api/storages/export/pachyderm/{tid}/rounds').json()
    assert [(x['commit'], x['current']) for x in listed['rounds']] == [(two['commit'], True), (one['commit'], False)]
    assert listed['current'] == two['commit'] and listed['rounds'][1]['card'] == card
    assert [x['metadata'] for x in listed['rounds']] == [True, True]

    back = promote(api, tid, commit=one['commit'])
    assert back.status_code == 200 and back.json()['rollback'] is True, back.content
    assert back.json()['moved'] == [{'branch': 'default/labels@master', 'from': two['commit'], 'to': one['commit']}]
    assert head(pfs_client, 'master') == one['commit']
    assert files(pfs_client, 'master') == [f'{a.id}.json', f'{b.id}.json']
    assert PachydermExportStorage.objects.get(id=tid).meta['last_promote']['commit'] == one['commit']
    # Someone wipes round 2's metadata and adds a key of their own: the next promote of it writes the
    # card's keys again and leaves theirs.
    sdk_replace_metadata(sdk_client, two['commit'], {'reviewed': 'yes'})
    assert api.get(f'/api/storages/export/pachyderm/{tid}/rounds').json()['rounds'][0]['metadata'] is False
    # Nothing new since round 2: promoting again moves master back to it, no third round.
    again = promote(api, tid).json()
    assert again['commit'] == two['commit'] and again['round']['round'] == 2
    assert sdk_metadata(sdk_client, two['commit']) == {**card_metadata(two['round']), 'reviewed': 'yes'}
    assert len(api.get(f'/api/storages/export/pachyderm/{tid}/rounds').json()['rounds']) == 2


def test_with_inputs_moves_the_source_branch_to_the_newest_input_commit_in_the_same_transaction(
        api, project, pfs, pfs_client, repos):
    first = add_images(pfs_client, ['a.png'])
    sid = source(api, project, pfs.address)
    sync_source(api, sid)
    second = add_images(pfs_client, ['b.png'])
    sync_source(api, sid)
    add_images(pfs_client, ['c.png'])  # on master, but not labeled: the inputs stay before it
    tid = target(api, project, pfs.address)
    annotate(api, task_of(project, 'a.png'))
    annotate(api, task_of(project, 'b.png'))
    r = promote(api, tid, with_inputs=True)
    assert r.status_code == 200, r.content
    out = r.json()
    assert out['round']['source_commits'] == {'default/images': sorted([first, second])}
    assert out['round']['inputs'] == {'default/images': second}
    assert sorted(m['branch'] for m in out['moved']) == ['default/images@labeled', 'default/labels@master']
    assert head(pfs_client, 'labeled', repo='images') == second and head(pfs_client, 'master') == out['commit']
    assert files(pfs_client, 'labeled', repo='images') == ['a.png', 'b.png']
    # Another branch name, and a rollback moves the inputs back with the labels.
    annotate(api, task_of(project, 'a.png'), DOG)
    newer = promote(api, tid, with_inputs=True, inputs_branch='round-inputs').json()
    assert head(pfs_client, 'round-inputs', repo='images') == second
    back = promote(api, tid, with_inputs=True, commit=out['commit']).json()
    assert head(pfs_client, 'master') == out['commit'] != newer['commit']
    assert {m['branch'] for m in back['moved']} == {'default/labels@master', 'default/images@labeled'}


def test_a_failure_inside_the_transaction_moves_neither_branch(api, project, pfs, pfs_client, repos, monkeypatch):
    add_images(pfs_client, ['a.png'])
    sync_source(api, source(api, project, pfs.address))
    tid = target(api, project, pfs.address)
    annotate(api, task_of(project, 'a.png'))
    good = promote(api, tid, with_inputs=True).json()
    annotate(api, task_of(project, 'a.png'), DOG)
    # The second move names a commit pachd does not have: pachd refuses request 2 of 2, and the
    # first move, already in the same transaction, is not applied either.
    real = rounds._checked_inputs
    monkeypatch.setattr(rounds, '_checked_inputs', lambda storage, card: {
        key: 'f' * 32 for key in real(storage, card)})
    r = promote(api, tid, with_inputs=True)
    assert r.status_code == 400 and 'nothing was moved' in r.json()['detail'], r.content
    assert 'request 2 of 2' in r.json()['detail']
    assert head(pfs_client, 'master') == good['commit']
    assert head(pfs_client, 'labeled', repo='images') == good['round']['inputs']['default/images']
    monkeypatch.setattr(rounds, '_checked_inputs', real)
    retried = promote(api, tid, with_inputs=True)
    assert retried.status_code == 200 and head(pfs_client, 'master') == retried.json()['commit'] != good['commit']


def test_a_failed_metadata_write_moves_nothing_and_the_retry_writes_it(api, project, pfs, pfs_client, sdk_client,
                                                                         repos, monkeypatch):
    add_images(pfs_client, ['a.png'])
    sync_source(api, source(api, project, pfs.address))
    tid = target(api, project, pfs.address)
    annotate(api, task_of(project, 'a.png'))
    real = pachd.PachdClient.set_commit_metadata

    def unreachable(self, *args, **kwargs):
        raise pachd.PachdUnavailable('cannot reach pachd at grpc://test: the metadata call was cut')

    monkeypatch.setattr(pachd.PachdClient, 'set_commit_metadata', unreachable)
    r = promote(api, tid)
    assert r.status_code == 503 and 'nothing was moved' in r.json()['detail'], r.content
    round_commit = head(pfs_client, 'staging')
    assert head(pfs_client, 'master') is None and sdk_metadata(sdk_client, round_commit) == {}
    assert rounds.card_of(pfs_client.inspect_commit('default', 'labels', round_commit).description)
    monkeypatch.setattr(pachd.PachdClient, 'set_commit_metadata', real)
    retried = promote(api, tid)
    assert retried.status_code == 200, retried.content
    out = retried.json()
    assert out['commit'] == round_commit == head(pfs_client, 'master') and out['round']['round'] == 1
    assert sdk_metadata(sdk_client, round_commit) == card_metadata(out['round'])


def test_a_pachd_without_the_metadata_api_gets_the_description_alone(api, project, tmp_path, settings):
    """A pachd before 2.12 answers EditMetadata with UNIMPLEMENTED: the promote works, and says the
    metadata was not written."""
    from label_studio_pachyderm.localpfs import start_server

    settings.SYNC_ON_TARGET_STORAGE_CREATION = False
    server = start_server('127.0.0.1', 0, str(tmp_path / 'old-pachd'), metadata_api=False)
    client = pachd.PachdClient(server.address)
    try:
        client.create_repo('default', 'images')
        client.create_repo('default', 'labels')
        add_images(client, ['a.png'])
        sync_source(api, source(api, project, server.address))
        tid = target(api, project, server.address)
        annotate(api, task_of(project, 'a.png'))
        r = promote(api, tid)
        assert r.status_code == 200, r.content
        out = r.json()
        assert out['metadata']['written'] is False and 'UNIMPLEMENTED' in out['metadata']['reason']
        assert head(client, 'master') == out['commit']
        info = client.inspect_commit('default', 'labels', out['commit'])
        assert info.metadata == () and rounds.card_of(info.description) == out['round']
        assert PachydermExportStorage.objects.get(id=tid).meta['last_promote']['metadata_written'] is False
        listed = api.get(f'/api/storages/export/pachyderm/{tid}/rounds').json()['rounds']
        assert [(x['commit'], x['metadata'], x['card']) for x in listed] == [(out['commit'], False, out['round'])]
    finally:
        client.close()
        server.stop()


def test_bad_input_is_a_400_naming_the_field_and_moves_nothing(api, project, pfs, pfs_client, repos):
    r = api.post('/api/storages/export/pachyderm', {'project': project.id, 'pachd_address': pfs.address,
                                                    'repo': 'labels', 'branch': 'staging', 'promote_to': 'staging'},
                 format='json')
    assert r.status_code == 400 and 'promote_to' in r.json()['validation_errors'], r.content
    r = api.post('/api/storages/export/pachyderm', {'project': project.id, 'pachd_address': pfs.address,
                                                    'repo': 'labels', 'promote_to': 'not a branch'}, format='json')
    assert r.status_code == 400 and 'promote_to' in r.json()['validation_errors'], r.content
    plain = target(api, project, pfs.address, promote_to='')
    r = promote(api, plain)
    assert r.status_code == 400 and 'promote_to' in r.json()['validation_errors'], r.content
    tid = target(api, project, pfs.address)
    add_images(pfs_client, ['a.png'])
    sync_source(api, source(api, project, pfs.address))
    annotate(api, task_of(project, 'a.png'))
    export_commit = head(pfs_client, 'staging')
    for body, field in (({'commit': 'nope'}, 'commit'), ({'commit': 'a' * 32}, 'commit'),
                        ({'commit': export_commit}, 'commit'),  # a commit of the repo, but not a round's
                        ({'with_inputs': 'maybe'}, 'with_inputs'), ({'inputs_branch': 'a b'}, 'inputs_branch')):
        r = promote(api, tid, **body)
        assert r.status_code == 400 and field in r.json()['validation_errors'], (body, r.content)
    r = api.post(f'/api/storages/export/pachyderm/{tid}/promote', 'not json', content_type='application/json')
    assert r.status_code == 400
    assert head(pfs_client, 'master') is None


def test_only_members_promote_or_list_rounds(api, outsider_api, project, pfs, pfs_client, repos):
    tid = target(api, project, pfs.address)
    for client in (outsider_api, APIClient()):
        r = client.post(f'/api/storages/export/pachyderm/{tid}/promote', {}, format='json')
        assert r.status_code in (401, 403), r.content
        r = client.get(f'/api/storages/export/pachyderm/{tid}/rounds')
        assert r.status_code in (401, 403), r.content
    assert outsider_api.post(f'/api/storages/export/pachyderm/{tid}/promote').status_code == 403
    assert APIClient().post(f'/api/storages/export/pachyderm/{tid}/promote').status_code == 401
    assert head(pfs_client, 'master') is None and head(pfs_client, 'staging') is None


@pytest.mark.slow
def test_frozen_pachd_a_second_promote_is_refused_nothing_moves_and_a_retry_works(api, project, pfs, pfs_client,
                                                                                  repos, settings):
    settings.PACHYDERM_GRPC_TIMEOUT = 2
    add_images(pfs_client, ['a.png'])
    proxy = FreezingProxy(pfs.address)
    try:
        sync_source(api, source(api, project, proxy.address))
        tid = target(api, project, proxy.address)
        annotate(api, task_of(project, 'a.png'))
        staging = head(pfs_client, 'staging')
        assert staging
        proxy.freeze()
        answers = {}
        first = threading.Thread(target=lambda: answers.update(first=promote(second_client(api), tid)))
        first.start()
        storage = PachydermExportStorage.objects.get(id=tid)
        guard = 'promote:' + outbox.target_key(storage)
        wait_for(lambda: leases.is_held(guard) or not first.is_alive(), timeout=30, what='the first promote running')
        second = promote(api, tid)
        assert second.status_code == 409 and 'another promote' in second.json()['detail'], second.content
        started = time.monotonic()
        first.join(60)
        assert not first.is_alive() and time.monotonic() - started < 45
        assert answers['first'].status_code == 503, answers['first'].content
        assert 'nothing was moved' in answers['first'].json()['detail']
        assert head(pfs_client, 'master') is None and head(pfs_client, 'staging') == staging
        proxy.thaw()
        r = promote(api, tid)
        assert r.status_code == 200, r.content
        assert head(pfs_client, 'master') == r.json()['commit']
        assert files(pfs_client, 'master') == files(pfs_client, staging)
        # Frozen while the round's waiting changes are written: the same answer, nothing moved.
        proxy.freeze()
        waiting = second_client(api).post(f"/api/tasks/{task_of(project, 'a.png').id}/annotations/",
                                          {'result': DOG}, format='json')
        assert waiting.status_code == 201
        promoted = head(pfs_client, 'master')
        r = promote(api, tid)
        assert r.status_code == 503 and 'nothing was moved' in r.json()['detail'], r.content
        assert head(pfs_client, 'master') == promoted and outbox.pending_for_id(tid).exists()
        proxy.thaw()
        r = promote(api, tid)
        assert r.status_code == 200 and r.json()['round']['annotations'] == 2, r.content
        assert not outbox.pending_for_id(tid).exists()
    finally:
        proxy.thaw()
        proxy.close()


@pytest.mark.slow
def test_a_round_holds_the_annotations_recorded_before_the_promote_and_none_after(api, user, project, pfs,
                                                                                 pfs_client, repos, settings,
                                                                                 monkeypatch):
    # A long window: changes recorded before the promote are still waiting when it begins.
    settings.PACHYDERM_EXPORT_COALESCE_SECONDS = 5
    names = [f'{i}.png' for i in range(12)]
    add_images(pfs_client, names)
    sync_source(api, source(api, project, pfs.address))
    tid = target(api, project, pfs.address)
    tasks = [task_of(project, n) for n in names]
    writer = second_client(api)
    acknowledged = [annotate(writer, task) for task in tasks[:4]]
    stop = threading.Event()

    def keep_annotating():
        for task in tasks[4:]:
            if stop.is_set():
                return
            r = writer.post(f'/api/tasks/{task.id}/annotations/', {'result': DOG}, format='json')
            assert r.status_code == 201, r.content
            acknowledged.append(r.json()['id'])
            time.sleep(0.05)

    # And one arriving on a task whose change is still waiting, between the promote's cut and its
    # write of that task's file.
    late = []
    drain = outbox.drain_recorded

    def drain_after_a_late_annotation(storage, lease, row_ids, recorded_before):
        # On a loaded machine the writer thread may have written every recorded change before the promote
        # took the writer's lease: then the late annotation goes on a task already written.
        waiting = (outbox.pending(storage).filter(id__in=row_ids).values_list('task_id', flat=True).first()
                   or tasks[0].id)
        late.append(Annotation.objects.create(task_id=waiting, project=project, result=DOG, completed_by=user).id)
        return drain(storage, lease, row_ids, recorded_before)

    monkeypatch.setattr(outbox, 'drain_recorded', drain_after_a_late_annotation)
    arriving = threading.Thread(target=keep_annotating)
    arriving.start()
    try:
        wait_for(lambda: len(acknowledged) >= 6, what='annotations arriving')
        submitted = set(acknowledged)  # answered before the promote began
        r = promote(api, tid)
    finally:
        stop.set()
        arriving.join(60)
    assert r.status_code == 200, r.content
    out = r.json()
    cut = out['round']['recorded_before']
    created_before = set(Annotation.objects.filter(project=project, created_at__lte=cut).values_list('id', flat=True))
    in_round = annotations_on(pfs_client, out['commit'])
    # Every submit answered before the promote is in the round, nothing created after its cut is
    # (a submit racing with its start may go either way), and the card counts what the files hold.
    assert submitted <= in_round <= created_before, (submitted, in_round, created_before)
    assert out['round']['annotations'] == len(in_round)
    assert late and late[0] not in in_round and late[0] not in created_before
    # What came after the cut is written to the working branch after the promote, not lost.
    everything = set(Annotation.objects.filter(project=project).values_list('id', flat=True))
    wait_for(lambda: annotations_on(pfs_client, 'staging') == everything, timeout=60,
             what='the rest on the working branch')
    assert head(pfs_client, 'master') == out['commit']


def test_the_cli_promotes_lists_and_reports_errors_over_label_studio_api(live_server, api, user, project, pfs,
                                                                          pfs_client, repos, capsys, closed_port):
    from label_studio_pachyderm import cli

    add_images(pfs_client, ['a.png'])
    sync_source(api, source(api, project, pfs.address))
    tid = target(api, project, pfs.address)
    annotate(api, task_of(project, 'a.png'))
    r = api.post('/api/token/')  # a personal access token, as Account & Settings makes one
    assert r.status_code == 201, r.content
    token = r.json()['token']
    where = ['--url', live_server.url, '--token', token]
    assert cli.main(['promote', str(tid), *where]) == 0
    printed = capsys.readouterr().out
    round_commit = head(pfs_client, 'master')
    assert f'round 1 promoted: commit {round_commit} (1 annotations)' in printed
    assert f'default/labels@master: (new branch) -> {round_commit}' in printed
    assert cli.main(['pfs', '--pachd-address', pfs.address, 'inspect-commit', 'labels@master']) == 0
    shown = capsys.readouterr().out
    assert f'Commit: default/labels@{round_commit}' in shown and '  Labeling round 1 of Label Studio project' in shown
    assert '  annotations: 1 (per label: Cat: 1)' in shown
    # the metadata, one key a line: what `pachctl inspect commit` shows as the commit's metadata
    assert 'Metadata:' in shown.splitlines() and '  label-studio-pachyderm/round-number: 1' in shown
    assert f'  label-studio-pachyderm/promoted-by: {user.email}' in shown
    card_line = next(line for line in shown.splitlines() if line.startswith('  label-studio-pachyderm/round: '))
    assert json.loads(card_line.split(': ', 1)[1])['round'] == 1
    assert cli.main(['rounds', str(tid), *where]) == 0
    listing = capsys.readouterr().out
    assert round_commit in listing and user.email in listing and '*' in listing
    assert cli.main(['promote', str(tid), '--json', *where]) == 0
    assert json.loads(capsys.readouterr().out)['commit'] == round_commit
    # Errors are one line naming the field, the token never printed.
    assert cli.main(['promote', str(tid), '--commit', 'nope', *where]) == 1
    err = capsys.readouterr().err
    assert err.startswith('error: 400: commit:') and token not in err
    assert cli.main(['promote', str(tid), '--url', live_server.url, '--token', 'a.b.c']) == 1
    assert capsys.readouterr().err.startswith('error: 401')
    assert cli.main(['rounds', '999999', *where]) == 1
    assert capsys.readouterr().err.startswith('error: 404')
    assert cli.main(['rounds', str(tid), '--url', f'http://127.0.0.1:{closed_port}', '--token', token]) == 1
    assert 'cannot reach Label Studio' in capsys.readouterr().err
