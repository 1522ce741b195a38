"""Branch provenance on the local PFS server (what pachd does with it for commits and waits,
without pipelines), driven by the official pachyderm_sdk client over real gRPC."""
from __future__ import annotations

import grpc
import pytest
from pachyderm_sdk.api import pfs

from conftest import StatusOf, sdk_put

OK = grpc.StatusCode
B = pfs.Branch.from_uri


def names(branches):
    return sorted(f'{b.repo.name}@{b.name}' for b in branches)


@pytest.fixture
def dag(sdk_client):
    """raw@master -> mid@master -> out@master."""
    for repo in ('raw', 'mid', 'out'):
        sdk_client.pfs.create_repo(repo=pfs.Repo.from_uri(repo))
    sdk_client.pfs.create_branch(branch=B('mid@master'), provenance=[B('raw@master')])
    sdk_client.pfs.create_branch(branch=B('out@master'), provenance=[B('mid@master')])
    for repo in ('mid', 'out'):  # as their pipelines would: an output branch's first head is left open
        sdk_client.pfs.finish_commit(commit=pfs.Commit.from_uri(f'{repo}@master'))
    return sdk_client


def test_a_new_output_branch_gets_an_open_head_and_an_input_branch_a_finished_one(sdk_client):
    """pachd's makeEmptyCommit: a branch with provenance waits for its pipeline; one without is done."""
    client = sdk_client
    for repo in ('images', 'preds'):
        client.pfs.create_repo(repo=pfs.Repo.from_uri(repo))
    client.pfs.create_branch(branch=B('preds@master'), provenance=[B('images@master')])
    images = client.pfs.inspect_commit(commit=pfs.Commit.from_uri('images@master'))
    head = client.pfs.inspect_commit(commit=pfs.Commit.from_uri('preds@master'))
    assert images.is_set('finished') and not head.is_set('finished')
    assert head.origin.kind == pfs.OriginKind.AUTO
    assert [(c.repo.name, c.id) for c in head.direct_provenance] == [('images', images.commit.id)]
    # the pipeline writes its output into it and finishes it
    client.pfs.put_file_from_bytes(commit=pfs.Commit.from_uri(f'preds@{head.commit.id}'), path='/p.json', data=b'[]')
    client.pfs.finish_commit(commit=pfs.Commit.from_uri(f'preds@{head.commit.id}'))
    assert client.pfs.inspect_commit(commit=pfs.Commit.from_uri('preds@master')).is_set('finished')
    # a provenance change gives the branch a new head, open again, on top of the old one
    client.pfs.create_repo(repo=pfs.Repo.from_uri('spec'))
    client.pfs.create_branch(branch=B('preds@master'), provenance=[B('images@master'), B('spec@master')])
    again = client.pfs.inspect_commit(commit=pfs.Commit.from_uri('preds@master'))
    assert not again.is_set('finished') and again.parent_commit.id == head.commit.id


def test_create_branch_with_provenance(dag):
    client = dag
    raw = client.pfs.inspect_branch(branch=B('raw@master'))  # created for the provenance, with an empty commit
    mid = client.pfs.inspect_branch(branch=B('mid@master'))
    out = client.pfs.inspect_branch(branch=B('out@master'))
    assert names(mid.direct_provenance) == ['raw@master'] and names(mid.subvenance) == ['out@master']
    assert names(out.direct_provenance) == ['mid@master'] and names(out.provenance) == ['mid@master', 'raw@master']
    assert names(raw.subvenance) == ['mid@master', 'out@master'] and not raw.provenance

    head = client.pfs.inspect_commit(commit=pfs.Commit.from_uri('out@master'))
    assert head.origin.kind == pfs.OriginKind.AUTO and head.is_set('finished')
    assert [c.id for c in head.direct_provenance] == [mid.head.id]
    assert not head.commit.branch.name


def test_a_commit_upstream_propagates_open_commits_downstream(dag):
    client = dag
    mid_before = client.pfs.inspect_branch(branch=B('mid@master')).head.id
    started = client.pfs.start_commit(branch=B('raw@master'))
    for repo, provenant_on in (('mid', 'raw'), ('out', 'mid')):
        info = client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f'{repo}@master'))
        assert info.commit.id == started.id  # one commit set across the DAG
        assert info.origin.kind == pfs.OriginKind.AUTO and not info.is_set('finished')
        assert [(c.repo.name, c.id) for c in info.direct_provenance] == [(provenant_on, started.id)]
    assert client.pfs.inspect_commit(commit=pfs.Commit.from_uri('mid@master')).parent_commit.id == mid_before
    assert sorted(c.commit.repo.name for c in client.pfs.inspect_commit_set(commit_set=pfs.CommitSet(id=started.id))) == [
        'mid', 'out', 'raw']
    # nothing finishes the downstream commits but a client (a pipeline would, here there is none)
    client.pfs.finish_commit(commit=started)
    assert not client.pfs.inspect_commit(commit=pfs.Commit.from_uri('mid@master')).is_set('finished')
    # writing into the open output commit by id is allowed, then a client finishes it
    client.pfs.put_file_from_bytes(commit=pfs.Commit.from_uri(f'mid@{started.id}'), path='/result.txt', data=b'r')
    client.pfs.finish_commit(commit=pfs.Commit.from_uri(f'mid@{started.id}'))
    client.pfs.finish_commit(commit=pfs.Commit.from_uri(f'out@{started.id}'))
    assert b''.join(c.value for c in client.pfs.get_file(file=pfs.File.from_uri('mid@master:/result.txt'))) == b'r'


def test_wait_ready_waits_for_the_provenance(dag):
    client = dag
    started = client.pfs.start_commit(branch=B('raw@master'))
    out = pfs.Commit.from_uri(f'out@{started.id}')
    rpc = client.pfs._ApiStub__rpc_inspect_commit
    # READY: every commit upstream finished. raw is open, so the wait runs into its deadline
    with StatusOf(OK.DEADLINE_EXCEEDED):
        rpc(pfs.InspectCommitRequest(commit=out, wait=pfs.CommitState.READY), timeout=1.0)
    client.pfs.finish_commit(commit=started)
    with StatusOf(OK.DEADLINE_EXCEEDED):  # mid, also upstream of out, is still open
        rpc(pfs.InspectCommitRequest(commit=out, wait=pfs.CommitState.READY), timeout=1.0)
    mid = client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f'mid@{started.id}'), wait=pfs.CommitState.READY)
    assert mid.commit.id == started.id and not mid.is_set('finished')
    client.pfs.finish_commit(commit=pfs.Commit.from_uri(f'mid@{started.id}'))
    ready = rpc(pfs.InspectCommitRequest(commit=out, wait=pfs.CommitState.READY), timeout=30)
    assert ready.commit.id == started.id and not ready.is_set('finished')
    # and SubscribeCommit with READY sends it once ready
    sub = client.pfs.subscribe_commit(repo=pfs.Repo.from_uri('out'), from_=pfs.Commit.from_uri(
        f'out@{ready.parent_commit.id}'), state=pfs.CommitState.READY)
    assert next(sub).commit.id == started.id


def test_provenance_errors_are_pachds(dag):
    client = dag
    with StatusOf(OK.UNKNOWN, 'cannot start a commit on an output branch: default/mid@master'):
        client.pfs.start_commit(branch=B('mid@master'))
    with StatusOf(OK.UNKNOWN, 'cannot start a commit on an output branch: default/out@master'):
        sdk_put(client, 'out@master', {'/x': b'x'})  # a one-off write makes a commit too
    with StatusOf(OK.UNKNOWN, 'repo default/raw cannot be in the provenance of its own branch'):
        client.pfs.create_branch(branch=B('raw@dev'), provenance=[B('raw@master')])
    with StatusOf(OK.UNKNOWN, 'repo default/raw cannot be in the provenance of its own branch'):
        client.pfs.create_branch(branch=B('raw@master'), provenance=[B('out@master')])  # a cycle
    client.pfs.create_repo(repo=pfs.Repo.from_uri('both'))
    with StatusOf(OK.UNKNOWN, 'multiple branches from the same repo, "default/raw", cannot participate in a DAG'):
        client.pfs.create_branch(branch=B('both@master'), provenance=[B('raw@master'), B('raw@dev')])
    with StatusOf(OK.NOT_FOUND, 'repo default/nope not found'):
        client.pfs.create_branch(branch=B('both@master'), provenance=[B('nope@master')])
    with StatusOf(OK.UNIMPLEMENTED, 'triggers'):
        client.pfs.create_branch(branch=B('both@master'), trigger=pfs.Trigger(branch='master', size='1M'))
    # a refused CreateBranch changed nothing
    assert names(client.pfs.inspect_branch(branch=B('raw@master')).provenance) == []
    assert not client.pfs.branch_exists(B('both@master'))


def test_deleting_a_repo_forgets_its_provenance_edges(dag):
    client = dag
    client.pfs.delete_repo(repo=pfs.Repo.from_uri('out'))
    assert names(client.pfs.inspect_branch(branch=B('mid@master')).subvenance) == []
    started = client.pfs.start_commit(branch=B('raw@master'))
    assert client.pfs.inspect_commit(commit=pfs.Commit.from_uri('mid@master')).commit.id == started.id


def test_drop_and_squash_of_a_commit_with_subvenance_need_recursive(dag):
    client = dag
    started = client.pfs.start_commit(branch=B('raw@master'))
    client.pfs.finish_commit(commit=started)
    raw = pfs.Commit.from_uri(f'raw@{started.id}')
    with StatusOf(OK.UNKNOWN, f'cannot drop commit (default/raw@{started.id}) with subvenance without recursive'):
        client.pfs.drop_commit(commit=raw)
    with StatusOf(OK.UNKNOWN, f'cannot squash commit (default/raw@{started.id}) with subvenance without recursive'):
        client.pfs.squash_commit(commit=raw)
    assert len(list(client.pfs.inspect_commit_set(commit_set=pfs.CommitSet(id=started.id)))) == 3

    client.pfs.drop_commit(commit=raw, recursive=True)  # the commit and the two provenant on it
    with StatusOf(OK.NOT_FOUND, 'no commits found for commitset'):
        list(client.pfs.inspect_commit_set(commit_set=pfs.CommitSet(id=started.id)))
    for repo in ('raw', 'mid', 'out'):  # every branch is back where it was
        head = client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f'{repo}@master'))
        assert head.commit.id != started.id and head.is_set('finished')


def _pick(uri: str) -> pfs.CommitPicker:
    repo, _, ref = uri.partition('@')
    name = pfs.RepoPicker(name=pfs.RepoPickerRepoName(project=pfs.ProjectPicker(name='default'), name=repo, type='user'))
    if len(ref) == 32:
        return pfs.CommitPicker(id=pfs.CommitPickerCommitByGlobalId(repo=name, id=ref))
    return pfs.CommitPicker(branch_head=pfs.BranchPicker(name=pfs.BranchPickerBranchName(repo=name, name=ref)))


def test_walk_commit_provenance_and_subvenance_follow_the_commit_edges(dag):
    """pachd 2.12's WalkCommitProvenance/Subvenance: breadth first, the start left out, bounded by
    max_depth and max_commits; a second provenance branch (a pipeline's spec) makes a rerun whose
    output commit has a new id and still the old input commit in its provenance."""
    client = dag
    started = client.pfs.start_commit(branch=B('raw@master'))
    client.pfs.finish_commit(commit=started)
    for repo in ('mid', 'out'):
        client.pfs.finish_commit(commit=pfs.Commit.from_uri(f'{repo}@{started.id}'))
    walk_up, walk_down = client.pfs.walk_commit_provenance, client.pfs.walk_commit_subvenance

    def repos(infos):
        return [(i.commit.repo.name, i.commit.id) for i in infos]

    assert repos(walk_down(start=[_pick(f'raw@{started.id}')])) == [
        ('mid', started.id), ('out', started.id)]
    assert repos(walk_down(start=[_pick(f'raw@{started.id}')], max_depth=1)) == [
        ('mid', started.id)]
    assert repos(walk_down(start=[_pick(f'raw@{started.id}')], max_commits=1)) == [
        ('mid', started.id)]
    assert repos(walk_up(start=[_pick('out@master')])) == [
        ('mid', started.id), ('raw', started.id)]
    assert repos(walk_up(start=[_pick('raw@master')])) == []

    # the rerun: out gets a second provenance branch; a commit there is a new commit set
    client.pfs.create_repo(repo=pfs.Repo.from_uri('spec'))
    client.pfs.create_branch(branch=B('out@master'), provenance=[B('mid@master'), B('spec@master')])
    client.pfs.finish_commit(commit=pfs.Commit.from_uri('out@master'))
    rerun = client.pfs.start_commit(branch=B('spec@master'))
    client.pfs.finish_commit(commit=rerun)
    output = client.pfs.inspect_commit(commit=pfs.Commit.from_uri('out@master'))
    assert output.commit.id == rerun.id and not output.is_set('finished')
    assert sorted((c.repo.name, c.id) for c in output.direct_provenance) == [('mid', started.id), ('spec', rerun.id)]
    client.pfs.finish_commit(commit=pfs.Commit.from_uri(f'out@{rerun.id}'))
    below = repos(walk_down(start=[_pick(f'mid@{started.id}')]))
    assert below[0] == ('out', started.id) and ('out', rerun.id) in below

    with StatusOf(OK.NOT_FOUND, 'not found'):
        list(walk_down(start=[_pick('raw@' + 'f' * 32)]))
    with StatusOf(OK.INVALID_ARGUMENT, 'commit picker'):
        list(walk_down(start=[pfs.CommitPicker()]))
