"""Reading the task files of a sync ahead of the loop that turns them into tasks.

One task file is one GetFile call. Read one after another, a 10,000-file sync spends
most of its time waiting on pachd round trips while the database sits idle; read a few
at a time on threads, the waits overlap with each other and with task creation.

Bounded on purpose: at most ``WORKERS`` calls in flight and ``WINDOW`` files read ahead,
and only files of at most ``SMALL_FILE_BYTES`` (their size comes from the listing or the
diff) are read whole; bigger ones are left to the caller, which streams them as before.
So the memory held here is at most WINDOW x SMALL_FILE_BYTES.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, Optional, Tuple, TypeVar

WORKERS = 8
WINDOW = 32
SMALL_FILE_BYTES = 1024 * 1024

Item = TypeVar('Item')


def read_ahead(items: Iterable[Item], size_of: Callable[[Item], Optional[int]],
               read: Callable[[Item], bytes]) -> Iterator[Tuple[Item, Optional[Future]]]:
    """Yield ``(item, future)`` in the order of ``items``.

    ``future`` holds ``read(item)`` (bytes, or the exception it raised) for items whose
    ``size_of`` is a small size; it is None for the others (too big, or not to be read),
    which the caller handles itself. A generator closed early stops reading ahead.
    """
    pending: deque = deque()
    pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix='pachyderm-read')
    try:
        for item in items:
            size = size_of(item)
            future = pool.submit(read, item) if size is not None and size <= SMALL_FILE_BYTES else None
            pending.append((item, future))
            if len(pending) >= WINDOW:
                yield pending.popleft()
        while pending:
            yield pending.popleft()
    finally:
        # Closed early (the caller failed or stopped): reads not started are cancelled, and
        # the ones under way finish on their threads (each bounded by the client's timeouts)
        # without holding up whoever closed the generator.
        pool.shutdown(wait=False, cancel_futures=True)
