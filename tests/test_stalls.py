"""Every pachd call ends, with a clear error, when pachd freezes (the socket stays open, nothing moves).

A TCP proxy between the client and the local PFS server stops forwarding in both
directions, as a hung pachd or a stalled load balancer would. Each call must end
within a small multiple of the client's timeout, and work again after the thaw.
"""
import os
import time

import pytest

from label_studio_pachyderm import pachd

from conftest import PROJECT
from tcp_proxy import FreezingProxy

TIMEOUT = 2.0
# A frozen call fails after one timeout; a write then tries to drop its commit (one more).
# The rest is slack for a loaded 2-core machine.
BOUND = 3 * TIMEOUT + 6


@pytest.fixture
def proxy(pfs):
    proxy = FreezingProxy(pfs.address)
    yield proxy
    proxy.thaw()
    proxy.close()


@pytest.fixture
def client(proxy):
    client = pachd.PachdClient(proxy.address, timeout=TIMEOUT)
    yield client
    client.close()


@pytest.fixture
def repo(client):
    client.create_repo(PROJECT, 'images')
    return 'images'


def timed(call):
    started = time.monotonic()
    with pytest.raises(pachd.PachdError) as info:
        call()
    return time.monotonic() - started, str(info.value)


def test_unary_call_ends_when_pachd_freezes(client, proxy, repo):
    proxy.freeze()
    elapsed, message = timed(lambda: client.inspect_repo(PROJECT, repo))
    assert elapsed < BOUND
    assert 'pachd' in message
    proxy.thaw()
    assert client.inspect_repo(PROJECT, repo).name == repo


def test_listing_ends_when_pachd_freezes(client, proxy, repo):
    client.write_commit(PROJECT, repo, 'master', [pachd.FileOp.put(f'f{i}.txt', b'x') for i in range(20)])
    head = client.branch_head(PROJECT, repo, 'master')
    proxy.freeze()
    elapsed, message = timed(lambda: list(client.list_files(PROJECT, repo, head)))
    assert elapsed < BOUND
    assert 'pachd' in message
    proxy.thaw()
    assert len(list(client.list_files(PROJECT, repo, head))) == 20


def test_read_that_stops_midway_ends(client, proxy, repo):
    """The first bytes arrive, then nothing: the idle bound between messages ends the read."""
    payload = os.urandom(48 * 1024 * 1024)
    client.write_commit(PROJECT, repo, 'master', [pachd.FileOp.put('big.bin', payload)])
    head = client.branch_head(PROJECT, repo, 'master')
    stream = client.read_file(PROJECT, repo, head, 'big.bin')
    chunks = stream.iter_chunks(1024 * 1024)
    assert len(next(chunks)) == 1024 * 1024
    proxy.freeze()
    started = time.monotonic()
    with pytest.raises(pachd.PachdUnavailable) as info:
        for _ in chunks:
            pass
    assert time.monotonic() - started < BOUND
    assert 'stopped sending' in str(info.value)


@pytest.mark.slow
def test_upload_that_stalls_ends_and_the_branch_recovers(client, proxy, repo):
    """pachd stops taking data during a commit: the write fails within the bound; after the thaw
    the unfinished commit is visible, can be dropped, and the branch takes new commits."""
    def ops():
        yield pachd.FileOp.put('first.bin', os.urandom(1024 * 1024))
        proxy.freeze()
        for i in range(64):  # far more than the socket buffers hold
            yield pachd.FileOp.put(f'more-{i}.bin', os.urandom(1024 * 1024))

    elapsed, message = timed(lambda: client.write_commit(PROJECT, repo, 'master', ops(), description='stalled',
                                                         marker='writer: test'))
    assert elapsed < BOUND + TIMEOUT
    assert 'pachd' in message
    proxy.thaw()
    left = client.unfinished_head(PROJECT, repo, 'master')
    assert left is not None and 'writer: test' in left.description
    client.drop_commit(PROJECT, repo, left.id)
    assert client.unfinished_head(PROJECT, repo, 'master') is None
    commit = client.write_commit(PROJECT, repo, 'master', [pachd.FileOp.put('after.txt', b'ok')])
    assert [e.path for e in client.list_files(PROJECT, repo, commit)] == ['after.txt']


@pytest.mark.slow
def test_connecting_through_a_frozen_proxy_ends(proxy, repo):
    """A fresh client whose very first connection goes nowhere."""
    proxy.freeze()
    fresh = pachd.PachdClient(proxy.address, timeout=TIMEOUT)
    try:
        elapsed, _ = timed(lambda: list(fresh.list_repos(PROJECT)))
        assert elapsed < BOUND
        elapsed, _ = timed(fresh.check)
        assert elapsed < BOUND
    finally:
        fresh.close()


def test_marker_is_kept_on_the_finished_commit(client, repo):
    commit = client.write_commit(PROJECT, repo, 'master', [pachd.FileOp.put('a.txt', b'a')],
                                 description=lambda: 'described later', marker='writer: abc')
    info = client.inspect_commit(PROJECT, repo, commit)
    assert info.description == 'described later\nwriter: abc'
    assert client.unfinished_head(PROJECT, repo, 'master') is None
