"""HTTP ``Range`` for the media proxy (RFC 9110 section 14): the one parser both proxy paths use.

Label Studio's ``io_storages.utils.parse_range`` reads ``bytes=-100`` (the last 100 bytes) and
``bytes=0-1,5-6`` both as ``bytes=0-`` (the whole file, as a 206), and its proxy rewrites the
header with it before a storage sees it. The plugin's proxy paths pass the client's header here
instead (``proxy.PfsProxy``).

The answers:

* no ``Range``, a unit other than ``bytes``, or a header that does not parse: 200, the whole file
  (RFC 9110 14.2: a server ignores a Range it does not understand);
* more than one range (``bytes=0-1,5-6``): 200, the whole file. A server may ignore Range, and
  a ``multipart/byteranges`` body is something no media element asks for;
* ``bytes=a-b``, ``bytes=a-``: 206 from ``a`` to ``b`` or the last byte; ``bytes=-n``: 206, the
  last ``n`` bytes (the whole file when it is shorter);
* no byte of the file in the range (``a`` at or past the end, ``b`` before ``a``, ``bytes=-0``,
  any int-range of an empty file): 416. A suffix range of an empty file is 200 with the empty
  file: RFC 9110 calls it satisfiable, but a 206 cannot name zero bytes in ``Content-Range``.

A 206 is at most ``max_length`` bytes from its first byte (Label Studio's
``RESOLVER_PROXY_MAX_RANGE_SIZE``, so one request never holds a worker for a whole large file),
except ``bytes=0-``, which Label Studio also serves whole: it is how media elements first ask.
"""
from __future__ import annotations

import re
from typing import NamedTuple, Optional

# One range-spec: first-last, first-, or -suffix (digits only: no sign, no spaces inside).
_SPEC = re.compile(r'([0-9]*)-([0-9]*)')
# Numbers longer than this exceed every file; Python refuses int() of more than 4,300 digits.
_MAX_DIGITS = 30


class Answer(NamedTuple):
    status: int  # 200, 206 or 416
    offset: int = 0  # first byte to send
    length: int = 0  # bytes to send

    def content_range(self, size: int) -> Optional[str]:
        if self.status == 206:
            return f'bytes {self.offset}-{self.offset + self.length - 1}/{size}'
        if self.status == 416:
            return f'bytes */{size}'
        return None


def _number(digits: str) -> int:
    return int(digits) if len(digits) <= _MAX_DIGITS else 10 ** _MAX_DIGITS


def answer(header: Optional[str], size: int, max_length: Optional[int] = None) -> Answer:
    """What to send of a ``size``-byte file for the ``Range`` header ``header`` (None: no header)."""
    whole = Answer(200, 0, size)
    if not header:
        return whole
    unit, equals, range_set = header.strip().partition('=')
    if not equals or unit.strip().lower() != 'bytes':  # range units are case-insensitive
        return whole
    # A list: optional whitespace around the commas; empty elements are ignored (RFC 9110 5.6.1).
    specs = [spec.strip() for spec in range_set.split(',') if spec.strip()]
    matches = [_SPEC.fullmatch(spec) for spec in specs]
    if not matches or any(m is None or m.group(0) == '-' for m in matches):
        return whole  # invalid syntax: ignore the Range
    if len(matches) > 1:
        return whole  # several ranges: ignored, see above
    first, last = matches[0].groups()
    if not first:  # bytes=-n: the last n bytes
        suffix = _number(last)
        if suffix == 0:
            return Answer(416)
        if size == 0:
            return whole
        offset = max(0, size - suffix)
    else:
        offset = _number(first)
        if offset >= size or (last and _number(last) < offset):
            return Answer(416)
    end = min(_number(last), size - 1) if first and last else size - 1
    length = end - offset + 1
    if max_length and length > max_length and not (offset == 0 and first and not last):
        length = max_length
    return Answer(206, offset, length)
