"""A fixed set of threads doing the watched storages' work (meta, status, syncs) when it falls due.

The watcher follows every branch on one event-loop thread (``pachd.Subscriptions``), which
must never wait on the database or on a sync. What an event asks for is handed here:
``poke(item, at)`` says that ``item.work()`` should run at ``at`` (a ``time.monotonic()``
time) or soon after. An item runs on one thread at a time; pokes that come while it runs
make it run again once it is done, at the earliest time asked for. ``work()`` returns when
it wants to run next (None: nothing left), so a coalescing window or a retry needs no timer
of its own. With a thousand storages caught up after a pachd restart, at most ``threads``
syncs run at once and the rest wait their turn.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from typing import Optional

logger = logging.getLogger(__name__)


class WatchPool:
    def __init__(self, threads: int, name: str = 'pachyderm-watch-sync'):
        self.size = max(1, int(threads))
        self._heap: list = []  # [at, order, item]; item None once superseded
        self._order = itertools.count()
        self._condition = threading.Condition()
        self._stopped = False
        self._threads = [threading.Thread(target=self._run, name=f'{name}-{i}', daemon=True)
                         for i in range(self.size)]
        for thread in self._threads:
            thread.start()

    def poke(self, item, at: Optional[float] = None) -> None:
        """Run ``item.work()`` at ``at`` (default: now), or earlier if it is already due earlier."""
        at = time.monotonic() if at is None else at
        with self._condition:
            state = item.__dict__.setdefault('_pool_state', {'entry': None, 'busy': False, 'again': None})
            if state['busy']:
                state['again'] = at if state['again'] is None else min(state['again'], at)
                return
            entry = state['entry']
            if entry is not None:
                if entry[0] <= at:
                    return
                entry[2] = None  # superseded by the earlier time
            state['entry'] = entry = [at, next(self._order), item]
            heapq.heappush(self._heap, entry)
            if self._heap[0] is entry:
                self._condition.notify()

    def _take(self):
        with self._condition:
            while True:
                if self._stopped:
                    return None
                while self._heap and self._heap[0][2] is None:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._condition.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._condition.wait(wait)
                    continue
                entry = heapq.heappop(self._heap)
                item = entry[2]
                state = item._pool_state
                state['entry'], state['busy'], state['again'] = None, True, None
                if self._heap and self._heap[0][0] <= time.monotonic():
                    self._condition.notify()  # more is due: another thread takes it
                return item

    def _run(self) -> None:
        while True:
            item = self._take()
            if item is None:
                return
            following = None
            try:
                following = item.work()
            except Exception:  # never silently, and the thread goes on with the next storage
                logger.exception('Pachyderm watch: %s: the watch work failed', getattr(item, 'label', item))
            with self._condition:
                state = item._pool_state
                state['busy'] = False
                again, state['again'] = state['again'], None
            due = [t for t in (following, again) if t is not None]
            if due:
                self.poke(item, min(due))

    def stop(self, timeout: float = 10.0) -> None:
        """No new work starts; running work finishes (waited for up to ``timeout`` s in all)."""
        with self._condition:
            self._stopped = True
            self._condition.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
