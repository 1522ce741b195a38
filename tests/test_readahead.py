"""The task-file read-ahead: order kept, memory bounded, errors delivered to the reader."""
import threading

import pytest
from label_studio_pachyderm import readahead


def test_yields_in_order_and_skips_big_or_unknown_sizes():
    sizes = {f'f{i}': (10 if i % 3 else readahead.SMALL_FILE_BYTES + 1) for i in range(100)}
    sizes['unknown'] = None
    got = []
    for item, future in readahead.read_ahead(list(sizes), sizes.get, lambda item: item.encode()):
        got.append(item)
        small = sizes[item] is not None and sizes[item] <= readahead.SMALL_FILE_BYTES
        assert (future is not None) == small, item
        if future is not None:
            assert future.result() == item.encode()
    assert got == list(sizes)


def test_reads_at_most_a_window_ahead_of_the_consumer():
    started = []
    lock = threading.Lock()

    def read(item):
        with lock:
            started.append(item)
        return b''

    items = readahead.read_ahead(range(1000), lambda _: 1, read)
    consumed = 0
    for item, future in items:
        future.result()
        consumed += 1
        with lock:
            ahead = len(started) - consumed
        assert ahead <= readahead.WINDOW, (consumed, len(started))
        if consumed == 50:
            break
    items.close()
    assert len(started) <= 50 + readahead.WINDOW


def test_a_read_error_reaches_the_consumer_at_its_item():
    def read(item):
        if item == 5:
            raise ConnectionError('pachd went away')
        return b'ok'

    results = []
    for item, future in readahead.read_ahead(range(10), lambda _: 1, read):
        if item == 5:
            with pytest.raises(ConnectionError):
                future.result()
        else:
            results.append(future.result())
    assert results == [b'ok'] * 9


def test_closing_early_does_not_wait_for_a_read_under_way():
    """A sync that fails mid-batch closes the read-ahead; a read stuck on pachd must not hold it."""
    import time
    release = threading.Event()

    def read(item):
        if item == 1:
            release.wait(30)  # a read that pachd keeps waiting (bounded by the client's timeout in life)
        return b''

    items = readahead.read_ahead(range(100), lambda _: 1, read)
    item, future = next(items)
    assert item == 0 and future.result() == b''
    started = time.monotonic()
    items.close()
    closed_in = time.monotonic() - started
    release.set()
    assert closed_in < 5, f'close waited {closed_in:.1f}s for the stuck read'
