"""Task files (.json / .jsonl) read as a stream, every problem reported, never raised past the file.

The formats and their row numbering are Label Studio's (``io_storages.utils.load_tasks_json``):

* a file whose first non-space character is ``[`` is a JSON array, parsed item by item with ijson
  (row ``0``, ``1``, ...);
* one starting with ``{`` is a single JSON object (no row index) when the whole file is one JSON
  value, else JSON Lines: every non-empty line is one task, numbered from ``0``;
* anything else is not a task file.

What differs: the bytes arrive in chunks and are never all held in memory (a JSON Lines file is
read line by line, an array item by item); and problems are values, not exceptions. A row that is
not a usable task (not an object, ``allow_skip`` not a boolean, ``predictions`` not a list of
objects, text PostgreSQL cannot store) is a :class:`RowError` and the other rows go on; so is a
JSON Lines line that is not JSON (the row numbers of the other lines do not move, so fixing that
line later imports exactly that row). A file that cannot be read at all (not JSON, broken in the
middle of an array, invalid encoding of a single object) raises :class:`TaskFileError` once the
rows before the break have been yielded. Exceptions of the byte source (a pachd error) propagate
unchanged.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional, Union

import ijson
from io_storages.utils import StorageObject

_JSON_SPACE = b' \t\n\r'
# Deepest nesting of arrays and objects a task may have (Python's json gives up near 1,000).
MAX_DEPTH = 500


class TaskFileError(ValueError):
    """The file as a whole cannot be read as tasks."""


@dataclass(frozen=True)
class RowError:
    row_index: Optional[int]
    reason: str


class _SourceFailed(Exception):
    """Internal: the byte source raised; the original is re-raised unchanged."""


class _ChunkReader(io.RawIOBase):
    """A read-only file over an iterator of byte chunks; remembers an exception of the source."""

    def __init__(self, chunks: Iterable[bytes]):
        self._chunks = iter(chunks)
        self._pending = b''
        self.source_error: Optional[BaseException] = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            if self.source_error is not None:
                raise _SourceFailed()
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
            except BaseException as exc:  # noqa: BLE001 - re-raised by the parser, unchanged
                self.source_error = exc
                raise _SourceFailed() from None
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ''
    return text or exc.__class__.__name__


def _reject_constant(name):
    raise ValueError(f'{name} is not valid JSON')


def _loads(data: bytes):
    # Python's json accepts NaN and Infinity, which are not JSON (and PostgreSQL refuses them).
    return json.loads(data, parse_constant=_reject_constant)


def _type_name(value) -> str:
    return {dict: 'object', list: 'array', str: 'string', bool: 'boolean', type(None): 'null'}.get(
        type(value), 'number'
    )


def _text_problem(value) -> Optional[str]:
    """Text a database cannot store: NUL characters and unpaired surrogates (PostgreSQL refuses both)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if '\x00' in item:
                return 'it contains a NUL character (\\u0000), which the database cannot store'
            try:
                item.encode('utf-8')
            except UnicodeEncodeError:
                return 'it contains an unpaired UTF-16 surrogate (\\ud800-\\udfff), which is not valid text'
    return None


def row_problem(task) -> Optional[str]:
    """Why a parsed row cannot become a task, or None."""
    if not isinstance(task, dict):
        return f'a task must be a JSON object, this row is a JSON {_type_name(task)}'
    if 'allow_skip' in task and not isinstance(task['allow_skip'], bool):
        return f'"allow_skip" must be true or false, not a JSON {_type_name(task["allow_skip"])}'
    for name in ('predictions', 'annotations'):
        items = task.get(name)
        if not items:
            continue
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            return f'"{name}" must be a list of JSON objects'
        if 'data' not in task:
            return f'a task with "{name}" must put its data in a "data" object'
    return _text_problem(task)


def _row(key: str, task, row_index) -> Union[StorageObject, RowError]:
    problem = row_problem(task)
    if problem:
        return RowError(row_index, problem)
    return StorageObject(key=key, task_data=task, row_index=row_index)


def parse_task_file(chunks: Iterable[bytes], key: str) -> Iterator[Union[StorageObject, RowError]]:
    """StorageObjects and RowErrors of one task file, in file order; TaskFileError for the file."""
    reader = _ChunkReader(chunks)
    try:
        yield from _parse(_Source(io.BufferedReader(reader, buffer_size=256 * 1024)), key)
    except _SourceFailed:
        raise reader.source_error from None
    except TaskFileError:
        if reader.source_error is not None:
            raise reader.source_error from None
        raise
    except Exception as exc:  # noqa: BLE001 - a parser failure is a problem of this file
        if reader.source_error is not None:
            raise reader.source_error from None
        raise TaskFileError(f'not valid JSON ({_reason(exc)})') from None
    finally:
        close = getattr(chunks, 'close', None)
        if close is not None:
            close()


class _Source(io.RawIOBase):
    """The file's bytes with the ones read to find the first character put back in front."""

    def __init__(self, stream):
        self._stream = stream
        self._head = b''

    def readable(self) -> bool:
        return True

    def first_char(self) -> Optional[str]:
        """Label Studio's rule: the first byte for which ``chr(byte).isspace()`` is false.

        Leading JSON white space is dropped (no format below minds it); from the first other byte on,
        everything read is kept, so "space" bytes JSON does not allow (\\x0b, \\x0c, \\x1c-\\x1f,
        \\x85, \\xa0) still reach the parser and fail there, as they do in Label Studio's loader.
        """
        kept = bytearray()
        while True:
            chunk = self._stream.read1(64 * 1024)
            if not chunk:
                self._head = bytes(kept)
                return None
            for index, byte in enumerate(chunk):
                if not chr(byte).isspace():
                    self._head = bytes(kept) + chunk[index:]
                    return chr(byte)
                if kept or byte not in _JSON_SPACE:
                    kept.append(byte)

    def readinto(self, buffer) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._stream.read1(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def read(self, size=-1):
        if size is None or size < 0:
            head, self._head = self._head, b''
            return head + self._stream.read()
        if self._head:
            data, self._head = self._head[:size], self._head[size:]
            return data
        return self._stream.read(size)

    def readline(self, size=-1):
        if self._head:
            newline = self._head.find(b'\n')
            if newline >= 0:
                line, self._head = self._head[:newline + 1], self._head[newline + 1:]
                return line
            line, self._head = self._head, b''
            return line + self._stream.readline()
        return self._stream.readline()


def _parse(source: _Source, key: str):
    first = source.first_char()
    if first is None:
        raise TaskFileError('the file is empty or holds only white space')
    if first == '[':
        yield from _parse_array(source, key)
    elif first == '{':
        yield from _parse_object_or_lines(source, key)
    else:
        shown = repr(first) if first.isascii() and first.isprintable() else f'the byte 0x{ord(first):02x}'
        raise TaskFileError(f'a task file must start with [ (an array) or {{ (an object or JSON Lines), '
                            f'not {shown}')


def _parse_array(source: _Source, key: str):
    """The items of a top-level array, as ``ijson.items(f, 'item')`` yields them, nesting bounded.

    Built from ijson's basic events: ``items`` tracks a dotted prefix per event, which for a
    file of 100,000 ``[`` is gigabytes of strings.
    """
    row_index = 0
    stack = []  # containers being built; stack[0] is the item of the top-level array
    keys = []
    depth = 0  # 1 = inside the top-level array
    for event, value in ijson.basic_parse(source, use_float=True):
        if event in ('start_map', 'start_array'):
            depth += 1
            if depth == 1:
                continue
            if depth > MAX_DEPTH:
                raise TaskFileError(f'the JSON is nested deeper than {MAX_DEPTH} levels')
            container = {} if event == 'start_map' else []
            if stack:
                _add(stack[-1], keys, container)
            stack.append(container)
            if event == 'start_map':
                keys.append(None)
            continue
        if event in ('end_map', 'end_array'):
            depth -= 1
            if depth == 0:
                continue
            done = stack.pop()
            if event == 'end_map':
                keys.pop()
            if not stack:
                yield _row(key, done, row_index)
                row_index += 1
            continue
        if event == 'map_key':
            keys[-1] = value
            continue
        if stack:
            _add(stack[-1], keys, value)
        else:
            yield _row(key, value, row_index)
            row_index += 1


def _add(container, keys, value) -> None:
    if isinstance(container, dict):
        container[keys[-1]] = value
    else:
        container.append(value)


def _parse_object_or_lines(source: _Source, key: str):
    # The first non-empty line, and the (blank) lines before it.
    head = bytearray()
    line = source.readline()
    while line and not line.strip():
        head += line
        line = source.readline()
    head += line
    first_line = line
    try:
        first_value = _loads(first_line.strip())
        first_ok = True
    except Exception:  # noqa: BLE001
        first_ok = False

    if not first_ok:
        # Not a one-line value: the file can only be a single (multi-line) object. The size limit
        # applied before reading bounds what is held here.
        whole = bytes(head) + source.read()
        try:
            yield _row(key, _loads(whole), None)
        except (ValueError, RecursionError) as exc:
            raise TaskFileError(f'not valid JSON or JSON Lines ({_reason(exc)})') from None
        return

    # The first line is a value: either the file is just that (a single object) or JSON Lines.
    line = source.readline()
    tail = bytearray()
    while line and not line.strip():
        tail += line
        line = source.readline()
    if not line:
        whole = bytes(head) + bytes(tail)
        try:
            yield _row(key, _loads(whole), None)
        except (ValueError, RecursionError):
            yield _row(key, first_value, 0)
        return
    del head, tail
    yield _row(key, first_value, 0)
    row_index = 1
    while line:
        stripped = line.strip()
        if stripped:
            try:
                task = _loads(stripped)
            except (ValueError, RecursionError) as exc:
                yield RowError(row_index, f'line is not valid JSON ({_reason(exc)})')
            else:
                yield _row(key, task, row_index)
            row_index += 1
        line = source.readline()
