"""Reading the task files of a sync ahead of the loop that turns them into tasks.

One task file read on its own is one GetFile call. Read one after another, a 10,000-file
sync spends most of its time waiting on pachd round trips while the database sits idle.
Two ways around that, both here:

- **Runs**: task files that were listed next to each other (a full listing of a folder of
  task files) are read in ONE call that streams them all in path order (GetFileTAR, see
  ``PachdClient.read_files``). A file the stream does not bring, or any trouble with the
  stream, falls back to reading that file on its own: the run is only ever a shortcut.
- **Threads**: the other small files (a diff's scattered changes) are read a few at a time
  on threads, so the waits overlap with each other and with task creation.

Bounded on purpose: at most ``WORKERS`` calls in flight, ``WINDOW`` files read ahead, and
only files of at most ``SMALL_FILE_BYTES`` (their size comes from the listing or the diff)
are read whole; bigger ones are left to the caller, which streams them as before. A run is
read as the caller reaches its files, one file at a time. So the memory held here is at
most WINDOW x SMALL_FILE_BYTES.
"""
from __future__ import annotations

import logging
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterator, Optional, Sequence, Tuple, TypeVar

log = logging.getLogger(__name__)

WORKERS = 8
WINDOW = 32
SMALL_FILE_BYTES = 1024 * 1024
RUN_MIN = 4  # fewer files than this are not worth a call of their own

Item = TypeVar('Item')
# read_run(first item) -> (key, content) of the files from that item on, in key order;
# content None for a file it did not bring whole.
RunReader = Callable[[Item], Iterator[Tuple[str, Optional[bytes]]]]


def read_ahead(items: Sequence[Item], size_of: Callable[[Item], Optional[int]],
               read: Callable[[Item], bytes], key_of: Callable[[Item], str] = str,
               read_run: Optional[RunReader] = None,
               continues_run: Callable[[Item, Item], bool] = lambda previous, item: False,
               ) -> Iterator[Tuple[Item, Optional[Future]]]:
    """Yield ``(item, future)`` in the order of ``items``.

    ``future`` holds ``read(item)`` (bytes, or the exception it raised) for items whose
    ``size_of`` is a small size; it is None for the others (too big, or not to be read),
    which the caller handles itself. With ``read_run``, small items that
    ``continues_run(previous, item)`` links, ``RUN_MIN`` or more in a row, are read
    through one ``read_run`` call instead. A generator closed early stops reading ahead.
    """
    small = [_is_small(size_of(item)) for item in items]
    in_run = _runs(items, small, continues_run) if read_run is not None else [None] * len(items)
    pending: deque = deque()
    pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix='pachyderm-read')
    run: Optional[_Run] = None  # the run being read; runs come one after another
    completed = False

    def resolved(entry):
        nonlocal run
        index, item, future = entry
        if in_run[index] is not None:
            if in_run[index] == index:  # the first file of a run: the previous one is over
                if run is not None:
                    run.close()
                run = _Run(read_run, item)
            content = run.take(key_of(item))
            if content is None:  # not in the stream: read on its own
                future = pool.submit(read, item)
            else:
                future = Future()
                future.set_result(content)
        return item, future

    try:
        for index, item in enumerate(items):
            future = pool.submit(read, item) if small[index] and in_run[index] is None else None
            pending.append((index, item, future))
            if len(pending) >= WINDOW:
                yield resolved(pending.popleft())
        while pending:
            yield resolved(pending.popleft())
        completed = True
    finally:
        if run is not None:
            run.close()
        # Closed early (the caller failed or stopped): reads not started are cancelled, and
        # the ones under way finish on their threads (each bounded by the client's timeouts)
        # without holding up whoever closed the generator. Run to the end, every read given
        # out is still the caller's.
        pool.shutdown(wait=False, cancel_futures=not completed)


def _is_small(size: Optional[int]) -> bool:
    return size is not None and size <= SMALL_FILE_BYTES


def _runs(items: Sequence[Item], small: list, continues_run) -> list:
    """For each item, the number of the run it is read in (its first index), or None."""
    numbers: list = [None] * len(items)
    start = 0
    for index in range(1, len(items) + 1):
        if (index < len(items) and small[index - 1] and small[index]
                and continues_run(items[index - 1], items[index])):
            continue
        if index - start >= RUN_MIN:  # linked items are small: a segment of 2 or more is all small
            numbers[start:index] = [start] * (index - start)
        start = index
    return numbers


class _Run:
    """One stream of files, taken in key order as the caller reaches them."""

    _END = object()

    def __init__(self, read_run: RunReader, first):
        self._first = first
        self._read_run = read_run
        self._files: Optional[Iterator] = None
        self._next = None  # the file read from the stream and not taken yet
        self._broken = False

    def take(self, key: str) -> Optional[bytes]:
        """The content of ``key``, or None when the stream does not bring it whole."""
        if self._broken:
            return None
        try:
            if self._files is None:
                self._files = self._read_run(self._first)
            while True:
                if self._next is None:
                    self._next = next(self._files, self._END)
                if self._next is self._END:
                    return None
                found, content = self._next
                if found < key:  # a file the caller does not want (another selection, too big)
                    self._next = None
                    continue
                if found == key:
                    self._next = None
                    return content
                return None  # the stream is past ``key``: it does not have it
        except Exception as err:  # the run is a shortcut: each file is then read on its own
            log.debug('reading a run of task files in one call failed (%s); reading them one by one', err)
            self._broken = True
            self.close()
            return None

    def close(self) -> None:
        if self._files is not None:
            self._files.close()
