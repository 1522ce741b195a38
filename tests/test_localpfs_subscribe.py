"""SubscribeCommit on the local PFS server, and the server's keepalive policy, driven by the
official pachyderm_sdk client over real gRPC.

pachd's semantics (``subscribeCommit`` in src/server/pfs/server/driver.go, pachyderm 2.12):
every commit of the repo, oldest first, existing ones and then new ones; ``branch`` keeps the
commits started on that branch, ``from`` starts after that commit, ``state`` holds each
commit back until it reaches that state, ``origin_kind``/``all`` filter on the origin.
"""
from __future__ import annotations

import queue
import threading
import time

import grpc
import pytest
from pachyderm_sdk.api import pfs

from conftest import StatusOf, sdk_put

pfs_api = pfs  # the sdk's module, in the tests whose `pfs` argument is the server fixture

WAIT = 30  # seconds: generous, for a loaded machine; a passing run never waits this long
OK = grpc.StatusCode


class Subscription:
    """A SubscribeCommit call read by a thread into a queue; cancel() ends it."""

    def __init__(self, client, **request):
        request.setdefault('repo', pfs.Repo.from_uri('images'))
        rpc = client.pfs._ApiStub__rpc_subscribe_commit  # the sdk's own stub, for .cancel()
        self.call = rpc(pfs.SubscribeCommitRequest(**request))
        self.items: queue.Queue = queue.Queue()
        self.error = None
        self.ended = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            for info in self.call:
                self.items.put(info)
        except grpc.RpcError as exc:
            self.error = exc
        finally:
            self.ended.set()

    def next(self) -> pfs.CommitInfo:
        try:
            return self.items.get(timeout=WAIT)
        except queue.Empty:
            raise AssertionError(f'no commit arrived within {WAIT} s (stream error: {self.error})') from None

    def ids(self, count: int) -> list[str]:
        return [self.next().commit.id for _ in range(count)]

    def cancel(self):
        self.call.cancel()
        assert self.ended.wait(WAIT), 'the stream did not end after cancel()'


@pytest.fixture(autouse=True)
def quiet_grpc_client_log():
    """The sdk's interceptor logs a cancelled stream at ERROR; these tests cancel on purpose."""
    import logging

    logger = logging.getLogger('grpc._channel')
    was_disabled, logger.disabled = logger.disabled, True
    yield
    logger.disabled = was_disabled


@pytest.fixture
def subscriptions():
    opened = []

    def open_(client, **request):
        sub = Subscription(client, **request)
        opened.append(sub)
        return sub

    yield open_
    for sub in opened:
        sub.call.cancel()


def test_existing_commits_then_new_ones_in_order(sdk_client, sdk_repo, subscriptions):
    first = sdk_put(sdk_client, 'images@master', {'/a': b'1'})
    second = sdk_put(sdk_client, 'images@master', {'/b': b'2'})
    sub = subscriptions(sdk_client)
    assert sub.ids(2) == [first, second]

    third = sdk_put(sdk_client, 'images@master', {'/c': b'3'})
    info = sub.next()
    assert info.commit.id == third
    assert info.commit.repo.name == 'images' and info.commit.repo.project.name == 'default'
    assert not info.commit.branch.name  # pachd 2.11+ leaves it empty
    assert info.parent_commit.id == second
    assert sub.error is None and not sub.ended.is_set()  # still open, waiting for more


def test_branch_filter_and_from(sdk_client, sdk_repo, subscriptions):
    first = sdk_put(sdk_client, 'images@master', {'/a': b'1'})
    sdk_put(sdk_client, 'images@dev', {'/x': b'x'})
    second = sdk_put(sdk_client, 'images@master', {'/b': b'2'})

    on_master = subscriptions(sdk_client, branch='master')
    assert on_master.ids(2) == [first, second]  # the dev commit in between is skipped
    after_first = subscriptions(sdk_client, branch='master', from_=pfs.Commit.from_uri(f'images@{first}'))
    assert after_first.next().commit.id == second  # starts after ``from``, which is not sent

    sdk_put(sdk_client, 'images@dev', {'/y': b'y'})
    third = sdk_put(sdk_client, 'images@master', {'/c': b'3'})
    assert on_master.next().commit.id == third  # the new dev commit before it was skipped
    assert after_first.next().commit.id == third

    everything = subscriptions(sdk_client)
    assert len(everything.ids(5)) == 5  # no branch: all commits of the repo


def test_state_finished_holds_a_commit_back_until_it_finishes(sdk_client, sdk_repo, subscriptions):
    base = sdk_put(sdk_client, 'images@master', {'/a': b'1'})
    from_base = pfs.Commit.from_uri(f'images@{base}')
    started = subscriptions(sdk_client, branch='master', from_=from_base)
    finished = subscriptions(sdk_client, branch='master', from_=from_base, state=pfs.CommitState.FINISHED)
    ready = subscriptions(sdk_client, branch='master', from_=from_base, state=pfs.CommitState.READY)

    open_commit = sdk_client.pfs.start_commit(branch=pfs.Branch.from_uri('images@master'))
    seen_open = started.next()
    assert seen_open.commit.id == open_commit.id and not seen_open.is_set('finished')
    seen_ready = ready.next()  # nothing upstream here: a commit is ready once it exists
    assert seen_ready.commit.id == open_commit.id and not seen_ready.is_set('finished')
    assert finished.items.empty() and finished.error is None

    sdk_client.pfs.finish_commit(commit=open_commit)
    seen_finished = finished.next()
    assert seen_finished.commit.id == open_commit.id
    assert seen_finished.is_set('finished')  # sent once finished, not when it was first seen


def test_an_open_commit_holds_back_the_ones_after_it(sdk_client, sdk_repo, subscriptions):
    """As in pachd, the stream waits on each commit in turn."""
    held = sdk_client.pfs.start_commit(branch=pfs.Branch.from_uri('images@dev'))
    sub = subscriptions(sdk_client, state=pfs.CommitState.FINISHED)
    later = sdk_put(sdk_client, 'images@master', {'/a': b'1'})
    assert sub.items.empty()
    sdk_client.pfs.finish_commit(commit=held)
    assert sub.ids(2) == [held.id, later]


def test_origin_kind_and_all(sdk_client, sdk_repo, subscriptions):
    sdk_client.pfs.create_branch(branch=pfs.Branch.from_uri('images@empty'))  # an AUTO commit
    auto = sdk_client.pfs.inspect_commit(commit=pfs.Commit.from_uri('images@empty')).commit.id
    user = sdk_put(sdk_client, 'images@master', {'/a': b'1'})

    assert subscriptions(sdk_client, origin_kind=pfs.OriginKind.USER).next().commit.id == user
    only_auto = subscriptions(sdk_client, origin_kind=pfs.OriginKind.AUTO)
    info = only_auto.next()
    assert info.commit.id == auto and info.origin.kind == pfs.OriginKind.AUTO
    assert subscriptions(sdk_client).ids(2) == [auto, user]  # ORIGIN_KIND_UNKNOWN: every kind
    assert subscriptions(sdk_client, origin_kind=pfs.OriginKind.USER, all=True).ids(2) == [auto, user]

    second_user = sdk_put(sdk_client, 'images@master', {'/b': b'2'})
    sdk_client.pfs.create_branch(branch=pfs.Branch.from_uri('images@empty2'))
    third_auto = sdk_client.pfs.inspect_commit(commit=pfs.Commit.from_uri('images@empty2')).commit.id
    assert only_auto.next().commit.id == third_auto  # the user commit in between is skipped
    assert second_user != third_auto


def test_errors_are_pachds(sdk_client, sdk_repo):
    with StatusOf(OK.NOT_FOUND, 'repo default/nope not found'):
        list(sdk_client.pfs.subscribe_commit(repo=pfs.Repo.from_uri('nope')))
    sdk_client.pfs.create_repo(repo=pfs.Repo.from_uri('other'))
    elsewhere = sdk_put(sdk_client, 'other@master', {'/a': b'1'})
    with StatusOf(OK.UNKNOWN, 'the `from` commit needs to be from repo default/images'):
        list(sdk_client.pfs.subscribe_commit(repo=pfs.Repo.from_uri('images'),
                                             from_=pfs.Commit.from_uri(f'other@{elsewhere}')))
    with StatusOf(OK.NOT_FOUND, 'not found'):
        list(sdk_client.pfs.subscribe_commit(repo=pfs.Repo.from_uri('images'),
                                             from_=pfs.Commit(repo=pfs.Repo.from_uri('images'), id='f' * 12 + '4' + 'f' * 19)))


def test_cancelled_subscriptions_free_their_server_threads(sdk_client, sdk_repo):
    """More subscriptions than the server has worker threads, one after another: each must
    give its thread back when the client cancels, or the later ones would never start."""
    from label_studio_pachyderm.localpfs.server import MAX_WORKERS

    commit = sdk_put(sdk_client, 'images@master', {'/a': b'1'})
    for _ in range(MAX_WORKERS + 8):
        sub = Subscription(sdk_client)
        assert sub.next().commit.id == commit
        sub.cancel()
        assert sub.error is not None and sub.error.code() == OK.CANCELLED
    # and the server still answers ordinary calls
    assert sdk_client.pfs.inspect_commit(commit=pfs.Commit.from_uri('images@master')).commit.id == commit


def test_server_stop_ends_open_subscriptions_promptly(pfs, sdk_client, sdk_repo):
    commit = sdk_put(sdk_client, 'images@master', {'/a': b'1'})
    subs = [Subscription(sdk_client), Subscription(sdk_client, state=pfs_api.CommitState.FINISHED),
            Subscription(sdk_client, from_=pfs_api.Commit.from_uri(f'images@{commit}'))]
    assert subs[0].next().commit.id == commit and subs[1].next().commit.id == commit
    waiting = sdk_client.pfs.start_commit(branch=pfs_api.Branch.from_uri('images@dev'))  # holds subs[1] back
    assert subs[2].next().commit.id == waiting.id

    started = time.monotonic()
    pfs.stop(grace=60)  # a grace period does not wait for streams that never end by themselves
    assert time.monotonic() - started < 10
    for sub in subs:
        assert sub.ended.wait(WAIT)
        assert sub.error is not None and sub.error.code() in (OK.UNAVAILABLE, OK.CANCELLED), sub.error


@pytest.mark.slow
def test_keepalive_pings_every_6_seconds_are_accepted_without_calls(pfs):
    """pachd's keepalive enforcement (src/internal/grpcutil/server.go): MinTime 5 s,
    PermitWithoutStream. A client pinging every 6 s on an idle channel must not be told
    "too_many_pings" (gRPC's default policy does so after the third ping: GOAWAY, and the
    channel drops to IDLE)."""
    options = [('grpc.keepalive_time_ms', 6000), ('grpc.keepalive_timeout_ms', 20000),
               ('grpc.keepalive_permit_without_calls', 1), ('grpc.http2.max_pings_without_data', 0)]
    channel = grpc.insecure_channel(f'127.0.0.1:{pfs.port}', options=options)
    states = []
    channel.subscribe(states.append, try_to_connect=True)
    try:
        grpc.channel_ready_future(channel).result(timeout=WAIT)
        version = channel.unary_unary('/versionpb_v2.API/GetVersion', request_serializer=lambda _: b'',
                                      response_deserializer=lambda raw: raw)
        version(None, timeout=WAIT)
        # idle for four ping intervals: past gRPC's default tolerance of two bad pings
        deadline = time.monotonic() + 4 * 6 + 2
        while time.monotonic() < deadline:
            time.sleep(0.5)  # the point: an idle channel for 26 s, looked at twice a second
            assert states[-1] == grpc.ChannelConnectivity.READY, states
        version(None, timeout=WAIT)
        ready_at = states.index(grpc.ChannelConnectivity.READY)
        assert states[ready_at:] == [grpc.ChannelConnectivity.READY], states
    finally:
        channel.unsubscribe(states.append)
        channel.close()
