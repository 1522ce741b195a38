"""The task-file read-ahead: order kept, memory bounded, errors delivered to the reader."""
import threading

import pytest
from label_studio_pachyderm.imports import readahead


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


# ----------------------------------------------------------------------------- runs (one stream for many files)
class Stream:
    """A fake run reader over ``files`` ({key: bytes}); records what it was asked and closed."""

    def __init__(self, files, fail_after=None):
        self.files, self.fail_after = dict(sorted(files.items())), fail_after
        self.opened, self.closed = [], 0

    def __call__(self, first):
        self.opened.append(first)
        try:
            for n, (key, content) in enumerate(self.files.items()):
                if key < first:
                    continue
                if self.fail_after is not None and n >= self.fail_after:
                    raise ConnectionError('the stream broke')
                yield key, content
        finally:
            self.closed += 1


def run_items(names):
    return [f'{name}.json' for name in names]


def test_files_listed_together_come_from_one_stream():
    items = run_items(f'{i:03d}' for i in range(50))
    stream = Stream({item: item.encode() for item in items})
    singles = []

    def read(item):
        singles.append(item)
        return item.encode()

    got = [(item, future.result()) for item, future in readahead.read_ahead(
        items, lambda _: 10, read, read_run=stream, continues_run=lambda a, b: True)]
    assert got == [(item, item.encode()) for item in items]
    assert stream.opened == ['000.json'] and stream.closed == 1 and singles == []


def test_a_file_the_stream_lacks_or_brings_too_big_is_read_on_its_own():
    items = run_items(['a', 'b', 'c', 'd', 'e', 'f'])
    files = {item: item.encode() for item in items if item != 'c.json'}
    files['d.json'] = None  # over the stream's size limit
    files['b0.json'] = b'not selected'  # a file between two selected ones
    stream = Stream(files)
    singles = []

    def read(item):
        singles.append(item)
        return b'single ' + item.encode()

    got = dict((item, future.result()) for item, future in readahead.read_ahead(
        items, lambda _: 10, read, read_run=stream, continues_run=lambda a, b: True))
    assert got['a.json'] == b'a.json' and got['e.json'] == b'e.json' and got['f.json'] == b'f.json'
    assert got['c.json'] == b'single c.json' and got['d.json'] == b'single d.json'
    assert sorted(singles) == ['c.json', 'd.json']


def test_a_broken_stream_leaves_the_rest_to_single_reads():
    items = run_items(f'{i:02d}' for i in range(10))
    stream = Stream({item: item.encode() for item in items}, fail_after=3)
    got = [(item, future.result()) for item, future in readahead.read_ahead(
        items, lambda _: 10, lambda item: b'single', read_run=stream, continues_run=lambda a, b: True)]
    assert [content for _, content in got] == [b'00.json', b'01.json', b'02.json'] + [b'single'] * 7
    assert stream.closed == 1


def test_short_runs_big_files_and_unlinked_files_use_single_reads():
    items = run_items(['a', 'b', 'c', 'x', 'y', 'z', 'z1', 'z2'])
    sizes = {item: 10 for item in items}
    sizes['x.json'] = readahead.SMALL_FILE_BYTES + 1  # streamed by the caller: cuts the run
    stream = Stream({item: item.encode() for item in items})
    futures = dict(readahead.read_ahead(items, sizes.get, lambda item: b'single', read_run=stream,
                                        continues_run=lambda a, b: True))
    assert futures['x.json'] is None
    assert [futures[i].result() for i in run_items(['a', 'b', 'c'])] == [b'single'] * 3  # 3 < RUN_MIN
    assert [futures[i].result() for i in run_items(['y', 'z', 'z1', 'z2'])] == [
        b'y.json', b'z.json', b'z1.json', b'z2.json']
    assert stream.opened == ['y.json']
    unlinked = dict(readahead.read_ahead(items, lambda _: 10, lambda item: b'single', read_run=stream,
                                         continues_run=lambda a, b: False))
    assert {future.result() for future in unlinked.values()} == {b'single'}


def test_closing_early_closes_the_stream():
    items = run_items(f'{i:03d}' for i in range(100))
    stream = Stream({item: item.encode() for item in items})
    reading = readahead.read_ahead(items, lambda _: 10, lambda item: b'', read_run=stream,
                                   continues_run=lambda a, b: True)
    next(reading)
    reading.close()
    assert stream.opened == ['000.json'] and stream.closed == 1
