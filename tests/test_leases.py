"""The lease is exclusive: many threads and processes racing for one lease, on SQLite and PostgreSQL.

The lease backs one export writer per branch and one sync per storage. A free or
expired lease is taken by one conditional UPDATE; these tests race it the way
production does (threads of one process, and separate processes, all at the same
moment) and count the winners. The PostgreSQL lane runs this file too
(``scripts/test.sh``), where READ COMMITTED re-checks only the UPDATE's own WHERE.
"""
import os
import subprocess
import sys
import textwrap
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from label_studio_pachyderm import leases
from label_studio_pachyderm.models import PachydermLease

pytestmark = pytest.mark.django_db(transaction=True)

THREADS, ROUNDS = 6, 40


def _race(key: str, threads: int) -> int:
    """``threads`` threads try ``key`` at the same moment; returns how many got it."""
    start = threading.Barrier(threads)
    won = []

    def attempt():
        try:
            lease = leases.Lease(key, 30)
            start.wait()
            if lease.acquire():
                won.append(lease.holder)
        finally:
            connection.close()

    workers = [threading.Thread(target=attempt) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    return len(won)


@pytest.mark.parametrize('how', ['free', 'expired'])
def test_one_winner_among_threads_every_round(how):
    key = f'test:threads:{how}'
    PachydermLease.objects.create(key=key, holder='')
    rounds_with_other_than_one = []
    for round_number in range(ROUNDS):
        if how == 'free':
            PachydermLease.objects.filter(key=key).update(holder='', expires_at=None)
        else:  # a holder that died: its lease ran out a moment ago
            PachydermLease.objects.filter(key=key).update(holder='dead', expires_at=timezone.now() - timedelta(seconds=1))
        winners = _race(key, THREADS)
        if winners != 1:
            rounds_with_other_than_one.append((round_number, winners))
    print(f'\n{THREADS} threads x {ROUNDS} rounds on {connection.vendor}, {how} lease: '
          f'{len(rounds_with_other_than_one)} rounds without exactly one winner')
    assert rounds_with_other_than_one == []


def test_one_winner_among_threads_when_the_row_does_not_exist_yet():
    for round_number in range(10):
        assert _race(f'test:new:{round_number}', THREADS) == 1


_CONTENDER = textwrap.dedent('''
    import os, sys, time, threading
    import django
    django.setup()
    from django.db import connection
    from label_studio_pachyderm import leases

    key, inside_path, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    taken, overlaps = [0], [0]

    def contend():
        try:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                lease = leases.Lease(key, 30)
                if not lease.acquire():
                    continue
                try:
                    # Inside the critical section: a second holder finds the file there.
                    fd = os.open(inside_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                except FileExistsError:
                    overlaps[0] += 1
                    lease.release()
                    continue
                taken[0] += 1
                time.sleep(0.002)
                os.close(fd)
                os.unlink(inside_path)
                lease.release()
        finally:
            connection.close()

    threads = [threading.Thread(target=contend) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f'TAKEN {taken[0]} OVERLAPS {overlaps[0]}', flush=True)
''')


@pytest.mark.slow
def test_processes_never_hold_the_lease_together(tmp_path, settings):
    """Four processes of three threads each take and release one lease for a few seconds; a holder
    marks a critical section with an exclusively created file, so two holders at once are seen."""
    key = 'test:processes'
    PachydermLease.objects.create(key=key, holder='')
    script = tmp_path / 'contender.py'
    script.write_text(_CONTENDER)
    env = {**os.environ, 'DJANGO_SETTINGS_MODULE': 'label_studio_pachyderm.settings',
           'DATABASE_NAME': settings.DATABASES['default']['NAME'], 'POSTGRE_NAME': settings.DATABASES['default']['NAME'],
           'SENTRY_DSN': ''}
    inside = tmp_path / 'inside'
    procs = [subprocess.Popen([sys.executable, str(script), key, str(inside), '4'], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(4)]
    taken = overlaps = 0
    try:
        for proc in procs:
            out, _ = proc.communicate(timeout=240)
            text = out.decode(errors='replace')
            assert proc.returncode == 0, text[-3000:]
            line = [ln for ln in text.splitlines() if ln.startswith('TAKEN ')][-1].split()
            taken += int(line[1])
            overlaps += int(line[3])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    print(f'\n4 processes x 3 threads on {connection.vendor}: lease taken {taken} times, {overlaps} overlaps')
    assert taken > 20, 'the processes hardly ever got the lease: the race did not happen'
    assert overlaps == 0


def test_a_holder_is_live_only_while_its_lease_runs():
    lease = leases.Lease('test:live', 30)
    assert not leases.holder_is_live(lease.holder)
    assert lease.acquire() and leases.holder_is_live(lease.holder)
    lease.release()
    assert not leases.holder_is_live(lease.holder) and not leases.holder_is_live('')


def test_renew_all_pushes_every_lease_of_one_holder_in_one_update_and_says_which_are_still_held():
    mine = [leases.Lease(f'watch:{i}', 30) for i in range(3)]
    other = leases.Lease('watch:99', 30)
    for lease in mine:
        lease.holder = 'holder-a'
        assert lease.acquire()
    assert other.acquire()
    # One of them expired and was taken by someone else meanwhile: it is not renewed, nor reported.
    PachydermLease.objects.filter(key='watch:2').update(expires_at=timezone.now() - timedelta(seconds=1))
    thief = leases.Lease('watch:2', 30)
    assert thief.acquire()
    before = dict(PachydermLease.objects.values_list('key', 'expires_at'))
    assert leases.renew_all('holder-a', 60) == {'watch:0', 'watch:1'}
    after = dict(PachydermLease.objects.values_list('key', 'expires_at'))
    assert after['watch:0'] > before['watch:0'] and after['watch:1'] > before['watch:1']
    assert after['watch:2'] == before['watch:2'] and after['watch:99'] == before['watch:99']
    assert leases.live_leases('watch:') == {'watch:0': 'holder-a', 'watch:1': 'holder-a', 'watch:2': thief.holder,
                                            'watch:99': other.holder}
    other.release()  # released: no longer live
    assert 'watch:99' not in leases.live_leases('watch:')


def test_forget_expired_deletes_only_long_expired_leases_under_the_prefix():
    now = timezone.now()
    PachydermLease.objects.create(key='watcher:old', holder='x', expires_at=now - timedelta(hours=2))
    PachydermLease.objects.create(key='watcher:recent', holder='y', expires_at=now - timedelta(seconds=5))
    PachydermLease.objects.create(key='sync:old', holder='z', expires_at=now - timedelta(hours=2))
    assert leases.forget_expired('watcher:', 3600) == 1
    assert set(PachydermLease.objects.values_list('key', flat=True)) == {'watcher:recent', 'sync:old'}
