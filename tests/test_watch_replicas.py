"""Several watcher processes on one PostgreSQL share the watched storages: one follower per storage
at a time, and a watcher killed with SIGKILL has its storages taken over within the lease time.

Three real ``label-studio-pachyderm watch`` processes, the local PFS server over gRPC (in this
process, so its open subscriptions can be counted per branch), commits landing throughout.
"""
import collections
import random
import re
import signal
import threading
import time

import pytest
from django.conf import settings as django_settings
from django.utils import timezone
from label_studio_pachyderm.models import PachydermImportStorageLink, PachydermLease
from tasks.models import Task

import waiting
from test_import import PNG, put
from test_watch import WAIT, create, db_transactional, watchers  # noqa: F401 (a fixture)

LEASE = 6  # seconds: the watchers' PACHYDERM_LEASE_SECONDS, short so the takeover is quick to see
STORAGES = 6

pytestmark = pytest.mark.skipif(
    'postgresql' not in django_settings.DATABASES['default']['ENGINE'],
    reason='several watcher processes on one database: the PostgreSQL lane (DJANGO_DB=default)')


class SubscriptionSampler:
    """Counts the server's live subscriptions per branch every 50 ms; keeps the largest count seen."""

    def __init__(self, pfs):
        self.pfs, self.most = pfs, collections.Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(0.05):
            for branch, count in self.pfs.open_subscriptions().items():
                self.most[branch] = max(self.most[branch], count)

    def stop(self):
        self._stop.set()
        self._thread.join(5)


def holder_of(watcher):
    return re.search(r'lease holder ([0-9a-f]{32})', watcher.log()).group(1)


def watch_leases():
    """{storage id: holder} of the live watch leases."""
    rows = PachydermLease.objects.filter(key__startswith='watch:', expires_at__gte=timezone.now()).exclude(holder='')
    return {int(key.split(':')[1]): holder for key, holder in rows.values_list('key', 'holder')}


def imported(storage_id):
    return sorted(PachydermImportStorageLink.objects.filter(storage_id=storage_id).values_list('key', flat=True))


@pytest.mark.slow
@db_transactional
def test_three_watchers_share_the_storages_and_a_killed_one_loses_no_commit(api, project, pfs, pfs_client,
                                                                           watchers):
    storages, expected = {}, {}
    for i in range(STORAGES):
        repo = f'images-{i}'
        pfs_client.create_repo('default', repo)
        put(pfs_client, repo, {f'{repo}/seed.png': PNG})
        storages[repo] = create(api, project, pfs.address, repo=repo, title=repo)
        expected[repo] = [f'{repo}/seed.png']
    sampler = SubscriptionSampler(pfs)
    procs = watchers(count=3, env={'PACHYDERM_LEASE_SECONDS': str(LEASE)})
    holders = {holder_of(proc): proc for proc in procs}
    try:
        # Every storage followed, by one watcher each (the leases), with one subscription each (the server).
        waiting.wait_for(lambda: len(watch_leases()) == STORAGES and set(watch_leases().values()) <= set(holders)
                         and sorted(pfs.open_subscriptions().values()) == [1] * STORAGES, timeout=3 * WAIT,
                         what='every storage followed once')

        stop_writing = threading.Event()
        written = []

        def write():
            rng = random.Random(7)
            n = 0
            while not stop_writing.is_set():
                repo = f'images-{rng.randrange(STORAGES)}'
                path = f'{repo}/{n}.png'
                put(pfs_client, repo, {path: PNG})
                expected[repo].append(path)
                written.append(path)
                n += 1
                time.sleep(rng.uniform(0.05, 0.3))

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        waiting.wait_for(lambda: len(written) >= 10, timeout=WAIT, what='commits landing')
        # Kill the watcher that follows the most storages, while commits land.
        counts = collections.Counter(watch_leases().values())
        victim_holder = max(holders, key=lambda h: counts.get(h, 0))
        victim = holders[victim_holder]
        orphaned = [sid for sid, holder in watch_leases().items() if holder == victim_holder]
        assert orphaned, counts
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(30)
        killed_at = time.monotonic()
        survivors = [proc for proc in procs if proc is not victim]
        # Taken over once the dead watcher's leases expire, plus a refresh: well within a few lease times.
        waiting.wait_for(lambda: not set(watch_leases().values()) & {victim_holder} and len(watch_leases()) == STORAGES,
                         timeout=3 * WAIT, what="the killed watcher's storages taken over")
        took = time.monotonic() - killed_at
        waiting.wait_for(lambda: len(written) >= 40, timeout=3 * WAIT, what='more commits after the takeover')
        stop_writing.set()
        writer.join(WAIT)
        assert not writer.is_alive()

        # Every file imported exactly once: one task per file, no duplicates.
        for repo, sid in storages.items():
            waiting.wait_for(lambda: imported(sid) == sorted(expected[repo]), timeout=3 * WAIT,
                             what=f'every file of {repo} imported once (have {len(imported(sid))}, '
                                  f'want {len(expected[repo])})',
                             log=lambda: '\n'.join(p.log()[-3000:] for p in survivors))
        assert Task.objects.filter(project=project).count() == sum(len(files) for files in expected.values())
        assert all(proc.alive() for proc in survivors)
        assert sorted(pfs.open_subscriptions().values()) == [1] * STORAGES
    finally:
        sampler.stop()
    # At no time did a branch have two subscriptions across the three watchers.
    assert set(sampler.most.values()) == {1}, sampler.most
    assert took < 4 * LEASE + WAIT, took
    # Lease expiry alone, not a restart, handed the storages over: each survivor logged taking some.
    assert any(f'storage {sid} (' in proc.log() for sid in orphaned for proc in survivors)
