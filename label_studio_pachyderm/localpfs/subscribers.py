"""Open SubscribeCommit calls, each asleep until a change of its own repo wakes it.

A watcher may hold a thousand subscriptions on a quiet server. Each handler sleeps on an
event of its own, set when its repo changes (a commit started, finished, a branch created
or moved), when its call ends (the call's termination callback) or when the server stops;
one commit wakes the subscribers of its repo, not every subscriber of the server. Changes
the store cannot pin to one repo (drops, squashes, deletes) wake them all, and so does
every change once some branch has provenance (a commit upstream makes or readies commits
downstream).
"""
from __future__ import annotations

import collections
import threading
from typing import Callable, Dict, Optional, Set

# A safety net only: a subscriber whose termination callback never came (it always does)
# still finds out its call ended within this, without reading the store.
CHECK_SECONDS = 60.0


class Subscriber:
    """One open SubscribeCommit: what it follows and the event that wakes it."""

    def __init__(self, project: str, repo: str, branch: str, repo_id: int, is_active: Callable[[], bool]):
        self.project, self.repo, self.branch, self.repo_id = project, repo, branch, repo_id
        self.is_active = is_active
        self.wake = threading.Event()

    @property
    def label(self) -> str:
        return f'{self.project}/{self.repo}@{self.branch}' if self.branch else f'{self.project}/{self.repo}'

    def sleep(self, ended: Callable[[], bool]) -> None:
        """Until woken; ``ended()`` is asked at every safety-net tick."""
        while not self.wake.wait(CHECK_SECONDS):
            if ended():
                return


class Subscribers:
    def __init__(self):
        self._lock = threading.Lock()
        self._by_repo: Dict[int, Set[Subscriber]] = collections.defaultdict(set)
        self.wake_everyone_always = False  # set once some branch has provenance

    def add(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._by_repo[subscriber.repo_id].add(subscriber)

    def remove(self, subscriber: Subscriber) -> None:
        with self._lock:
            group = self._by_repo.get(subscriber.repo_id)
            if group is not None:
                group.discard(subscriber)
                if not group:
                    del self._by_repo[subscriber.repo_id]

    def wake(self, repo_id: Optional[int] = None) -> None:
        """Wake the subscribers of ``repo_id``, or all of them (None, or provenance in use)."""
        with self._lock:
            if repo_id is None or self.wake_everyone_always:
                woken = [s for group in self._by_repo.values() for s in group]
            else:
                woken = list(self._by_repo.get(repo_id, ()))
        for subscriber in woken:
            subscriber.wake.set()

    def open(self) -> 'collections.Counter[str]':
        """How many live subscriptions follow each branch (``project/repo@branch``)."""
        with self._lock:
            live = [s for group in self._by_repo.values() for s in group]
        return collections.Counter(s.label for s in live if s.is_active())
