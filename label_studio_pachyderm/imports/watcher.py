"""Watch: a new commit on a source storage's branch starts that storage's sync by itself.

A storage with ``watch_commits`` on is followed with pachd's SubscribeCommit on its
branch. An event only means "look now": the sync it starts is the ordinary one
(``jobs.run_import_sync``: the same claim, status, meta and lineage as the Sync
button), which reads the diff from ``last_synced_commit``. So nothing depends on
seeing every event: a missed one, a restarted watcher or a restarted pachd loses
nothing, because every (re)subscription is followed by one catch-up sync.

    Watcher.run()   every PACHYDERM_WATCH_REFRESH_SECONDS: read which storages are
                    watched; start a Follower for a new one, restart it when its
                    connection (address, token, certificates, repo, branch) changed,
                    stop it when the storage is gone or no longer watched.
    Follower        two threads per storage. ``listen`` holds the subscription and
                    reconnects with a bounded, jittered back-off; ``syncs`` runs one
                    sync at a time: events that arrive while a sync runs (or within
                    COALESCE_SECONDS of each other) make one more sync, not one each.

Several watchers (processes, hosts) may watch the same storages: the sync claim and
lease let one sync of a storage run at a time, and a watcher whose claim is refused
tries again once the running sync is over. With PACHYDERM_REDIS_URL set the syncs
run on the plugin's RQ queue, as manual syncs do.

The storage's ``meta`` shows it is watched (``watching``, ``watch_since``,
``watch_last_event``, ``watch_last_error``). Label Studio writes a fresh ``meta``
whenever a sync is queued, so the keys are added again after each sync, and at
every refresh when they are missing; never while a sync is queued or running (its
own meta, written whole when it ends, would undo them).
"""
from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from typing import Dict, Optional

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from .. import pachd, tables

logger = logging.getLogger(__name__)

COALESCE_SECONDS = 0.5  # events this close together start one sync
BUSY_RETRY_SECONDS = 1.0  # another sync of the storage is queued or running: look again after this
BACKOFF_FIRST_SECONDS = 1.0  # reconnect after 1 s, doubling ...
BACKOFF_MAX_SECONDS = 30.0  # ... up to this (each wait jittered by +-20 %)
WATCH_KEYS = ('watching', 'watch_since', 'watch_last_event', 'watch_last_error')


def refresh_seconds() -> float:
    return float(getattr(settings, 'PACHYDERM_WATCH_REFRESH_SECONDS', 5) or 5)


def _model():
    return tables.import_storage_model()


def watched_storages():
    """The storages to follow: watch on, and reading the branch head (no pinned commit)."""
    return list(_model().objects.filter(watch_commits=True, commit=''))


def fingerprint(storage) -> tuple:
    """What the subscription depends on; a change means a new subscription. Secrets only as digests."""
    def digest(text):
        return hashlib.sha256(text.encode()).hexdigest() if text else ''

    return (pachd.address_identity(storage.pachd_address or ''), digest(storage.auth_token or ''),
            digest(storage.tls_root_certs or ''), storage.project_name, storage.repo, storage.branch_name)


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
    """One watched storage: its subscription (``listen``) and its syncs (``syncs``)."""

    def __init__(self, storage):
        self.storage_id = storage.id
        self.fingerprint = fingerprint(storage)
        self.branch = f'{storage.project_name}/{storage.repo}@{storage.branch_name}'
        self.label = f'storage {storage.id} ({self.branch})'
        self._stopped = threading.Event()
        self._wanted = threading.Event()  # "look now": a sync is due
        self._reason = ''
        self._lock = threading.Lock()
        self._subscription = None
        self._marks = {'watching': True, 'watch_since': _now(), 'watch_last_event': None, 'watch_last_error': None}
        self._marks_written = False
        self.syncs_started = 0
        self._threads = [
            threading.Thread(target=self._run, args=(self._listen,), name=f'pachyderm-watch-{storage.id}',
                             daemon=True),
            threading.Thread(target=self._run, args=(self._syncs,), name=f'pachyderm-watch-sync-{storage.id}',
                             daemon=True),
        ]

    def start(self) -> 'Follower':
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._wanted.set()  # wakes the sync thread, which then ends
        with self._lock:
            subscription = self._subscription
        if subscription is not None:
            subscription.cancel()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def join(self, timeout: Optional[float] = None) -> None:
        for thread in self._threads:
            thread.join(timeout)

    # -- meta
    def mark(self, **marks) -> None:
        with self._lock:
            self._marks.update(marks)
            self._marks_written = False
        self.write_marks()

    def write_marks(self, check: bool = False, meta: Optional[dict] = None) -> None:
        """Put the watch keys into the stored meta; ``check``: also when they were written before (a sync
        since then may have replaced the meta). ``meta``: the stored meta, when the caller just read it."""
        with self._lock:
            if self._marks_written and not check:
                return
            marks = dict(self._marks)
        try:
            written = _write_meta(self.storage_id, marks) if not check else self._heal(marks, meta)
        finally:
            connection.close()
        with self._lock:
            if written and marks == self._marks:
                self._marks_written = True

    def _heal(self, marks, meta: Optional[dict] = None) -> bool:
        if meta is None:
            meta = _model().objects.filter(id=self.storage_id).values_list('meta', flat=True).first()
        if meta is None:
            return True
        if all(key in meta for key in WATCH_KEYS) and meta.get('watching') is True and self._marks_written:
            return True  # another watcher's marks are as good as ours: no tug of war
        return _write_meta(self.storage_id, marks)

    def show_error(self, reason: Optional[str]) -> None:
        try:
            _show_watch_error(self.storage_id, self.branch, reason)
        except Exception:  # the status is a courtesy; following the branch goes on
            logger.exception('Pachyderm watch: %s: cannot show the watch state in the status', self.label)
        finally:
            connection.close()

    # -- threads
    def _run(self, loop) -> None:
        try:
            loop()
        except Exception:  # never silently: a follower that died stops watching its storage
            logger.exception('Pachyderm watch: %s: the watch thread failed', self.label)
        finally:
            connection.close()

    def request_sync(self, reason: str) -> None:
        with self._lock:
            self._reason = reason
        self._wanted.set()

    def _listen(self) -> None:
        from ..jobs import short_reason

        delay = BACKOFF_FIRST_SECONDS
        failing = False
        while not self.stopped:
            opened = time.monotonic()
            try:
                close_old_connections()
                storage = _model().objects.filter(id=self.storage_id).first()
                connection.close()
                if storage is None:
                    return
                client = storage.get_client()
                start = _start_point(client, storage)
                subscription = client.subscribe_commits(storage.project_name, storage.repo, storage.branch_name,
                                                        from_commit=start or None)
                with self._lock:
                    self._subscription = subscription
                if self.stopped:
                    subscription.cancel()
                    return
                if failing:
                    logger.info('Pachyderm watch: %s: reconnected to pachd at %s', self.label,
                                client.address.url)
                failing = False
                self.mark(watch_last_error=None)
                self.show_error(None)
                # Whatever landed before the subscription (or while it was down) is read now.
                self.request_sync('catch-up' if self.syncs_started == 0 else 'catch-up after reconnecting')
                for commit in subscription:
                    self.mark(watch_last_event=_now(), watch_last_commit=commit.id)
                    self.request_sync(f'commit {commit.id}')
                if self.stopped:
                    return
                raise pachd.PachdUnavailable('pachd ended the subscription')
            except Exception as exc:
                if self.stopped:
                    return
                if time.monotonic() - opened > BACKOFF_MAX_SECONDS:
                    delay = BACKOFF_FIRST_SECONDS  # it worked for a while: start the back-off over
                wait = min(delay, BACKOFF_MAX_SECONDS) * random.uniform(0.8, 1.2)
                reason = short_reason(exc)
                logger.warning('Pachyderm watch: %s: %s; reconnecting in %.1f s', self.label, reason, wait)
                failing = True
                self.mark(watch_last_error=reason)
                self.show_error(reason)
                self._stopped.wait(wait)
                delay = min(delay * 2, BACKOFF_MAX_SECONDS)

    def _syncs(self) -> None:
        while True:
            self._wanted.wait()
            if self.stopped:
                return
            self._stopped.wait(COALESCE_SECONDS)  # a burst of commits: one sync for all of them
            if self.stopped:
                return
            self._wanted.clear()
            with self._lock:
                reason = self._reason
            if not self._sync(reason):
                # Another sync is queued or running (a manual one, another watcher's, or ours on RQ):
                # it may have read the branch before this commit, so look again once it is over.
                self._wanted.set()
                self._stopped.wait(BUSY_RETRY_SECONDS)

    def _sync(self, reason: str) -> bool:
        """One sync; False when another sync of the storage was queued or running and this one did not start."""
        from ..jobs import get_queue
        from .jobs import run_import_sync

        close_old_connections()
        try:
            storage = _model().objects.filter(id=self.storage_id).first()
            if storage is None or not storage.watch_commits or storage.commit:
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
            from ..jobs import short_reason

            logger.warning('Pachyderm watch: %s: sync (%s) not started: %s', self.label, reason, short_reason(exc))
            return True
        finally:
            connection.close()


def _start_point(client, storage) -> str:
    """The newest finished commit of the branch now ('' when it has none): the subscription starts after it.

    Not simply the head: an open head would be skipped as the starting commit and never
    reported when it finishes.
    """

    try:
        head = client.branch_head(storage.project_name, storage.repo, storage.branch_name)
    except pachd.PachdNotFound as exc:
        if exc.kind == 'branch':
            return ''
        raise
    for _ in range(100):
        if not head:
            return ''
        info = client.inspect_commit(storage.project_name, storage.repo, head)
        if info.finished:
            return info.id
        head = info.parent
    return ''


class Watcher:
    """Follows every watched storage of this Label Studio until ``stop()``; see the module docstring."""

    def __init__(self, refresh: Optional[float] = None):
        self.refresh_seconds = float(refresh) if refresh else refresh_seconds()
        self.followers: Dict[int, Follower] = {}
        self._stopped = threading.Event()
        self._last_problem = ''
        self._unmarking: set = set()  # storages let go whose meta still says watching (a sync was running)

    def run(self) -> None:
        logger.info('Pachyderm watch: started; looking for watched storages every %g s', self.refresh_seconds)
        try:
            while not self._stopped.is_set():
                self.refresh_once()
                self._stopped.wait(self.refresh_seconds)
        finally:
            for follower in self.followers.values():
                follower.stop()
            self.followers.clear()
            connection.close()
            logger.info('Pachyderm watch: stopped')

    def stop(self) -> None:
        self._stopped.set()

    def refresh_once(self) -> None:
        """Bring the followers in line with the database; never raises (a database hiccup waits a turn)."""
        try:
            close_old_connections()
            wanted = {storage.id: storage for storage in watched_storages()}
        except Exception as exc:
            problem = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
            if problem != self._last_problem:  # e.g. the tables are being migrated: say it once
                logger.warning('Pachyderm watch: cannot read the storages: %s', problem)
            self._last_problem = problem
            return
        finally:
            connection.close()
        self._last_problem = ''
        for storage_id in list(self.followers):
            follower = self.followers[storage_id]
            storage = wanted.get(storage_id)
            if storage is not None and fingerprint(storage) == follower.fingerprint and not follower.stopped:
                continue
            follower.stop()
            del self.followers[storage_id]
            if storage is None:
                logger.info('Pachyderm watch: %s: no longer watched', follower.label)
                self._unmarking.add(storage_id)
            else:
                logger.info('Pachyderm watch: %s: connection settings changed; subscribing again',
                            follower.label)
        for storage_id in list(self._unmarking):
            if storage_id in wanted or self._unmark(storage_id):
                self._unmarking.discard(storage_id)
        for storage_id, storage in wanted.items():
            follower = self.followers.get(storage_id)
            if follower is None:
                self.followers[storage_id] = follower = Follower(storage).start()
                logger.info('Pachyderm watch: %s: watching', follower.label)
            else:
                try:
                    follower.write_marks(check=True, meta=storage.meta or {})  # after a sync on RQ, or another's
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
