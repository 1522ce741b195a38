"""Transactions (transaction_v2.API) on the local PFS server, as pachd 2.12 runs them, driven by
the official pachyderm_sdk client over real gRPC: writes sent with ``pach-transaction`` are
dry run and recorded, FinishTransaction applies them all or none, Inspect/List/Delete, unknown
ids, BatchTransaction, auth, and a restart keeping open transactions."""
from __future__ import annotations

import queue
import threading

import grpc
import pytest
from pachyderm_sdk import Client
from pachyderm_sdk.api import pfs as pfs_api
from pachyderm_sdk.api import transaction as txn_api

from conftest import StatusOf, restart_pfs, sdk_put
from waiting import wait_for

OK = grpc.StatusCode
WAIT = 30  # seconds: generous, for a loaded machine; a passing run never waits this long
MISSING = 'f' * 12 + '4' + 'f' * 19  # shaped like a commit id (a UUID v4 without dashes), names no commit


def commit(repo: str, commit_id: str) -> pfs_api.Commit:
    # by id: Commit.from_uri('repo@<id>') would name a branch of that name
    return pfs_api.Commit(repo=pfs_api.Repo.from_uri(repo), id=commit_id)


def move(client, branch_uri: str, head: pfs_api.Commit) -> None:
    client.pfs.create_branch(branch=pfs_api.Branch.from_uri(branch_uri), head=head)


def head_of(client, branch_uri: str) -> str:
    return client.pfs.inspect_branch(branch=pfs_api.Branch.from_uri(branch_uri)).head.id


def open_transactions(client) -> list[str]:
    return [info.transaction.id for info in client.transaction.list_transaction().transaction_info]


def without_transaction(pfs_server, token=None) -> Client:
    return Client(host='127.0.0.1', port=pfs_server.port, auth_token=token)


@pytest.fixture
def promote(sdk_client):
    """Repos ``labels`` and ``images``: ``labels@master`` and ``images@labeled`` at a first
    commit each, and a newer commit on each repo's ``staging`` branch to promote.
    Returns {'labels': (old, new), 'images': (old, new)}."""
    heads = {}
    for repo, target in (('labels', 'master'), ('images', 'labeled')):
        sdk_client.pfs.create_repo(repo=pfs_api.Repo.from_uri(repo))
        old = sdk_put(sdk_client, f'{repo}@staging', {'/v.txt': b'1'})
        new = sdk_put(sdk_client, f'{repo}@staging', {'/v.txt': b'2'})
        move(sdk_client, f'{repo}@{target}', commit(repo, old))
        heads[repo] = (old, new)
    return heads


def promote_both(client, heads) -> None:
    move(client, 'labels@master', commit('labels', heads['labels'][1]))
    move(client, 'images@labeled', commit('images', heads['images'][1]))


def assert_not_promoted(client, heads) -> None:
    assert head_of(client, 'labels@master') == heads['labels'][0]
    assert head_of(client, 'images@labeled') == heads['images'][0]


# ----------------------------------------------------------------------------- all together
def test_two_branches_of_two_repos_move_in_one_transaction(sdk_client, promote):
    with sdk_client.transaction.transaction() as txn:
        promote_both(sdk_client, promote)
        # recorded, not applied: a reader sees both branches where they were
        assert_not_promoted(sdk_client, promote)
        assert open_transactions(sdk_client) == [txn.id]
    assert head_of(sdk_client, 'labels@master') == promote['labels'][1]
    assert head_of(sdk_client, 'images@labeled') == promote['images'][1]
    assert open_transactions(sdk_client) == []
    assert sdk_client.transaction_id is None  # the context manager put the client back as it was


def test_finish_transaction_returns_the_requests_and_their_responses(pfs, promote):
    client = without_transaction(pfs)
    txn = client.transaction.start_transaction()
    promote_both(client, promote)
    info = client.transaction.finish_transaction(transaction=txn)
    assert info.transaction.id == txn.id
    assert [r.create_branch.branch.name for r in info.requests] == ['master', 'labeled']
    assert [r.create_branch.head.id for r in info.requests] == [promote['labels'][1], promote['images'][1]]
    assert len(info.responses) == 2 and info.version == 2 and info.started is not None
    assert head_of(client, 'images@labeled') == promote['images'][1]


def test_after_finish_transaction_the_sdk_still_sends_an_empty_transaction_id(pfs, promote):
    """The sdk's finish_transaction() sets the client's transaction id to "", and still sends the
    key: pachd reads that as transaction "" and refuses every later write. The context manager
    (or ``client.transaction_id = None``) avoids it."""
    client = without_transaction(pfs)
    txn = client.transaction.start_transaction()
    promote_both(client, promote)
    client.transaction.finish_transaction(transaction=txn)
    assert client.transaction_id == ''
    with StatusOf(OK.UNKNOWN, 'transactions  not found'):
        move(client, 'labels@master', commit('labels', promote['labels'][0]))
    assert head_of(client, 'labels@master') == promote['labels'][1]  # reads ignore the key
    client.transaction_id = None
    move(client, 'labels@master', commit('labels', promote['labels'][0]))
    assert head_of(client, 'labels@master') == promote['labels'][0]


# ----------------------------------------------------------------------------- or nothing
def test_a_bad_request_is_refused_when_sent_and_nothing_is_applied(sdk_client, promote):
    with StatusOf(OK.NOT_FOUND, f'error running request 2 of 2: commit default/images@{MISSING} not found'):
        with sdk_client.transaction.transaction():
            move(sdk_client, 'labels@master', commit('labels', promote['labels'][1]))
            move(sdk_client, 'images@labeled', commit('images', MISSING))
    assert_not_promoted(sdk_client, promote)
    assert open_transactions(sdk_client) == []  # the context manager deleted it


def test_a_request_failing_at_finish_applies_nothing_and_the_transaction_stays(pfs, promote):
    client = without_transaction(pfs)
    txn = client.transaction.start_transaction()
    promote_both(client, promote)
    # meanwhile, outside the transaction, the commit the second request names goes away
    outside = without_transaction(pfs)
    outside.pfs.drop_commit(commit=commit('images', promote['images'][1]))

    new_images = promote['images'][1]
    with StatusOf(OK.NOT_FOUND, f'error running request 2 of 2: commit default/images@{new_images} not found'):
        client.transaction.finish_transaction(transaction=txn)
    assert_not_promoted(outside, promote)  # the first move was rolled back with the second
    # as on pachd, a transaction that failed to finish is still open, with its requests
    assert open_transactions(outside) == [txn.id]
    assert len(outside.transaction.inspect_transaction(transaction=txn).requests) == 2
    outside.transaction.delete_transaction(transaction=txn)
    assert open_transactions(outside) == []


@pytest.mark.parametrize('repo, head, code, message', [
    ('nope', ('labels', 'NEW'), OK.NOT_FOUND, 'repo default/nope not found'),
    ('labels', ('images', 'NEW'), OK.INVALID_ARGUMENT,
     'branch default/labels@master cannot point at commit default/images@{new} of another repo'),
    ('labels', ('labels', MISSING), OK.NOT_FOUND, f'commit default/labels@{MISSING} not found'),
])
def test_create_branch_errors_in_a_transaction_are_those_of_create_branch(sdk_client, promote, repo, head, code,
                                                                           message):
    head_repo, head_id = head
    head_id = promote[head_repo][1] if head_id == 'NEW' else head_id
    expected = 'error running request 1 of 1: ' + message.format(new=head_id)
    with StatusOf(code, expected):
        with sdk_client.transaction.transaction():
            move(sdk_client, f'{repo}@master', commit(head_repo, head_id))
    assert_not_promoted(sdk_client, promote)


def test_batch_transaction_is_all_or_nothing(sdk_client, promote):
    def branch_request(repo, branch, commit_id):
        return txn_api.TransactionRequest(create_branch=pfs_api.CreateBranchRequest(
            branch=pfs_api.Branch.from_uri(f'{repo}@{branch}'), head=commit(repo, commit_id)))

    bad = [branch_request('labels', 'master', promote['labels'][1]), branch_request('images', 'labeled', MISSING)]
    with StatusOf(OK.NOT_FOUND, f'error running request 2 of 2: commit default/images@{MISSING} not found'):
        sdk_client.transaction.batch_transaction(requests=bad)
    assert_not_promoted(sdk_client, promote)

    good = [branch_request('labels', 'master', promote['labels'][1]),
            branch_request('images', 'labeled', promote['images'][1])]
    info = sdk_client.transaction.batch_transaction(requests=good)
    assert len(info.requests) == 2 and len(info.responses) == 2 and info.transaction.id
    assert head_of(sdk_client, 'labels@master') == promote['labels'][1]
    assert head_of(sdk_client, 'images@labeled') == promote['images'][1]
    assert open_transactions(sdk_client) == []  # a batch is never recorded


# ----------------------------------------------------------------------------- inspect, list, delete
def test_inspect_list_and_delete(pfs, promote):
    client = without_transaction(pfs)
    first = client.transaction.start_transaction()
    second = client.transaction.start_transaction()
    assert len(first.id) == 32 and first.id != second.id
    assert open_transactions(client) == [first.id, second.id]  # in the order they were started

    in_first = Client(host='127.0.0.1', port=pfs.port, transaction_id=first.id)
    move(in_first, 'labels@master', commit('labels', promote['labels'][1]))
    info = client.transaction.inspect_transaction(transaction=first)
    assert info.transaction.id == first.id and info.version == 1
    assert [r.create_branch.branch.repo.name for r in info.requests] == ['labels']
    assert len(info.responses) == 1 and info.started is not None
    assert client.transaction.inspect_transaction(transaction=second).requests == []

    client.transaction.delete_transaction(transaction=first)
    assert open_transactions(client) == [second.id]
    assert head_of(client, 'labels@master') == promote['labels'][0]  # deleted, never applied
    for call in (client.transaction.inspect_transaction, client.transaction.delete_transaction,
                 client.transaction.finish_transaction):
        with StatusOf(OK.UNKNOWN, f'transactions {first.id} not found'):
            call(transaction=first)


def test_finishing_an_unknown_or_finished_transaction_fails(sdk_client, promote):
    with StatusOf(OK.UNKNOWN, f'transactions {MISSING} not found'):
        sdk_client.transaction.finish_transaction(transaction=txn_api.Transaction(id=MISSING))
    with sdk_client.transaction.transaction() as txn:
        promote_both(sdk_client, promote)
    with StatusOf(OK.UNKNOWN, f'transactions {txn.id} not found'):
        sdk_client.transaction.finish_transaction(transaction=txn)
    with StatusOf(OK.UNKNOWN, f'transactions {txn.id} not found'):
        sdk_client.transaction.inspect_transaction(transaction=txn)


def test_a_write_naming_an_unknown_transaction_is_refused(pfs, promote):
    stranger = Client(host='127.0.0.1', port=pfs.port, transaction_id=MISSING)
    with StatusOf(OK.UNKNOWN, f'transactions {MISSING} not found'):
        move(stranger, 'labels@master', commit('labels', promote['labels'][1]))
    with StatusOf(OK.UNKNOWN, f'transactions {MISSING} not found'):
        stranger.pfs.create_repo(repo=pfs_api.Repo.from_uri('more'))
    # reads do not go through transactions: the key is ignored, as pachd ignores it
    assert head_of(stranger, 'labels@master') == promote['labels'][0]
    assert 'more' not in [r.repo.name for r in stranger.pfs.list_repo()]


def test_writes_localpfs_cannot_hold_are_refused_inside_a_transaction(sdk_client, promote):
    with sdk_client.transaction.transaction() as txn:
        move(sdk_client, 'labels@master', commit('labels', promote['labels'][1]))
        with StatusOf(OK.UNIMPLEMENTED, 'error running request 2 of 2: localpfs does not run StartCommit '
                                        'in a transaction'):
            sdk_client.pfs.start_commit(branch=pfs_api.Branch.from_uri('labels@master'))
        assert len(sdk_client.transaction.inspect_transaction(transaction=txn).requests) == 1
    assert head_of(sdk_client, 'labels@master') == promote['labels'][1]


def test_other_writes_join_the_transaction_too(sdk_client, promote):
    """CreateRepo, DeleteBranch and FinishCommit are recorded and applied with the rest."""
    open_commit = sdk_client.pfs.start_commit(branch=pfs_api.Branch.from_uri('labels@draft'))
    with sdk_client.transaction.transaction():
        sdk_client.pfs.create_repo(repo=pfs_api.Repo.from_uri('extra'))
        sdk_client.pfs.delete_branch(branch=pfs_api.Branch.from_uri('images@staging'))
        sdk_client.pfs.finish_commit(commit=open_commit)
        assert 'extra' not in [r.repo.name for r in sdk_client.pfs.list_repo()]
    assert 'extra' in [r.repo.name for r in sdk_client.pfs.list_repo()]
    assert [b.branch.name for b in sdk_client.pfs.list_branch(repo=pfs_api.Repo.from_uri('images'))] == ['labeled']
    assert sdk_client.pfs.inspect_commit(commit=open_commit).finished is not None


@pytest.fixture
def quiet_grpc_client_log():
    """The sdk's interceptor logs a cancelled stream at ERROR; the test below cancels on purpose."""
    import logging

    logger = logging.getLogger('grpc._channel')
    was_disabled, logger.disabled = logger.disabled, True
    yield
    logger.disabled = was_disabled


@pytest.mark.usefixtures('quiet_grpc_client_log')
def test_a_subscriber_sees_a_commit_finished_by_a_transaction(pfs, sdk_client, promote):
    """The store wakes subscribers while the transaction is not yet committed; they must be
    woken again once it is, or a subscriber asleep meanwhile would never see the commit."""
    open_commit = sdk_client.pfs.start_commit(branch=pfs_api.Branch.from_uri('labels@draft'))
    call = sdk_client.pfs._ApiStub__rpc_subscribe_commit(pfs_api.SubscribeCommitRequest(  # the sdk's stub: cancellable
        repo=pfs_api.Repo.from_uri('labels'), branch='draft', state=pfs_api.CommitState.FINISHED))
    arrived: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: arrived.put(next(iter(call)).commit.id), daemon=True)
    reader.start()
    try:
        wait_for(lambda: pfs.open_subscriptions()['default/labels@draft'], WAIT, 'the subscription to be open')
        with sdk_client.transaction.transaction():
            sdk_client.pfs.finish_commit(commit=open_commit)
        assert arrived.get(timeout=WAIT) == open_commit.id
    finally:
        call.cancel()
        reader.join(WAIT)


# ----------------------------------------------------------------------------- auth and restarts
@pytest.mark.pfs_auth
def test_transactions_need_the_token_when_auth_is_on(pfs, sdk_client, promote):
    anonymous = without_transaction(pfs)
    with StatusOf(OK.UNAUTHENTICATED):
        anonymous.transaction.start_transaction()
    txn = sdk_client.transaction.start_transaction()
    sdk_client.transaction_id = None
    intruder = Client(host='127.0.0.1', port=pfs.port, transaction_id=txn.id)
    with StatusOf(OK.UNAUTHENTICATED):
        move(intruder, 'labels@master', commit('labels', promote['labels'][1]))
    with StatusOf(OK.UNAUTHENTICATED):
        intruder.transaction.finish_transaction(transaction=txn)
    assert sdk_client.transaction.inspect_transaction(transaction=txn).requests == []
    sdk_client.transaction.delete_transaction(transaction=txn)

    with sdk_client.transaction.transaction():
        promote_both(sdk_client, promote)
    assert head_of(sdk_client, 'images@labeled') == promote['images'][1]


def test_an_open_transaction_survives_a_restart(pfs, promote):
    client = without_transaction(pfs)
    txn = client.transaction.start_transaction()
    promote_both(client, promote)
    pfs.stop()
    server = restart_pfs(pfs)
    try:
        client = without_transaction(server)
        assert open_transactions(client) == [txn.id]
        client.transaction.finish_transaction(transaction=txn)
        assert head_of(client, 'labels@master') == promote['labels'][1]
        assert head_of(client, 'images@labeled') == promote['images'][1]
    finally:
        server.stop()
