"""Which watched storages this watcher follows: a lease per storage, shared out among the watchers.

Every watcher process (the one inside ``label-studio-pachyderm start``, each
``label-studio-pachyderm watch``) on one database takes a lease ``watch:<storage id>`` for
each storage it follows, so each storage is followed by one watcher at a time. All of a
process's leases have one holder and are renewed together, in one UPDATE per beat
(``leases.renew_all``), by one thread; a watcher killed with SIGKILL stops renewing, and
once its leases expire (PACHYDERM_LEASE_SECONDS) the other watchers take its storages at
their next refresh, each starting with the catch-up sync that every new subscription gets.

Each watcher also holds a presence lease (``watcher:<holder>``), so the live watchers can be
counted; a watcher takes at most a fair share (storages / live watchers, rounded up) and
hands back what it holds beyond that when another watcher joins. The sync's own claim and
lease still let one sync of a storage run at a time, during a handover as always.
"""
from __future__ import annotations

import logging
import math
import random
import threading
import time
import uuid
from typing import Dict, Iterable, List, Tuple

from .. import leases

logger = logging.getLogger(__name__)

STORAGE_PREFIX = 'watch:'
PRESENCE_PREFIX = 'watcher:'
FORGET_PRESENCE_AFTER = 3600.0  # seconds a dead watcher's presence row is kept before any watcher deletes it


def storage_key(storage_id: int) -> str:
    return f'{STORAGE_PREFIX}{storage_id}'


class WatchLeases:
    def __init__(self, seconds: float = 0):
        self.seconds = float(seconds or leases.lease_seconds())
        self.holder = uuid.uuid4().hex
        self._lock = threading.Lock()
        self._held: Dict[int, float] = {}  # storage id -> monotonic time the lease was taken

    def _lease(self, key: str) -> leases.Lease:
        lease = leases.Lease(key, self.seconds)
        lease.holder = self.holder  # every lease of this watcher under one holder: renewed together
        return lease

    # -- presence
    def register(self) -> None:
        """Say this watcher is alive (its presence lease), and forget long-dead watchers'."""
        leases.forget_expired(PRESENCE_PREFIX, FORGET_PRESENCE_AFTER)
        self._lease(f'{PRESENCE_PREFIX}{self.holder}').acquire()

    def live_watchers(self) -> int:
        return max(1, len(leases.live_leases(PRESENCE_PREFIX)))

    # -- storages
    def holds(self, storage_id: int) -> bool:
        with self._lock:
            return storage_id in self._held

    def held(self) -> List[int]:
        with self._lock:
            return list(self._held)

    def acquire(self, storage_id: int) -> bool:
        taken = self._lease(storage_key(storage_id)).acquire()
        if taken:
            with self._lock:
                self._held[storage_id] = time.monotonic()
        return taken

    def release(self, storage_id: int) -> None:
        with self._lock:
            self._held.pop(storage_id, None)
        self._lease(storage_key(storage_id)).release()

    def release_all(self) -> None:
        for storage_id in self.held():
            self.release(storage_id)
        self._lease(f'{PRESENCE_PREFIX}{self.holder}').release()

    def renew(self) -> List[int]:
        """Renew every lease of this watcher (one UPDATE); the storages whose lease was lost meanwhile."""
        started = time.monotonic()
        keys = leases.renew_all(self.holder, self.seconds)
        with self._lock:
            lost = [sid for sid, taken in self._held.items() if taken < started and storage_key(sid) not in keys]
            for sid in lost:
                del self._held[sid]
        if f'{PRESENCE_PREFIX}{self.holder}' not in keys:
            self.register()  # expired (the database was away for a while): be counted again
        return lost

    def plan(self, wanted: Iterable[int]) -> Tuple[List[int], List[int]]:
        """(storages to take now, storages to hand back): at most a fair share each, free ones only."""
        wanted = list(wanted)
        share = math.ceil(len(wanted) / self.live_watchers()) if wanted else 0
        with self._lock:
            ours = [sid for sid in wanted if sid in self._held]
            others = [sid for sid in wanted if sid not in self._held]
        # Whose lease is live is asked only when there is a storage this watcher does not hold: a lone
        # watcher holding all of them reads no lease rows each refresh.
        live = leases.live_leases(STORAGE_PREFIX) if others else {}
        free = [sid for sid in others if storage_key(sid) not in live]
        random.shuffle(free)  # watchers refreshing at once mostly try different storages
        take = free[:max(0, share - len(ours))]
        shed = random.sample(ours, len(ours) - share) if len(ours) > share else []
        return take, shed
