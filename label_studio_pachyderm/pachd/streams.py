"""Server-streaming calls: a first-message deadline, cancellation from any thread, file reads."""
from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from typing import Callable, Iterator, List, Optional

import grpc

from .errors import PachdError, PachdUnavailable, connect_failed
from .values import FileEntry

logger = logging.getLogger(__name__)


class _Watchdog:
    """Runs callbacks at deadlines, on one shared thread.

    Every stream needs a first-message deadline; a thread (``threading.Timer``)
    per stream costs about a millisecond to start, which a media proxy doing
    one read per range request pays over and over. Cancelled entries are left
    in the heap and skipped when they come up, until they are most of it: a
    stream re-arms its idle deadline for every message, so a listing of a
    million files cancels a million entries within one timeout, and without
    the sweep they would all be held until their deadlines passed.
    """

    SWEEP_AT = 1024  # cancelled entries tolerated before they may be swept out

    def __init__(self):
        self._heap: List[list] = []
        self._cancelled = 0  # cancelled entries still in the heap
        self._order = itertools.count()
        self._condition = threading.Condition()
        self._thread: Optional[threading.Thread] = None

    def schedule(self, delay: float, callback: Callable[[], None]) -> list:
        entry = [time.monotonic() + delay, next(self._order), callback]
        with self._condition:
            heapq.heappush(self._heap, entry)
            # Also after a fork: the child has the object but not the thread.
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name='pachd-stream-deadlines', daemon=True)
                self._thread.start()
            if self._heap[0] is entry:
                self._condition.notify()
        return entry

    def cancel(self, entry: list) -> None:
        with self._condition:
            if entry[2] is None:  # cancelled before, or already run
                return
            entry[2] = None
            self._cancelled += 1
            if self._cancelled > self.SWEEP_AT and 2 * self._cancelled > len(self._heap):
                self._heap = [live for live in self._heap if live[2] is not None]
                heapq.heapify(self._heap)
                self._cancelled = 0

    def _run(self) -> None:
        while True:
            with self._condition:
                while self._heap and self._heap[0][2] is None:
                    heapq.heappop(self._heap)
                    self._cancelled -= 1
                if not self._heap:
                    self._condition.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._condition.wait(wait)
                    continue
                entry = heapq.heappop(self._heap)
                callback, entry[2] = entry[2], None  # a later cancel() of it does nothing
            if callback is not None:
                try:
                    callback()
                except Exception:  # a failing callback must not stop the deadlines of other streams
                    logger.exception('pachd stream deadline callback failed')


_watchdog = _Watchdog()


def _new_watchdog_in_forked_child() -> None:
    # The parent's deadline thread does not exist in the child, and its lock may be held.
    global _watchdog
    _watchdog = _Watchdog()


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_new_watchdog_in_forked_child)


class ServerStream:
    """One server-streaming call: an iterator of its messages with errors mapped.

    Two bounds keep a frozen or mute pachd from holding a caller: the first
    message (or the end of the stream) must arrive within the client's timeout,
    and so must every later message (``idle_timeout``, by default the same).
    Only the time spent waiting for pachd counts, not the time the caller takes
    between messages. A stream has no total deadline, so long listings and reads
    go on as long as pachd keeps sending; ``first_timeout=None`` and
    ``idle_timeout=None`` let a stream wait for its messages forever (a
    subscription). ``cancel()`` may be called from any thread; the iteration then
    simply ends. ``client`` is the ``PachdClient`` making the call: the stream
    reports answers to it and asks it to reconnect.
    """

    _DEFAULT = object()

    def __init__(self, client, rpc, request, context: dict, idle_timeout=_DEFAULT,
                 first_timeout=_DEFAULT):
        client._check_open()
        self._client = client
        self._context = context
        self._rpc = rpc
        self._request = request
        self._idle = client.timeout if idle_timeout is ServerStream._DEFAULT else idle_timeout
        self._first = client.timeout if first_timeout is ServerStream._DEFAULT else first_timeout
        self._lock = threading.Lock()
        self._answered = False
        self._expired = False
        self._cancelled = False
        self._retried = False
        self._armed: Optional[object] = None
        self._deadline: Optional[list] = None
        self._start()

    def _start(self) -> None:
        self._call = self._rpc(self._request)
        if self._first is not None:
            self._arm(self._first)

    def _arm(self, delay: float) -> None:
        token = object()
        with self._lock:
            self._armed = token
            self._deadline = _watchdog.schedule(delay, lambda: self._expire(token))

    def _disarm(self) -> None:
        with self._lock:
            self._armed = None
            entry, self._deadline = self._deadline, None
        if entry is not None:
            _watchdog.cancel(entry)

    def _expire(self, token) -> None:
        with self._lock:
            if token is not self._armed:
                return
            self._expired = True
            call = self._call
        call.cancel()

    def _answer(self) -> None:
        self._disarm()
        if not self._answered:
            self._answered = True
            self._client._note_answer(grpc.StatusCode.OK)

    def __iter__(self) -> 'ServerStream':
        return self

    def __next__(self):
        while True:
            if self._answered and self._idle is not None:
                self._arm(self._idle)
            try:
                message = next(self._call)
                break
            except StopIteration:
                self._answer()
                raise
            except grpc.RpcError as exc:
                if self._may_retry(exc):
                    continue
                answered = self._answered
                self._disarm()
                self._answered = True
                if self._cancelled:
                    raise StopIteration from None
                if self._expired:
                    url, seconds = self._client.address.url, self._first if not answered else self._idle
                    if answered:
                        raise PachdUnavailable(f'pachd at {url} stopped sending: nothing for {seconds:g} s (a frozen '
                                               'connection or an overloaded pachd); try again') from None
                    raise PachdUnavailable(f'cannot reach pachd at {url}: no answer within {seconds:g} s') from None
                self._client._note_answer(exc.code())
                raise self._client._error(exc, **self._context) from None
        self._answer()
        return message

    def _may_retry(self, exc) -> bool:
        """Start the call once more if it never reached pachd and pachd is back (see PachdClient._reconnected)."""
        if self._retried or self._answered or self._cancelled or not connect_failed(exc):
            return False
        self._retried = True
        self._disarm()
        if not self._client._reconnected():
            return False
        with self._lock:
            if self._cancelled:
                return False
            self._expired = False
        self._start()
        if self._cancelled:  # cancel() ran while the new call was being started
            self._call.cancel()
        return True

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            call = self._call
        self._disarm()
        call.cancel()


class FileStream:
    """A file being read from pachd: iterate ``iter_chunks(n)``; ``close()`` cancels the RPC.

    ``size`` is the whole file's size, ``offset`` where reading starts and
    ``length`` how many bytes the stream yields in total.
    """

    def __init__(self, client, request, entry: FileEntry, offset: int, length: int, context: dict):
        self._client = client
        self._request = request
        self._context = context
        self._stream: Optional[ServerStream] = None
        self._lock = threading.Lock()
        self._closed = False
        self.entry = entry
        self.path = entry.path
        self.commit = entry.commit
        self.size = entry.size
        self.offset = offset
        self.length = length

    def iter_chunks(self, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """The bytes, in pieces of ``chunk_size`` (the last may be shorter). Once only."""
        if chunk_size <= 0:
            raise ValueError('chunk_size must be positive')
        with self._lock:
            if self._stream is not None:
                raise PachdError('this file stream has been read already')
            remaining = self.length
            if self._closed or remaining <= 0:
                self._closed = True
                return
            self._stream = stream = ServerStream(self._client, self._client._rpc_get_file, self._request,
                                                  self._context)
        pending = b''
        try:
            for message in stream:
                data = message.value
                if len(data) > remaining:
                    data = data[:remaining]
                remaining -= len(data)
                # Re-chunk: only a leftover shorter than chunk_size is ever copied twice.
                buffer = pending + data if pending else data
                position = 0
                while len(buffer) - position >= chunk_size:
                    if self._closed:
                        return
                    yield buffer[position:position + chunk_size]
                    position += chunk_size
                pending = buffer[position:]
                if remaining <= 0 or self._closed:
                    break
            if pending and not self._closed:
                yield pending
        finally:
            self.close()

    def __iter__(self) -> Iterator[bytes]:
        return self.iter_chunks()

    def read(self) -> bytes:
        return b''.join(self.iter_chunks())

    def close(self) -> None:
        """Stop reading; safe from any thread, also while another thread iterates."""
        with self._lock:
            self._closed = True
            stream = self._stream
        if stream is not None:
            stream.cancel()

    def __enter__(self) -> 'FileStream':
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f'FileStream({self.path!r}@{self.commit}, offset={self.offset}, length={self.length})'
