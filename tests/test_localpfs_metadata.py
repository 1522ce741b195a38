"""Commit metadata (metadata.API/EditMetadata) on the local PFS server, as pachd 2.12 edits it, driven
by the official pachyderm_sdk client over real gRPC: each kind of edit, pachd's errors, all edits of
a request or none, the map in InspectCommit/ListCommit/InspectCommitSet, a restart, and a data
directory from before the metadata table."""
from __future__ import annotations

import sqlite3

import grpc
import pytest
from pachyderm_sdk.api import metadata as md
from pachyderm_sdk.api import pfs

from conftest import StatusOf, restart_pfs, sdk_put

OK = grpc.StatusCode
MISSING = 'f' * 12 + '4' + 'f' * 19  # shaped like a commit id, names no commit


def repo_picker(repo: str = 'images') -> pfs.RepoPicker:
    return pfs.RepoPicker(name=pfs.RepoPickerRepoName(project=pfs.ProjectPicker(name='default'), name=repo,
                                                      type='user'))


def by_id(commit_id: str, repo: str = 'images') -> pfs.CommitPicker:
    return pfs.CommitPicker(id=pfs.CommitPickerCommitByGlobalId(repo=repo_picker(repo), id=commit_id))


def head_of(branch: str = 'master', repo: str = 'images') -> pfs.CommitPicker:
    return pfs.CommitPicker(branch_head=pfs.BranchPicker(name=pfs.BranchPickerBranchName(repo=repo_picker(repo),
                                                                                         name=branch)))


def add(picker, key, value):
    return md.Edit(commit=picker, add_key=md.EditAddKey(key=key, value=value))


def edit(picker, key, value):
    return md.Edit(commit=picker, edit_key=md.EditEditKey(key=key, value=value))


def delete(picker, key):
    return md.Edit(commit=picker, delete_key=md.EditDeleteKey(key=key))


def replace(picker, mapping):
    return md.Edit(commit=picker, replace=md.EditReplace(replacement=mapping))


def metadata_of(client, commit_id: str, repo: str = 'images') -> dict:
    info = client.pfs.inspect_commit(commit=pfs.Commit(repo=pfs.Repo.from_uri(repo), id=commit_id))
    return dict(info.metadata)


@pytest.fixture
def two_commits(sdk_client, sdk_repo):
    first = sdk_put(sdk_client, 'images@master', {'/a.txt': b'1'})
    second = sdk_put(sdk_client, 'images@master', {'/b.txt': b'2'})
    return first, second


def test_each_edit_kind_by_id_branch_head_and_ancestor(sdk_client, two_commits):
    first, second = two_commits
    client = sdk_client
    assert metadata_of(client, second) == {}
    client.metadata.edit_metadata(edits=[add(by_id(second), 'round', '1'), add(head_of(), 'cut', 'now')])
    assert metadata_of(client, second) == {'round': '1', 'cut': 'now'}
    # edit_key changes a key, and adds one that is missing (pachd: "adds or changes")
    client.metadata.edit_metadata(edits=[edit(head_of(), 'round', '2'), edit(head_of(), 'new', 'x')])
    assert metadata_of(client, second) == {'round': '2', 'cut': 'now', 'new': 'x'}
    client.metadata.edit_metadata(edits=[delete(by_id(second), 'cut'), delete(by_id(second), 'never-there')])
    assert metadata_of(client, second) == {'round': '2', 'new': 'x'}
    client.metadata.edit_metadata(edits=[replace(by_id(second), {'only': 'this'})])
    assert metadata_of(client, second) == {'only': 'this'}
    # the head's parent, picked as pachd's ancestor picker names it; the head is untouched
    parent = pfs.CommitPicker(ancestor=pfs.CommitPickerAncestorOf(start=head_of(), offset=1))
    client.metadata.edit_metadata(edits=[add(parent, 'first', 'yes')])
    assert metadata_of(client, first) == {'first': 'yes'} and metadata_of(client, second) == {'only': 'this'}
    client.metadata.edit_metadata(edits=[replace(by_id(first), {})])
    assert metadata_of(client, first) == {}
    # an edit naming a commit but no operation changes nothing and is no error (as in pachd)
    client.metadata.edit_metadata(edits=[md.Edit(commit=by_id(second))])
    client.metadata.edit_metadata(edits=[])
    assert metadata_of(client, second) == {'only': 'this'}


def test_errors_carry_pachds_codes_and_wording_and_nothing_of_the_request_is_kept(sdk_client, two_commits):
    _, second = two_commits
    client = sdk_client
    client.metadata.edit_metadata(edits=[add(by_id(second), 'k', 'v')])
    with StatusOf(OK.FAILED_PRECONDITION) as status:
        client.metadata.edit_metadata(edits=[edit(by_id(second), 'other', '1'), add(head_of(), 'k', 'again')])
    assert status.error.details() == (f'apply edits: edit #1: edit commit "default/images.user@{second}": '
                                      f'add_key target key "k" already exists; use edit_key instead')
    # the edit before the failing one is rolled back with it
    assert metadata_of(client, second) == {'k': 'v'}
    # every edit is tried; the failures are reported one per line, in order
    with StatusOf(OK.UNKNOWN) as status:
        client.metadata.edit_metadata(edits=[add(by_id(MISSING), 'a', '1'), replace(by_id(second), {}),
                                             add(head_of('nope'), 'b', '2'), md.Edit(add_key=md.EditAddKey(key='c'))])
    assert status.error.details().splitlines() == [
        f'apply edits: edit #0: pick commit: commit default/images@{MISSING} not found',
        'edit #2: pick commit: branch "nope" not found in repo default/images',
        'edit #3: unknown target <nil>']
    assert metadata_of(client, second) == {'k': 'v'}  # the replace in between was not kept
    with StatusOf(OK.UNKNOWN, 'apply edits: edit #0: pick commit: repo default/nope not found'):
        client.metadata.edit_metadata(edits=[add(head_of(repo='nope'), 'a', '1')])


def test_targets_other_than_commits_are_refused_before_anything_is_applied(sdk_client, two_commits):
    _, second = two_commits
    client = sdk_client
    others = {
        'projects': md.Edit(project=pfs.ProjectPicker(name='default'), add_key=md.EditAddKey(key='k', value='v')),
        'repos': md.Edit(repo=repo_picker(), add_key=md.EditAddKey(key='k', value='v')),
        'branches': md.Edit(branch=head_of().branch_head, add_key=md.EditAddKey(key='k', value='v')),
        'the cluster': md.Edit(cluster=md.ClusterPicker(), add_key=md.EditAddKey(key='k', value='v')),
    }
    for name, other in others.items():
        with StatusOf(OK.UNIMPLEMENTED, f'localpfs keeps metadata of commits only, not of {name} (edit #1)'):
            client.metadata.edit_metadata(edits=[add(by_id(second), 'k', 'v'), other])
    assert metadata_of(client, second) == {}


def test_every_commit_info_shows_the_metadata(sdk_client, two_commits):
    first, second = two_commits
    client = sdk_client
    client.metadata.edit_metadata(edits=[replace(by_id(first), {'a': '1'}), replace(by_id(second), {'b': '2'})])
    listed = {info.commit.id: dict(info.metadata)
              for info in client.pfs.list_commit(repo=pfs.Repo.from_uri('images'))}
    assert listed == {first: {'a': '1'}, second: {'b': '2'}}
    in_set = [dict(info.metadata) for info in client.pfs.inspect_commit_set(commit_set=pfs.CommitSet(id=second))]
    assert in_set == [{'b': '2'}]
    branch_head = client.pfs.inspect_commit(commit=pfs.Commit.from_uri('images@master'))
    assert dict(branch_head.metadata) == {'b': '2'}


def test_metadata_survives_a_restart_and_goes_with_its_commit(pfs, sdk_client, two_commits):
    first, second = two_commits
    sdk_client.metadata.edit_metadata(edits=[replace(by_id(second), {'card': '{"round": 1}', 'é': 'ü'})])
    pfs.stop()
    server = restart_pfs(pfs)
    try:
        from pachyderm_sdk import Client

        client = Client(host='127.0.0.1', port=server.port)
        assert metadata_of(client, second) == {'card': '{"round": 1}', 'é': 'ü'}
        client.pfs.drop_commit(commit=pfs_commit(second))
        with sqlite3.connect(f'{server.data_dir}/localpfs.sqlite3') as db:
            assert db.execute('SELECT count(*) FROM commit_metadata').fetchone() == (0,)
    finally:
        server.stop()


def test_a_data_directory_from_before_the_metadata_table_gains_it(pfs, sdk_client, two_commits):
    _, second = two_commits
    pfs.stop()
    with sqlite3.connect(f'{pfs.data_dir}/localpfs.sqlite3') as db:  # as an older localpfs left it
        db.execute('DROP TRIGGER commit_metadata_forgotten')
        db.execute('DROP TABLE commit_metadata')
    server = restart_pfs(pfs)
    try:
        from pachyderm_sdk import Client

        client = Client(host='127.0.0.1', port=server.port)
        assert metadata_of(client, second) == {}
        client.metadata.edit_metadata(edits=[add(by_id(second), 'k', 'v')])
        assert metadata_of(client, second) == {'k': 'v'}
    finally:
        server.stop()


def pfs_commit(commit_id: str, repo: str = 'images') -> pfs.Commit:
    return pfs.Commit(repo=pfs.Repo.from_uri(repo), id=commit_id)
