"""Watching many storages: the local PFS server with hundreds of open subscriptions, and a watcher
process whose threads do not grow with the storages it follows.

Real gRPC, the plugin's subscriptions hub (``pachd.Subscriptions``), a real
``label-studio-pachyderm watch`` process.
"""
import statistics
import time

import psutil
import pytest
from label_studio_pachyderm import pachd

import waiting
from test_import import PNG, put
from test_watch import WAIT, create, db_transactional, files_imported, watchers  # noqa: F401 (a fixture)


class Listener:
    """Keeps what a following reported (called on the hub's thread)."""

    def __init__(self):
        self.starts, self.commits, self.failures = [], [], []

    def subscribed(self, start):
        self.starts.append(start)

    def commit(self, commit_id):
        self.commits.append(commit_id)

    def failed(self, error, retry_in):
        self.failures.append(str(error))


def test_the_local_server_answers_other_calls_quickly_with_300_subscriptions_open(pfs, pfs_client):
    count = 300
    for i in range(count):
        pfs_client.create_repo('default', f'r{i}')
    put(pfs_client, 'r0', {'seed.png': PNG})
    hub = pachd.Subscriptions(backoff_first=0.5).start()
    listeners = [Listener() for _ in range(count)]
    followings = [hub.follow(pfs_client, 'default', f'r{i}', 'master', listeners[i]) for i in range(count)]
    try:
        waiting.wait_for(lambda: sum(pfs.open_subscriptions().values()) == count, timeout=WAIT,
                         what=f'{count} subscriptions open on the server')
        assert hub.counts() == {'followings': count, 'channels': 1}  # one channel for one pachd and token
        # More subscriptions than the server's 256 threads for other calls, and those calls still run:
        # each within a fraction of a second, not after a subscription ends.
        timings = []
        for i in range(20):
            started = time.monotonic()
            pfs_client.inspect_commit('default', 'r0', 'master')
            head = put(pfs_client, f'r{i}', {f'{i}.png': PNG})
            timings.append(time.monotonic() - started)
            waiting.wait_for(lambda: head in listeners[i].commits, timeout=WAIT, what=f'commit {i} reported')
        assert max(timings) < 5 and statistics.median(timings) < 1, timings
        # A commit wakes the subscribers of its repo only: the others saw nothing.
        assert all(not listener.commits for listener in listeners[20:])
        assert all(not listener.failures for listener in listeners)
        # Idle subscriptions sleep: no polling, on either side (server and hub in this process).
        process = psutil.Process()
        before, t0 = sum(process.cpu_times()[:2]), time.monotonic()
        time.sleep(5)
        used = sum(process.cpu_times()[:2]) - before
        assert used / (time.monotonic() - t0) < 0.1, f'{used:.2f} s of CPU in 5 s with {count} idle subscriptions'
    finally:
        for following in followings:
            following.cancel()
        assert all(following.wait(WAIT) for following in followings)
        hub.close()
    waiting.wait_for(lambda: not pfs.open_subscriptions(), timeout=WAIT, what='every subscription closed')


@pytest.mark.slow
def test_keepalive_finds_a_frozen_pachd_under_quiet_subscriptions_and_they_resume_after(pfs, pfs_client):
    """A pachd that keeps the sockets open but answers nothing (FreezingProxy): no deadline runs
    on a subscription, so only the channel's keepalive pings can find it: 10 s, then 5 s for the
    answer (``pachd.channels``). Every following then reports the failure and, once pachd answers
    again, subscribes anew and reports the next commit."""
    from tcp_proxy import FreezingProxy

    repos = ['r0', 'r1', 'r2']
    for repo in repos:
        pfs_client.create_repo('default', repo)
    proxy = FreezingProxy(pfs.address)
    proxied = pachd.PachdClient(f'grpc://{proxy.address}', timeout=5)
    hub = pachd.Subscriptions(backoff_first=0.5, backoff_max=2).start()
    listeners = {repo: Listener() for repo in repos}
    followings = [hub.follow(proxied, 'default', repo, 'master', listeners[repo]) for repo in repos]
    try:
        waiting.wait_for(lambda: all(listener.starts for listener in listeners.values()), timeout=WAIT,
                         what='three subscriptions open')
        proxy.freeze()
        frozen_at = time.monotonic()
        # 15 s of keepalive, with room for a loaded machine; gRPC's own default would take 70 s.
        waiting.wait_for(lambda: all(listener.failures for listener in listeners.values()), timeout=45,
                         what='every following to report the frozen pachd')
        found_after = time.monotonic() - frozen_at
        assert all('cannot reach pachd' in listener.failures[0] for listener in listeners.values())
        proxy.thaw()
        resubscribed = {repo: len(listener.starts) for repo, listener in listeners.items()}
        waiting.wait_for(lambda: all(len(listeners[repo].starts) > resubscribed[repo] for repo in repos),
                         timeout=WAIT, what='every following subscribed again after the thaw')
        heads = {repo: put(pfs_client, repo, {'after.png': PNG}) for repo in repos}
        waiting.wait_for(lambda: all(heads[repo] in listeners[repo].commits for repo in repos), timeout=WAIT,
                         what='the commits made after the thaw reported')
        assert found_after < 45, found_after
    finally:
        for following in followings:
            following.cancel()
        assert all(following.wait(WAIT) for following in followings)
        hub.close()
        proxied.close()
        proxy.close()


@pytest.mark.slow
@db_transactional
def test_the_watcher_has_as_many_threads_for_100_storages_as_for_5(api, project, pfs, pfs_client, watchers):
    watcher = watchers()
    process = psutil.Process(watcher.proc.pid)

    def follow(count):
        for i in range(len(followed), count):
            pfs_client.create_repo('default', f'r{i}')
            put(pfs_client, f'r{i}', {f'r{i}/0.png': PNG})
            followed.append(create(api, project, pfs.address, repo=f'r{i}', title=f'r{i}'))
        waiting.wait_for(lambda: sum(pfs.open_subscriptions().values()) == count, timeout=3 * WAIT,
                         what=f'{count} storages followed', process=watcher.proc, log=watcher.log)
        waiting.wait_for(lambda: files_imported(project, [f'r{i}/0.png' for i in range(count)]), timeout=3 * WAIT,
                         what=f'the catch-up syncs of {count} storages', process=watcher.proc, log=watcher.log)
        return process.num_threads()

    followed = []
    few = follow(5)
    many = follow(100)
    # gRPC may start a helper thread of its own now and then; nothing per storage.
    assert many <= few + 3, f'{few} threads for 5 storages, {many} for 100'
