"""Watch: a new commit on a source storage's branch starts that storage's sync by itself.

A storage with ``watch_commits`` on is followed with pachd's SubscribeCommit on its
branch. An event only means "look now": the sync it starts is the ordinary one
(``jobs.run_import_sync``: the same claim, status, meta and lineage as the Sync
button), which reads the diff from ``last_synced_commit``. So nothing depends on
seeing every event: a missed one, a restarted watcher or a restarted pachd loses
nothing, because every (re)subscription is followed by one catch-up sync.

    Watcher.run()   every PACHYDERM_WATCH_REFRESH_SECONDS: read which storages are
                    watched; take the lease of a storage nobody follows (up to a fair
                    share, ``watch_leases``) and start a Follower for it, restart it when
                    its connection (address, token, certificates, repo, branch) changed,
                    stop it when the storage is gone, no longer watched or handed over.
    Follower        one storage, no thread of its own. Its subscription is a coroutine
                    on the process's one ``pachd.Subscriptions`` thread, which reconnects
                    with a bounded, jittered back-off and reports to the follower; its
                    work (meta, status, syncs) runs on the ``WatchPool``, a fixed set of
                    PACHYDERM_WATCH_SYNC_THREADS threads, one sync per storage at a time:
                    events that arrive while a sync runs (or within COALESCE_SECONDS of
                    each other) make one more sync, not one each.

So a watcher has the same few threads whether it follows one storage or a thousand: the
refresh loop, the lease heartbeat, the subscriptions' event loop and the pool.

Several watchers (processes, hosts) on one database share the storages: each storage is
followed by one of them at a time (its ``watch:<id>`` lease, all of a watcher's leases
renewed in one UPDATE per beat); a watcher that dies has its storages taken over once its
leases expire, each with a catch-up sync. The sync claim and lease still let one sync of a
storage run at a time (a manual one, or the old and the new watcher's during a handover),
and a follower whose claim is refused tries again once the running sync is over. With
PACHYDERM_REDIS_URL set the syncs run on the plugin's RQ queue, as manual syncs do.

The storage's ``meta`` shows it is watched (``watching``, ``watch_since``,
``watch_last_event``, ``watch_last_error``). Label Studio writes a fresh ``meta``
whenever a sync is queued, so the keys are added again after each sync, and at
every refresh when they are missing; never while a sync is queued or running (its
own meta, written whole when it ends, would undo them).
"""
from __future__ import annotations

import collections
import hashlib
import logging
import threading
import time
from typing import Dict, Optional

from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import BooleanField, ExpressionWrapper, Q
from django.utils import timezone

from .. import pachd, tables
from .watch_leases import WatchLeases
from .watch_pool import WatchPool

logger = logging.getLogger(__name__)

COALESCE_SECONDS = 0.5  # events this close together start one sync
BUSY_RETRY_SECONDS = 1.0  # another sync of the storage is queued or running: look again after this
BACKOFF_FIRST_SECONDS = 1.0  # reconnect after 1 s, doubling ...
BACKOFF_MAX_SECONDS = 30.0  # ... up to this (each wait jittered by +-20 %)
HANDOVER_WAIT_SECONDS = 5.0  # a storage handed over: its subscription ends before its lease is let go
WATCH_KEYS = ('watching', 'watch_since', 'watch_last_event', 'watch_last_error')
_NOTHING = object()  # no change of the status to show


def sync_threads() -> int:
    """PACHYDERM_WATCH_SYNC_THREADS: how many syncs (and meta updates) a watcher runs at once."""
    return max(1, int(getattr(settings, 'PACHYDERM_WATCH_SYNC_THREADS', 4) or 4))


def refresh_seconds() -> float:
    return float(getattr(settings, 'PACHYDERM_WATCH_REFRESH_SECONDS', 5) or 5)


def _model():
    return tables.import_storage_model()


# What a refresh reads of each watched storage: enough to tell whether its follower is still
# right, not whole model instances (a thousand of them every refresh was most of an idle
# watcher's CPU). Of the meta only whether the watch keys are there (``marked``), asked in SQL:
# the whole meta of every storage, JSON-parsed every refresh, grows with each sync's keys.
class Watched(collections.namedtuple('Watched', ('id', 'pachd_address', 'auth_token', 'tls_root_certs',
                                                  'pach_project', 'repo', 'branch', 'predictions_repo',
                                                  'predictions_branch', 'marked'))):
    @property
    def project_name(self) -> str:  # as the model says it
        return self.pach_project or 'default'

    @property
    def branch_name(self) -> str:
        return self.branch or 'master'

    @property
    def connection_settings(self) -> tuple:
        """The stored values ``fingerprint`` is made of, as stored."""
        return (self.pachd_address, self.auth_token, self.tls_root_certs, self.pach_project, self.repo,
                self.branch, self.predictions_repo, self.predictions_branch)


def _marked():
    """True where the stored meta holds every watch key and says ``watching: true``."""
    return ExpressionWrapper(Q(meta__has_keys=list(WATCH_KEYS), meta__watching=True), output_field=BooleanField())


def watched_storages():
    """The storages to follow: watch on, and reading the branch head (no pinned commit); as ``Watched`` rows."""
    rows = (_model().objects.filter(watch_commits=True, commit='').annotate(marked=_marked())
            .values_list(*Watched._fields))
    return [Watched(*row) for row in rows]


def fingerprint(storage) -> tuple:
    """What the subscription depends on; a change means a new subscription. Secrets only as digests."""
    def digest(text):
        return hashlib.sha256(text.encode()).hexdigest() if text else ''

    return (pachd.address_identity(storage.pachd_address or ''), digest(storage.auth_token or ''),
            digest(storage.tls_root_certs or ''), storage.project_name, storage.repo, storage.branch_name,
            storage.predictions_repo or '', storage.predictions_branch or 'master')


def _now() -> str:
    return str(timezone.now())


def _update_unless_syncing(storage_id: int, change) -> bool:
    """One conditional UPDATE of the storage with what ``change(row, meta)`` returns (fields, or
    nothing to write), unless a sync is queued or running. True when nothing is left to write.

    Conditional on the status and ``last_sync`` read, so a sync that started or ended in
    between is never overwritten with an older meta or status: a sync writes its whole
    ``meta`` when it ends, and ``claim_sync`` starts a fresh one.
    """
    model = _model()
    row = model.objects.filter(id=storage_id).values('status', 'traceback', 'meta', 'last_sync').first()
    if row is None:
        return True
    if row['status'] in (model.Status.QUEUED, model.Status.IN_PROGRESS):
        return False
    fields = change(row, dict(row['meta'] or {}))
    if not fields:
        return True
    return bool(model.objects.filter(id=storage_id, status=row['status'], last_sync=row['last_sync'])
                .update(**fields))


def _write_meta(storage_id: int, update: Dict, drop: tuple = ()) -> bool:
    """Merge ``update`` into the storage's meta (and remove ``drop``); see ``_update_unless_syncing``."""
    def change(row, meta):
        merged = {**{k: v for k, v in meta.items() if k not in drop}, **update}
        return {'meta': merged} if merged != meta else None

    return _update_unless_syncing(storage_id, change)


def _show_watch_error(storage_id: int, branch: str, reason: Optional[str]) -> None:
    """The storage's status says that its branch cannot be followed, with the reason; on recovery
    (``reason`` None) it says again what it said before. Label Studio's card shows the status and,
    for a failure, the reason.

    Left alone while a sync is queued or running: that sync sets the status itself, and so does
    the catch-up sync that follows every reconnect.
    """
    failed = _model().Status.FAILED

    def change(row, meta):
        if reason:
            message = (f'The watcher cannot follow {branch}: {reason}. It keeps trying; new commits become tasks '
                       'as soon as pachd answers again.')
            if row['status'] == failed and row['traceback'] == message:
                return None
            meta.setdefault('status_before_watch_error', {'status': row['status'], 'traceback': row['traceback']})
            return {'meta': meta, 'status': failed, 'traceback': message}
        if 'status_before_watch_error' in meta:
            return {**meta.pop('status_before_watch_error'), 'meta': meta}
        return None

    _update_unless_syncing(storage_id, change)



class Follower:
    """One watched storage: the listener of its subscription, and its work on the pool."""

    def __init__(self, storage: Watched, pool: WatchPool):
        self.storage_id = storage.id
        self.fingerprint = fingerprint(storage)
        self._settings = storage.connection_settings  # as read: "unchanged" without hashing a token each refresh
        self.branch = f'{storage.project_name}/{storage.repo}@{storage.branch_name}'
        self.label = f'storage {storage.id} ({self.branch})'
        self._pool = pool
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._following: Optional[pachd.Following] = None
        self._predictions: Optional[pachd.Following] = None  # the predictions branch, when there is one
        self._address = ''
        self._failing = False
        self._marks = {'watching': True, 'watch_since': _now(), 'watch_last_event': None, 'watch_last_error': None}
        self._marks_written = False
        self._status = _NOTHING  # what the status should say next: a reason, None (recovered) or nothing
        self._sync_due: Optional[float] = None  # monotonic time the next sync is due
        self._reason = ''
        self._catch_up_head: Optional[str] = None  # the head a (re)subscription started after, until a commit
        self._pool_state = {'entry': None, 'busy': False, 'again': None}  # the pool's bookkeeping
        self.syncs_started = 0

    def start(self, hub: pachd.Subscriptions) -> 'Follower':
        """Follow the branch on ``hub``; a storage whose client cannot be made (address refused, bad
        token) shows why and is tried again at the next refresh."""
        from ..jobs import short_reason

        try:
            storage = _model().objects.get(id=self.storage_id)
            client = storage.get_client()
        except Exception as exc:
            reason = short_reason(exc)
            logger.warning('Pachyderm watch: %s: %s; trying again at the next refresh', self.label, reason)
            self.failed(reason, None)
            self.work()  # the reason in meta and status now: no subscription will report it
            self._stopped.set()  # the refresh loop sees a stopped follower and starts a new one
            return self
        self._address = client.address.url
        with self._lock:
            self._following = hub.follow(client, storage.project_name, storage.repo, storage.branch_name, self)
            if storage.predictions_repo:
                # A pipeline's output commit finishing is a reason to sync too: the sync attaches the
                # predictions that became ready (``predictions``), under the same claim as any sync.
                self._predictions = hub.follow(client, storage.project_name, storage.predictions_repo,
                                               storage.predictions_branch or 'master', _PredictionsListener(self))
        return self

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            followings = [f for f in (self._following, self._predictions) if f is not None]
        for following in followings:
            following.cancel()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def follows(self, storage: Watched) -> bool:
        """Whether this follower's subscription is the one ``storage``'s connection settings ask for."""
        return storage.connection_settings == self._settings or fingerprint(storage) == self.fingerprint

    def join(self, timeout: Optional[float] = None) -> None:
        """Wait until the subscriptions have ended (after ``stop()``)."""
        with self._lock:
            followings = [f for f in (self._following, self._predictions) if f is not None]
        for following in followings:
            following.wait(timeout)

    # -- what the subscription reports (on the subscriptions' thread: nothing here may wait)
    def subscribed(self, start: str) -> None:
        with self._lock:
            if self._failing:
                logger.info('Pachyderm watch: %s: reconnected to pachd at %s', self.label, self._address)
            self._failing = False
            self._marks.update(watch_last_error=None)
            self._marks_written = False
            self._status = None
            self._catch_up_head = start
        # Whatever landed before the subscription (or while it was down) is read now.
        self.request_sync('catch-up' if self.syncs_started == 0 else 'catch-up after reconnecting')

    def commit(self, commit_id: str) -> None:
        with self._lock:
            self._marks.update(watch_last_event=_now(), watch_last_commit=commit_id)
            self._marks_written = False
            self._catch_up_head = None  # something new: the sync must run
        self.request_sync(f'commit {commit_id}')

    def failed(self, error, retry_in: Optional[float]) -> None:
        reason = error if isinstance(error, str) else _short(error)
        if retry_in is not None:
            logger.warning('Pachyderm watch: %s: %s; reconnecting in %.1f s', self.label, reason, retry_in)
        with self._lock:
            self._failing = True
            self._marks.update(watch_last_error=reason)
            self._marks_written = False
            self._status = reason
        self._pool.poke(self)

    def predictions_changed(self, reason: str) -> None:
        """A sync for the predictions branch: needed even when the input branch did not move."""
        with self._lock:
            self._catch_up_head = None
        self.request_sync(reason)

    def request_sync(self, reason: str) -> None:
        with self._lock:
            self._reason = reason
            if self._sync_due is None:
                self._sync_due = time.monotonic() + COALESCE_SECONDS  # a burst of commits: one sync for all
            due = self._sync_due
        self._pool.poke(self)  # the meta marks at once
        self._pool.poke(self, due)

    # -- the work, on a pool thread
    def work(self) -> Optional[float]:
        """What is due now: the meta marks, the status, a sync; when to come back (None: nothing left)."""
        if self.stopped:
            return None
        self.write_marks()
        with self._lock:
            status, self._status = self._status, _NOTHING
        if status is not _NOTHING:
            self.show_error(status)
        with self._lock:
            due, reason, head = self._sync_due, self._reason, self._catch_up_head
            if due is None or due > time.monotonic():
                return due
            self._sync_due = self._catch_up_head = None
        if not self._sync(reason, head) and not self.stopped:
            # Another sync is queued or running (a manual one, another watcher's, or ours on RQ):
            # it may have read the branch before this commit, so look again once it is over.
            with self._lock:
                if self._sync_due is None:
                    self._sync_due = time.monotonic() + BUSY_RETRY_SECONDS
        with self._lock:
            return self._sync_due

    # -- meta
    def write_marks(self, check: bool = False, marked: Optional[bool] = None) -> None:
        """Put the watch keys into the stored meta; ``check``: also when they were written before (a sync
        since then may have replaced the meta). ``marked``: whether the stored meta holds them, when the
        caller just read it (``watched_storages``); no query then if nothing is to be written."""
        with self._lock:
            if self._marks_written and (not check or marked):
                return
            marks = dict(self._marks)
        try:
            written = _write_meta(self.storage_id, marks) if not check else self._heal(marks, marked)
        finally:
            connection.close()
        with self._lock:
            if written and marks == self._marks:
                self._marks_written = True
            elif not written:
                self._pool.poke(self, time.monotonic() + BUSY_RETRY_SECONDS)  # a sync is running: later

    def _heal(self, marks, marked: Optional[bool] = None) -> bool:
        if marked is None:
            row = (_model().objects.filter(id=self.storage_id).annotate(marked=_marked())
                   .values_list('id', 'marked').first())
            if row is None:
                return True  # deleted meanwhile
            marked = row[1]
        if marked and self._marks_written:
            return True  # marks written before and still there: nothing to do
        return _write_meta(self.storage_id, marks)

    def show_error(self, reason: Optional[str]) -> None:
        try:
            _show_watch_error(self.storage_id, self.branch, reason)
        except Exception:  # the status is a courtesy; following the branch goes on
            logger.exception('Pachyderm watch: %s: cannot show the watch state in the status', self.label)
        finally:
            connection.close()

    def _sync(self, reason: str, catch_up_head: Optional[str] = None) -> bool:
        """One sync; False when another sync of the storage was queued or running and this one did not start.

        ``catch_up_head``: the head the subscription started after, when nothing came since; a catch-up
        of a storage whose last sync already read it is skipped, so a thousand storages reconnecting
        after a pachd restart with nothing new cost a thousand reads, not a thousand syncs.
        """
        from ..jobs import get_queue, short_reason
        from .jobs import run_import_sync

        close_old_connections()
        try:
            storage = _model().objects.filter(id=self.storage_id).first()
            if storage is None or not storage.watch_commits or storage.commit:
                return True
            if catch_up_head and _up_to_date(storage, catch_up_head):
                logger.info('Pachyderm watch: %s: up to date at %s; no sync needed (%s)', self.label,
                            catch_up_head, reason)
                self.write_marks(check=True)
                return True
            started = time.monotonic()
            try:
                if not run_import_sync(storage):
                    return False
            except _model().DoesNotExist:
                return True  # deleted meanwhile
            self.syncs_started += 1
            if get_queue() is not None:
                logger.info('Pachyderm watch: %s: sync queued (%s)', self.label, reason)
            else:
                storage.refresh_from_db(fields=['status', 'last_sync_count'])
                logger.info('Pachyderm watch: %s: sync (%s): %s, %s new task(s) in %.1f s', self.label, reason,
                            storage.status, storage.last_sync_count or 0, time.monotonic() - started)
            self.write_marks(check=True)
            return True
        except Exception as exc:
            logger.warning('Pachyderm watch: %s: sync (%s) not started: %s', self.label, reason, short_reason(exc))
            return True
        finally:
            connection.close()


def _up_to_date(storage, head: str) -> bool:
    """Whether the storage's last sync ended well after reading ``head`` with the selection it has now:
    a sync would then find nothing to do."""
    from .sync import selection_signature

    return (storage.last_synced_commit == head and storage.last_synced_selection == selection_signature(storage)
            and storage.status in (storage.Status.COMPLETED, storage.Status.COMPLETED_WITH_ERRORS))


def _short(error) -> str:
    from ..jobs import short_reason

    return short_reason(error)


class _PredictionsListener:
    """The predictions branch of a follower's storage: a finished output commit asks for a sync."""

    def __init__(self, follower: Follower):
        self.follower = follower

    def subscribed(self, start: str) -> None:
        self.follower.predictions_changed('predictions catch-up')  # an output commit may have finished meanwhile

    def commit(self, commit_id: str) -> None:
        self.follower.predictions_changed(f'predictions commit {commit_id}')

    def failed(self, error, retry_in: Optional[float]) -> None:
        logger.warning('Pachyderm watch: %s: predictions branch: %s; reconnecting in %.1f s', self.follower.label,
                       error if isinstance(error, str) else _short(error), retry_in or 0)


class Watcher:
    """Follows its share of the watched storages of this Label Studio until ``stop()``; see the module docstring."""

    def __init__(self, refresh: Optional[float] = None):
        self.refresh_seconds = float(refresh) if refresh else refresh_seconds()
        self.followers: Dict[int, Follower] = {}
        self.leases = WatchLeases()
        self.hub: Optional[pachd.Subscriptions] = None
        self.pool: Optional[WatchPool] = None
        self._stopped = threading.Event()
        self._last_problem = ''
        self._unmarking: set = set()  # storages let go whose meta still says watching (a sync was running)
        self._lost: set = set()  # storages whose lease the heartbeat found taken over

    def run(self) -> None:
        self.hub = pachd.Subscriptions(BACKOFF_FIRST_SECONDS, BACKOFF_MAX_SECONDS,
                                       name='pachyderm-watch-subscriptions').start()
        self.pool = WatchPool(sync_threads())
        heartbeat = threading.Thread(target=self._heartbeat, name='pachyderm-watch-leases', daemon=True)
        logger.info('Pachyderm watch: started; looking for watched storages every %g s (lease holder %s)',
                    self.refresh_seconds, self.leases.holder)
        try:
            self._register()
            heartbeat.start()
            while not self._stopped.is_set():
                self.refresh_once()
                self._stopped.wait(self.refresh_seconds)
        finally:
            self._stopped.set()
            for follower in self.followers.values():
                follower.stop()
            for follower in self.followers.values():
                follower.join(HANDOVER_WAIT_SECONDS)
            self.pool.stop()
            self.hub.close()
            try:
                self.leases.release_all()  # the other watchers take over at once, not after the lease time
            except Exception:
                logger.warning('Pachyderm watch: the leases were not released; they expire by themselves',
                               exc_info=True)
            self.followers.clear()
            connection.close()
            logger.info('Pachyderm watch: stopped')

    def stop(self) -> None:
        self._stopped.set()

    def _register(self) -> None:
        while not self._stopped.is_set():
            try:
                self.leases.register()
                return
            except Exception as exc:  # e.g. the tables are being migrated: the refresh loop says so
                self._say_problem(exc)
                self._stopped.wait(self.refresh_seconds)
            finally:
                connection.close()

    def _heartbeat(self) -> None:
        """Renew every lease of this watcher, every third of the lease time, in one UPDATE."""
        while not self._stopped.wait(self.leases.seconds / 3):
            try:
                lost = self.leases.renew()
            except Exception:  # a database hiccup: the next beat tries again, within the lease time
                logger.warning('Pachyderm watch: renewing the leases failed', exc_info=True)
                continue
            finally:
                connection.close()
            if lost:
                logger.warning('Pachyderm watch: storages %s were taken over by another watcher', sorted(lost))
                self._lost.update(lost)

    def _say_problem(self, exc: Exception) -> None:
        problem = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        if problem != self._last_problem:  # e.g. the tables are being migrated: say it once
            logger.warning('Pachyderm watch: cannot read the storages: %s', problem)
        self._last_problem = problem

    def refresh_once(self) -> None:
        """Bring the followers in line with the database; never raises (a database hiccup waits a turn)."""
        try:
            close_old_connections()
            wanted = {storage.id: storage for storage in watched_storages()}
            take, shed = self.leases.plan(wanted)
        except Exception as exc:
            self._say_problem(exc)
            return
        finally:
            connection.close()
        self._last_problem = ''
        try:
            self._follow(wanted, take, shed)
        except Exception as exc:  # the database went away midway: the next refresh carries on
            self._say_problem(exc)
        finally:
            connection.close()

    def _follow(self, wanted: dict, take: list, shed: list) -> None:
        lost, self._lost = self._lost, set()
        for storage_id in list(self.followers):
            follower = self.followers[storage_id]
            storage = wanted.get(storage_id)
            held = self.leases.holds(storage_id) and storage_id not in lost
            if (storage is not None and held and storage_id not in shed and not follower.stopped
                    and follower.follows(storage)):
                continue
            follower.stop()
            del self.followers[storage_id]
            if storage is None:
                logger.info('Pachyderm watch: %s: no longer watched', follower.label)
                self._unmarking.add(storage_id)
                self.leases.release(storage_id)
            elif not held:
                logger.info('Pachyderm watch: %s: followed by another watcher now', follower.label)
            elif storage_id in shed:
                follower.join(HANDOVER_WAIT_SECONDS)  # its subscription ends before another watcher's starts
                self.leases.release(storage_id)
                logger.info('Pachyderm watch: %s: handed over (a fair share for each watcher)', follower.label)
            elif not follower.stopped or not follower.follows(storage):
                logger.info('Pachyderm watch: %s: connection settings changed; subscribing again',
                            follower.label)
        for storage_id in self.leases.held():
            if storage_id not in wanted:
                self.leases.release(storage_id)  # unwatched before a follower was started for it
        for storage_id in list(self._unmarking):
            if storage_id in wanted or self._unmark(storage_id):
                self._unmarking.discard(storage_id)
        for storage_id in take:
            if not self._stopped.is_set():
                self.leases.acquire(storage_id)
        for storage_id, storage in wanted.items():
            if self._stopped.is_set():
                return
            follower = self.followers.get(storage_id)
            if follower is None:
                if not self.leases.holds(storage_id):
                    continue
                self.followers[storage_id] = follower = Follower(storage, self.pool)
                logger.info('Pachyderm watch: %s: watching', follower.label)
                follower.start(self.hub)
            else:
                try:
                    follower.write_marks(check=True, marked=storage.marked)  # after a sync on RQ, or another's
                except Exception:
                    logger.debug('Pachyderm watch: %s: meta not updated', follower.label, exc_info=True)

    @staticmethod
    def _unmark(storage_id: int) -> bool:
        """``watching: false`` in the meta of a storage no longer watched; False when it must wait a turn."""
        try:
            return _write_meta(storage_id, {'watching': False}, drop=WATCH_KEYS + ('watch_last_commit',))
        except Exception:
            logger.debug('Pachyderm watch: storage %s: meta not updated', storage_id, exc_info=True)
            return False
        finally:
            connection.close()
